"""The analytic kernel core against mpmath, neural-tangents, closed forms and finite differences."""

import json
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import (
    correlation_map,
    correlation_map_derivative,
    correlation_trace,
    relu_kernel_trace,
    relu_nngp,
    relu_ntk,
    stax_mlp,
)
import oracles

START_CORRELATIONS = [-1.0, -0.9, 0.0, 0.5, 0.99, 1.0 - 1e-8]
DEEP_LAYERS = [1, 2, 3, 10, 100, 1000, 10_000, 100_000]


def rel_err(a, b, floor=1e-6):
    """Largest relative error; entries of ``b`` below ``floor`` in size are compared absolutely."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))


@pytest.fixture(scope="module")
def deep_oracle():
    # Depth 10^5 in 40 digits takes minutes: stored, with the layers to 1,000 recomputed.
    return oracles.read_deep_oracle(START_CORRELATIONS, DEEP_LAYERS)


def test_correlation_trace_matches_40_digit_recursion_to_depth_1e5(x64, deep_oracle):
    trace = correlation_trace(np.array(START_CORRELATIONS), depth=100_000, layers=DEEP_LAYERS)
    for k, r in enumerate(START_CORRELATIONS):
        ref = deep_oracle[r]
        for field in ("rho", "fprime", "ntk_normalized", "one_minus_rho"):
            got = np.asarray(getattr(trace, field))[:, k]
            floor = 1e-300 if field == "one_minus_rho" else 1e-6
            # The layer map keeps it within 1e-14 (the stable angle form alone: 1.1e-11).
            assert rel_err(got, ref[field], floor) < 1e-13, (r, field, got, ref[field])


def test_naive_float64_recursion_fails_where_the_trace_succeeds(deep_oracle):
    # The reason for the angle recursion: iterating rho <- f(rho) in float64
    # misses 1 - rho by far more than 1e-10 near depth 1e5.
    rho, errors = 0.5, []
    ref = deep_oracle[0.5]
    for ell in range(2, 100_001):
        rho = (math.sqrt(max(1 - rho * rho, 0.0)) + (math.pi - math.acos(rho)) * rho) / math.pi
    errors.append(abs((1 - rho) - ref["one_minus_rho"][-1]) / ref["one_minus_rho"][-1])
    assert errors[0] > 1e-4


def test_correlation_map_and_derivative_closed_forms(x64):
    rho = np.linspace(-1, 1, 101)
    f = (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho) / np.pi
    np.testing.assert_allclose(correlation_map(rho), f, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
        correlation_map_derivative(rho), (np.pi - np.arccos(rho)) / np.pi, rtol=1e-13, atol=1e-15
    )
    # Lemma 1's fixed points: f(1) = 1, f(-1) = 0, and f(rho) > rho below 1.
    assert float(correlation_map(1.0)) == 1.0
    assert abs(float(correlation_map(-1.0))) < 1e-15
    assert np.all(np.asarray(correlation_map(rho[:-1])) > rho[:-1])


@pytest.mark.parametrize("w2", [1.0, 2.0])
@pytest.mark.parametrize("b_std", [0.0, 0.1])
def test_trace_agrees_with_neural_tangents_depths_1_to_20(x64, rng, w2, b_std):
    x1 = rng.normal(size=(6, 9))
    x2 = rng.normal(size=(5, 9)) * 1.7
    trace = relu_kernel_trace(x1, x2, depth=20, W_std=math.sqrt(w2), b_std=b_std)
    for depth in range(1, 21):
        _, _, kernel_fn = stax_mlp(depth, 16, W_std=math.sqrt(w2), b_std=b_std)
        k = kernel_fn(x1, x2, ("nngp", "ntk"))
        assert rel_err(trace.ntk[depth - 1], k.ntk) < 1e-10, depth
        assert rel_err(trace.nngp[depth - 1], k.nngp) < 1e-10, depth
    # Diagonals against their own recursion (neural-tangents' diagonals carry an
    # angle of ~sqrt(eps) for identical pairs, which costs them ~1e-8 relative).
    q = w2 / 9 * np.sum(x1 * x1, axis=1) + b_std**2
    t = q.copy()
    for depth in range(1, 21):
        if depth > 1:
            q = w2 / 2 * q + b_std**2
            t = w2 / 2 * t + q
        assert rel_err(trace.nngp_diag1[depth - 1], q) < 1e-12
        assert rel_err(trace.ntk_diag1[depth - 1], t) < 1e-12


def test_bias_free_layer_loop_matches_the_40_digit_oracle_to_depth_1e6(x64):
    # The layer map in the angle (docs/kernels.md#the-layer-map-in-the-angle): one rounding
    # a layer in the angle, and Theta's update as an increment, keep depth 10^6 within 1e-13.
    oracle = json.loads((pathlib.Path(__file__).parent / "data" / "deep_oracle.json").read_text())
    layers = [l for l in oracle["layers"] if l >= 100]
    picked = [k for k, r in enumerate(oracle["rho1"]) if -0.95 < r < 0.995]
    rho1 = np.array([oracle["rho1"][k] for k in picked])
    x = np.vstack([[1.0, 0.0], np.stack([rho1, np.sqrt(1.0 - rho1**2)], axis=1)])
    got = relu_kernel_trace(x, depth=max(layers), layers=layers, method="loop",
                            get=("rho", "ntk_normalized"))
    for field in ("rho", "ntk_normalized"):
        ref = np.array([[oracle["values"][k][field][oracle["layers"].index(l)] for k in picked]
                        for l in layers])
        assert rel_err(np.asarray(getattr(got, field))[:, 0, 1:], ref, floor=1e-6) < 1e-13, field


@pytest.mark.parametrize("w2,b_std", [(2.0, 0.0), (1.0, 0.3), (3.0, 0.5)])
def test_trace_matches_40_digit_kernel_recursion(x64, rng, w2, b_std):
    x1 = rng.normal(size=(3, 4))
    # Identical, antipodal, unrelated and nearly identical pairs (angle ~1e-3).
    x2 = np.vstack([x1[0], -x1[1], rng.normal(size=4) * 3, x1[2] + 1e-3 * rng.normal(size=4)])
    ref = oracles.kernel_recursion(x1, x2, depth=60, W_std=math.sqrt(w2), b_std=b_std)
    got = relu_kernel_trace(x1, x2, depth=60, W_std=math.sqrt(w2), b_std=b_std)
    for field in ("nngp", "ntk", "rho", "ntk_normalized", "nngp_dot"):
        a, b = np.asarray(getattr(got, field)), ref[field]
        assert rel_err(a, b, floor=1e-12 * np.abs(b).max()) < 1e-10, field


def test_requested_layers_equal_the_full_trace_in_the_order_given(x64, rng):
    x = rng.normal(size=(4, 3))
    full = relu_kernel_trace(x, depth=30, b_std=0.2)
    part = relu_kernel_trace(x, depth=30, b_std=0.2, layers=[30, 1, 17])
    np.testing.assert_array_equal(part.layers, [30, 1, 17])
    for field in ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized", "ntk_diag2"):
        np.testing.assert_allclose(
            getattr(part, field), np.asarray(getattr(full, field))[[29, 0, 16]], rtol=1e-14
        )
    only = relu_kernel_trace(x, depth=30, layers=[5], get=("rho",))
    assert only.ntk is None and only.rho.shape == (1, 4, 4)
    np.testing.assert_allclose(relu_ntk(x, depth=30, b_std=0.2), full.ntk[-1], rtol=1e-14)
    np.testing.assert_allclose(relu_nngp(x, depth=30, b_std=0.2), full.nngp[-1], rtol=1e-14)


def test_sphere_inputs_reduce_to_the_correlation_trace(x64, rng):
    x = rng.normal(size=(7, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= math.sqrt(5)  # Sigma^1(x, x) = W^2/n0 |x|^2 = 2
    trace = relu_kernel_trace(x, depth=500, layers=[1, 50, 500])
    rho1 = np.clip(x @ x.T / 5, -1, 1)
    np.fill_diagonal(rho1, 1.0)  # the kernel trace treats identical points as identical
    corr = correlation_trace(rho1, depth=500, layers=[1, 50, 500])
    np.testing.assert_allclose(trace.rho, corr.rho, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(trace.ntk_normalized, corr.ntk_normalized, rtol=1e-12, atol=1e-15)
    # With W^2 = 2 and unit-variance inputs, Theta^L(x, x) = 2 L and Thetabar^L = Theta^L / (2 L).
    np.testing.assert_allclose(trace.ntk_diag1[:, 0], 2.0 * np.array([1, 50, 500]), rtol=1e-12)


def test_proposition_1_diagonal_closed_forms(x64, rng):
    x = rng.normal(size=(3, 8)) * np.array([[0.5], [1.0], [4.0]])
    n0, sq = 8, np.sum(x * x, axis=1)
    ell = np.arange(1, 13)
    t1 = relu_kernel_trace(x, depth=12, W_std=1.0)
    np.testing.assert_allclose(t1.nngp_diag1, sq[None] / (n0 * 2.0 ** (ell[:, None] - 1)), rtol=1e-13)
    np.testing.assert_allclose(t1.ntk_diag1, ell[:, None] * sq[None] / (n0 * 2.0 ** (ell[:, None] - 1)), rtol=1e-13)
    np.testing.assert_allclose(np.diagonal(t1.nngp_dot[1:], axis1=1, axis2=2), 0.5, rtol=1e-14)
    t2 = relu_kernel_trace(x, depth=12)
    np.testing.assert_allclose(t2.ntk_diag1, ell[:, None] * 2 * sq[None] / n0, rtol=1e-13)


def test_no_nan_at_identical_antipodal_and_extreme_points(x64, rng):
    x = rng.normal(size=(3, 4))
    pts = np.vstack([x, x[0], -x[0], 1e-150 * x[1], 1e150 * x[2]])
    for b_std in (0.0, 0.5):
        tr = relu_kernel_trace(pts, depth=2000, layers=[1, 2, 10, 2000], b_std=b_std)
        for field in tr._fields[1:-1]:  # the arrays (not layers, not error_bound)
            assert np.all(np.isfinite(np.asarray(getattr(tr, field)))), (b_std, field)
        rho = np.asarray(tr.rho)
        assert np.all(rho <= 1.0) and np.all(rho >= -1.0)
        assert rho[0, 0, 3] == 1.0
    corr = correlation_trace(np.array([-1.0, 1.0]), depth=100_000, layers=[1, 2, 100_000])
    assert np.all(np.isfinite(np.asarray(corr.ntk_normalized)))
    np.testing.assert_array_equal(corr.rho[:, 1], 1.0)
    assert abs(float(corr.rho[1, 0])) < 1e-15  # f(-1) = 0


def test_normalized_kernels_do_not_depend_on_w_std_and_survive_overflow(x64, rng):
    # Without bias, rho_l and Thetabar^l are scale free; with W^2 = 16 the raw
    # kernels overflow float64 near depth 250 and must come out as inf, not NaN.
    x = rng.normal(size=(4, 3))
    ref = relu_kernel_trace(x, depth=1500, layers=[1, 100, 1500])
    big = relu_kernel_trace(x, depth=1500, layers=[1, 100, 1500], W_std=4.0)
    small = relu_kernel_trace(x, depth=1500, layers=[1, 100, 1500], W_std=0.5)
    for other in (big, small):
        np.testing.assert_allclose(other.rho, ref.rho, rtol=1e-12)
        np.testing.assert_allclose(other.ntk_normalized, ref.ntk_normalized, rtol=1e-12)
    assert np.all(np.isinf(np.asarray(big.ntk[-1]))) and not np.any(np.isnan(np.asarray(big.ntk)))
    assert np.all(np.asarray(small.ntk[-1]) == 0.0)


def test_float32_accuracy_at_depth_1000(rng):
    rho = np.array([-0.9, 0.0, 0.5, 0.99], dtype=np.float32)
    f32 = correlation_trace(rho, depth=1000, layers=[10, 1000])
    with jax.enable_x64(True):
        f64 = correlation_trace(rho.astype(np.float64), depth=1000, layers=[10, 1000])
    assert f32.rho.dtype == jnp.float32
    assert rel_err(f32.rho, f64.rho) < 1e-6
    assert rel_err(f32.ntk_normalized, f64.ntk_normalized) < 1e-5


def _central_difference(fn, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (fn(xp) - fn(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_gradients_are_finite_and_match_finite_differences(x64, rng, b_std):
    x = rng.normal(size=(4, 3))
    x[3] = -x[0]  # an antipodal pair; the diagonal holds identical pairs

    def loss(xx, w, b):
        tr = relu_kernel_trace(xx, depth=6, W_std=w, b_std=b)
        return jnp.sum(tr.ntk[-1]) + jnp.sum(tr.nngp[2] ** 2) + jnp.sum(tr.ntk_normalized[-1])

    gx, gw, gb = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), 1.3, b_std)
    for g in (gx, gw, gb):
        assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(gx, _central_difference(lambda v: float(loss(v, 1.3, b_std)), x), rtol=1e-5, atol=1e-6)
    fd_w = (loss(x, 1.3 + 1e-6, b_std) - loss(x, 1.3 - 1e-6, b_std)) / 2e-6
    np.testing.assert_allclose(gw, fd_w, rtol=1e-6)
    if b_std > 0:
        fd_b = (loss(x, 1.3, b_std + 1e-6) - loss(x, 1.3, b_std - 1e-6)) / 2e-6
        np.testing.assert_allclose(gb, fd_b, rtol=1e-6)


def test_gradient_across_two_input_sets_at_a_shared_point_is_finite(x64, rng):
    x1 = rng.normal(size=(2, 3))
    g = jax.grad(lambda a: jnp.sum(relu_ntk(a, x1, depth=4)))(jnp.asarray(x1))
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(x1=[[1.0, np.nan]]), "NaN at index"),
        (dict(x1=[[1.0, np.inf]]), "infinite"),
        (dict(x1=[[1.0, 2.0], [0.0, 0.0]]), r"x1\[1\] is the zero vector"),
        (dict(x1=[[1.0, 2.0]], x2=[[2.0, 1.0], [np.nan, 1.0]]), r"x2 contains NaN at index \(1, 0\)"),
        (dict(x1=[[1.0, 2.0]], x2=[[2.0, 1.0], [0.0, 0.0]]), r"x2\[1\] is the zero vector"),
        (dict(x1=[[1.0, 2.0]], x2=[[1.0, 2.0, 3.0]]), "feature dimensions differ"),
        (dict(x1=[[1.0, 2.0]], depth=0), "depth must be >= 1"),
        (dict(x1=[[1.0, 2.0]], W_std=0.0), "W_std must be"),
        (dict(x1=[[1.0, 2.0]], b_std=-1.0), "b_std must be"),
        (dict(x1=[[1.0, 2.0]], layers=[0, 3]), "layers must lie in 1..depth"),
        (dict(x1=[[1.0, 2.0]], layers=[2, 2]), "distinct"),
        (dict(x1=[[1.0, 2.0]], get=("ntk", "foo")), "unknown field"),
        (dict(x1=[1.0, 2.0]), "matrix"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, match):
    kwargs = {"depth": 3, **kwargs}
    x1 = kwargs.pop("x1")
    with pytest.raises(ValueError, match=match):
        relu_kernel_trace(np.asarray(x1), **kwargs)


def test_zero_vector_is_fine_with_a_bias(x64):
    tr = relu_kernel_trace(np.array([[0.0, 0.0], [1.0, 2.0]]), depth=5, b_std=0.1)
    assert np.all(np.isfinite(np.asarray(tr.ntk_normalized)))


def test_correlation_trace_rejects_out_of_range_correlations():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        correlation_trace(np.array([1.5]), depth=3)
    with pytest.raises(ValueError, match="NaN"):
        correlation_trace(np.array([np.nan]), depth=3)


def test_importing_ntkdepth_does_not_enable_x64():
    code = (
        "import jax, ntkdepth, ntkdepth.kernels, ntkdepth.empirical\n"
        "assert not jax.config.jax_enable_x64\n"
        "import numpy as np\n"
        "tr = ntkdepth.kernels.relu_kernel_trace(np.ones((2, 3), np.float32), depth=2)\n"
        "assert tr.ntk.dtype == jax.numpy.float32, tr.ntk.dtype\n"
        "tr = ntkdepth.kernels.relu_kernel_trace(np.ones((2, 3)), depth=2)\n"
        "assert tr.ntk.dtype == jax.numpy.float64, tr.ntk.dtype\n"
        "assert not jax.config.jax_enable_x64\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_accelerator_loop_variant_gives_the_same_kernels(x64, rng, monkeypatch):
    # The GPU/TPU variant (unrolled loop, unconditional writes) checked on the CPU, unrolled 3 layers
    # (the accelerators' 8 only makes the compiled body larger): loop lengths not a multiple of it.
    from ntkdepth.kernels import relu as relu_module

    x = rng.normal(size=(5, 3))
    ref = relu_kernel_trace(x, depth=30, layers=[30, 2, 11], b_std=0.2)
    ref_all = correlation_trace(np.array([-0.5, 0.3]), depth=50, layers=[50, 1])
    # Every layer (a stacked scan): without bias, and with one.
    ref_every = [relu_kernel_trace(x, depth=13, b_std=b, method="loop") for b in (0.0, 0.2)]
    monkeypatch.setattr(relu_module, "loop_options", lambda: (3, False))
    got = relu_kernel_trace(x, depth=30, layers=[30, 2, 11], b_std=0.2)
    got_all = correlation_trace(np.array([-0.5, 0.3]), depth=50, layers=[50, 1])
    got_every = [relu_kernel_trace(x, depth=13, b_std=b, method="loop") for b in (0.0, 0.2)]
    for field in ("nngp", "ntk", "rho", "ntk_normalized", "nngp_dot"):
        np.testing.assert_allclose(getattr(got, field), getattr(ref, field), rtol=1e-13, atol=1e-15)
        for a, b in zip(got_every, ref_every):
            assert getattr(a, field).shape == (13, 5, 5)
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got_all.ntk_normalized, ref_all.ntk_normalized, rtol=1e-13)
