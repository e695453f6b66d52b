"""The interpolated kernel path against the layer loop and neural-tangents.

Its depth-10^6 oracle test is in test_kernels_accuracy.py, beside the cases that share its tables.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import (
    KERNEL_FIELDS,
    correlation_trace,
    relu_kernel_fn,
    relu_kernel_trace,
    relu_ntk,
    stax_mlp,
)

DIAGONALS = ("nngp_diag1", "nngp_diag2", "ntk_diag1", "ntk_diag2")


def rel_err(a, b, floor):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


def _awkward_inputs(rng, n0=6):
    x = rng.normal(size=(10, n0)) * rng.uniform(0.2, 5.0, size=(10, 1))
    x[1] = 3.0 * x[0]  # same direction
    x[2] = -x[0]  # antipodal
    x[3] = x[0] + 1e-7 * rng.normal(size=n0)  # angle ~1e-7
    x[4] = -x[5] + 1e-5 * rng.normal(size=n0)  # nearly antipodal
    return x


@pytest.mark.parametrize("W_std", [1.3, 4.0])
def test_interp_equals_the_loop_on_every_field_and_diagonal(x64, rng, W_std):
    x1 = _awkward_inputs(rng)
    x2 = np.vstack([x1[:4], rng.normal(size=(3, 6))])
    layers = [37, 1, 2, 3, 10]
    a = relu_kernel_trace(x1, x2, depth=37, layers=layers, W_std=W_std, method="interp")
    b = relu_kernel_trace(x1, x2, depth=37, layers=layers, W_std=W_std, method="loop")
    for field in KERNEL_FIELDS + DIAGONALS:
        got, ref = np.asarray(getattr(a, field)), np.asarray(getattr(b, field))
        assert got.shape == ref.shape
        assert rel_err(got, ref, 1e-13 * np.abs(ref).max()) < 1e-12, field
    # Identical and antipodal pairs are exact.
    np.testing.assert_array_equal(np.asarray(a.rho)[:, 0, 1], 1.0)
    np.testing.assert_array_equal(np.asarray(a.ntk_normalized)[:, 0, 0], 1.0)


def test_interp_with_a_bias_on_the_sphere_equals_the_loop(x64, rng):
    x = rng.normal(size=(12, 5))
    x *= math.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    x[1] = -x[0]
    a = relu_kernel_trace(x, depth=200, layers=[200, 3, 1], W_std=1.2, b_std=0.3, method="interp")
    b = relu_kernel_trace(x, depth=200, layers=[200, 3, 1], W_std=1.2, b_std=0.3, method="loop")
    for field in KERNEL_FIELDS + DIAGONALS:
        ref = np.asarray(getattr(b, field))
        assert rel_err(getattr(a, field), ref, 1e-13 * np.abs(ref).max()) < 1e-12, field
    # Unequal norms with a bias: the interpolated path does not apply.
    with pytest.raises(ValueError, match="method='interp' needs"):
        relu_kernel_trace(x * np.linspace(1, 2, 12)[:, None], depth=20, b_std=0.3, method="interp")


def test_auto_picks_the_interpolated_path_and_it_agrees(x64, rng):
    from ntkdepth.kernels import interp

    x = rng.normal(size=(200, 8))
    interp.clear_tables()
    auto = relu_ntk(x, depth=60)
    assert len(interp._TABLES) == 1  # the tables were built: interpolated
    loop = relu_ntk(x, depth=60, method="loop")
    assert rel_err(auto, loop, 1e-13) < 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("depth", [10, 1000, 10**6])
def test_panel_location_from_the_bits_of_v_matches_the_mesh(dtype, depth):
    # The panel and local variable read off v's exponent and mantissa bits,
    # against the panels [lo, hi] built one by one by mesh().
    from ntkdepth.kernels import interp

    with jax.enable_x64(dtype == "float64"):
        m = interp.mesh(depth)
        dt = np.dtype(dtype)
        vmax = np.sqrt(dt.type(0.5))
        edges = np.concatenate([m.lo, m.hi, (m.lo + m.hi) / 2]).astype(dt)
        v = np.concatenate([edges, np.nextafter(edges, dt.type(0)), np.nextafter(edges, dt.type(1)),
                            np.geomspace(1e-300 if dtype == "float64" else 1e-44, 1e-3, 200).astype(dt),
                            np.linspace(0, vmax, 1001, dtype=dt), [0, vmax]])
        v = np.unique(v[(v >= 0) & (v <= vmax)])
        for positive in (True, False):
            base, u = interp.locate_panel(jnp.asarray(v), jnp.full(v.shape, positive), m.emin, m.n_pos)
            idx = np.asarray(base).astype(np.int64) // interp.N
            u = np.asarray(u, np.float64)
            assert np.all((idx < m.n_pos) == positive)
            lo, hi = m.lo[idx], m.hi[idx]
            eps = np.finfo(dt).eps
            # Equal panels for rho_1 < 0: a v within rounding of a panel's end may fall either side.
            slack = 0 if positive else 4 * eps * hi
            assert np.all((v >= lo - slack) & (v <= hi + slack)), v[(v < lo - slack) | (v > hi + slack)][:5]
            expect = np.clip(2 * (v.astype(np.float64) - lo) / (hi - lo) - 1, -1, 1)
            err = np.abs(u - expect)
            if positive:  # exact above the lowest panel: a power-of-two scale of v - lo
                assert np.max(err[idx > 0]) <= 2 * np.finfo(np.float64).eps
            # Elsewhere a rounding of v itself: a few ulps of the panel's end.
            assert np.max(err * (hi - lo) / 2 / hi) <= 4 * eps


def test_float32_interp_is_within_a_few_ulps_of_the_float32_loop(rng):
    x = rng.normal(size=(9, 7)).astype(np.float32)
    a = relu_kernel_trace(x, depth=300, layers=[300, 20, 3], method="interp")
    b = relu_kernel_trace(x, depth=300, layers=[300, 20, 3], method="loop")
    assert a.ntk.dtype == jnp.float32
    eps = np.finfo(np.float32).eps
    for field in ("ntk", "nngp", "rho", "ntk_normalized", "nngp_dot"):
        ref = np.asarray(getattr(b, field))
        assert rel_err(getattr(a, field), ref, 1e-6 * np.abs(ref).max()) < 16 * eps, field


def test_gradients_through_the_interpolated_path(x64, rng):
    x = rng.normal(size=(5, 3))
    x[4] = -x[0]

    def loss(xx, w, method):
        tr = relu_kernel_trace(xx, depth=9, layers=[9, 5], W_std=w, method=method)
        return jnp.sum(tr.ntk) + jnp.sum(tr.nngp ** 2) + jnp.sum(tr.ntk_normalized)

    g_int = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), 1.3, "interp")
    g_loop = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), 1.3, "loop")
    for gi, gl in zip(g_int, g_loop):
        assert np.all(np.isfinite(np.asarray(gi)))
        np.testing.assert_allclose(gi, gl, rtol=1e-9, atol=1e-11)


def test_interp_overflow_gives_inf_and_underflow_zero_not_nan(x64, rng):
    x = rng.normal(size=(4, 3))
    x[3] = -x[0]
    big = relu_kernel_trace(x, depth=1500, layers=[1500, 100], W_std=4.0, method="interp")
    small = relu_kernel_trace(x, depth=1500, layers=[1500, 100], W_std=0.5, method="interp")
    ref = relu_kernel_trace(x, depth=1500, layers=[1500, 100], method="interp")
    assert np.all(np.isinf(np.asarray(big.ntk[0]))) and not np.any(np.isnan(np.asarray(big.ntk)))
    assert np.all(np.asarray(small.ntk[0]) == 0.0)
    np.testing.assert_allclose(big.ntk_normalized, ref.ntk_normalized, rtol=1e-13)


# --------------------------------------------------------------------------
# Only what is asked for, in neural-tangents' call style.


def test_get_accepts_one_field_name(x64, rng):
    x = rng.normal(size=(4, 3))
    for method in ("loop", "interp"):
        tr = relu_kernel_trace(x, depth=8, layers=[8], get="ntk", method=method)
        assert tr.ntk.shape == (1, 4, 4) and tr.ntk_diag1.shape == (1, 4)
        assert tr.nngp is None and tr.rho is None and tr.nngp_diag1 is None
    with pytest.raises(ValueError, match="unknown field"):
        relu_kernel_trace(x, depth=3, get="ntkk")


@pytest.mark.parametrize("b_std", [0.0, 0.2])
def test_kernel_fn_matches_neural_tangents_kernel_fn(x64, rng, b_std):
    x1, x2 = rng.normal(size=(6, 9)), rng.normal(size=(5, 9)) * 1.7
    ours = relu_kernel_fn(depth=7, W_std=1.4, b_std=b_std)
    _, _, theirs = stax_mlp(7, 16, W_std=1.4, b_std=b_std)
    k_nt = theirs(x1, x2, ("nngp", "ntk"))
    k = ours(x1, x2, ("ntk", "nngp"))
    assert k._fields == ("ntk", "nngp")
    assert rel_err(k.ntk, k_nt.ntk, 1e-12) < 1e-10 and rel_err(k.nngp, k_nt.nngp, 1e-12) < 1e-10
    single = ours(x1, x2, "ntk")
    assert single.shape == (6, 5)
    np.testing.assert_allclose(single, k.ntk, rtol=1e-14)
    assert ours(x1, get="nngp").shape == (6, 6)


# --------------------------------------------------------------------------
# Precision per call.


def test_float64_numpy_inputs_give_float64_without_enabling_x64_globally(rng):
    assert not jax.config.jax_enable_x64
    x = rng.normal(size=(3, 4))
    tr = relu_kernel_trace(x, depth=3, layers=[3])
    assert tr.ntk.dtype == jnp.float64 and not jax.config.jax_enable_x64
    assert relu_ntk(x.astype(np.float32), depth=3).dtype == jnp.float32
    assert relu_ntk(x.astype(np.float32), depth=3, dtype="float64").dtype == jnp.float64
    assert relu_ntk(x, depth=3, dtype="float32").dtype == jnp.float32
    assert correlation_trace(np.array([0.5]), depth=3).rho.dtype == jnp.float64
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="dtype must be"):
        relu_ntk(x, depth=3, dtype="int32")


def test_float64_per_call_fixes_the_deep_normalized_ntk(rng):
    # In float32, Thetabar at depth 2e4 drifts by rounding; float64 per call matches
    # the loop in float64 under an explicit x64 context.
    rho = np.array([0.0, 0.9])
    with jax.enable_x64(True):
        ref = np.asarray(correlation_trace(rho, depth=20_000, layers=[20_000]).ntk_normalized)
    got = correlation_trace(rho, depth=20_000, layers=[20_000], dtype="float64").ntk_normalized
    np.testing.assert_allclose(got, ref, rtol=1e-14)


def test_a_deep_float32_trace_warns_naming_the_depth_and_the_fix():
    with pytest.warns(UserWarning, match=r"depth 5000.*dtype='float64'"):
        correlation_trace(np.array([0.5], np.float32), depth=5000, layers=[5000])
    with pytest.warns(UserWarning, match=r"depth 2000"):
        relu_kernel_trace(np.ones((2, 3), np.float32), depth=2000, layers=[2000], get="ntk")


@pytest.mark.parametrize("method", ["loop", "interp"])
def test_float32_extreme_scales_give_no_nan(rng, method):
    x = rng.normal(size=(4, 5)).astype(np.float32)
    x[3] = -x[0]
    for scale, W_std in ((1e20, 1.0), (1.0, 1e30), (1e-30, 1.0), (1e-30, 1e30)):
        tr = relu_kernel_trace(x * np.float32(scale), depth=40, layers=[40, 1], W_std=W_std,
                               method=method)
        for field in KERNEL_FIELDS + DIAGONALS:
            assert not np.any(np.isnan(np.asarray(getattr(tr, field)))), (scale, W_std, field)
        ref = relu_kernel_trace(x, depth=40, layers=[40, 1], method=method)
        np.testing.assert_allclose(tr.ntk_normalized, ref.ntk_normalized, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(tr.rho, ref.rho, rtol=1e-5, atol=1e-6)


def test_float32_bias_with_an_overflowing_scale_is_a_clear_error(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"W_std=1e\+30.*dtype='float64'"):
        relu_kernel_trace(x, depth=3, W_std=1e30, b_std=0.1)


def test_a_tiny_float32_input_is_not_the_zero_vector(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    tiny = x.copy()
    tiny[1] *= np.float32(1e-30)
    tr = relu_kernel_trace(tiny, depth=4, layers=[4])
    ref = relu_kernel_trace(x, depth=4, layers=[4])
    np.testing.assert_allclose(tr.rho, ref.rho, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="zero vector"):
        relu_kernel_trace(np.vstack([x, np.zeros((1, 4), np.float32)]), depth=3)
