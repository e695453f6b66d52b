"""The ReLU kernels where the Gram matrix, ``pi - t``, ``1 - (1 - rho)`` and the depth scale lose digits,
against the 50-digit reference of tests/relu_reference.py."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import correlation_trace, kernel_fn, kernel_trace, relu_kernel_trace
from ntkdepth.kernels.layer_scale import log_half_square
from ntkdepth.kernels.pairs import GAP_THRESHOLD, bias_correlation, direction_gap
import relu_reference as R

W = math.sqrt(2.0)


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return np.max(np.abs(got - ref) / np.abs(ref))


@pytest.fixture(scope="module")
def deep():
    return R.read_deep()


def _hard_rows(dtype):
    """Rows against ``BASE``: nearly identical, nearly antipodal, a radial step with a tiny turn,
    identical, antipodal, unrelated, and a nearly identical pair of norm 1e200 (float64)."""
    x = R.BASE
    rows = [x + 1e-7 * R.DIRECTION, -(x + 1e-9 * R.DIRECTION), x * (1 + 1e-7) + 1e-12 * R.DIRECTION,
            x, -x, R.OTHER, x + 1e-3 * R.DIRECTION]
    if dtype == np.float64:
        rows.append(1e200 * (x + 1e-8 * R.DIRECTION))
    return np.asarray([x], dtype), np.asarray(rows, dtype)


def _unit(x):
    y = x / np.max(np.abs(x), axis=1, keepdims=True)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("capacity", [None, 64, 3, 0])
def test_direction_gap_is_accurate_relative_to_itself(x64, dtype, capacity):
    # capacity None: every pair at once (a small kernel); 64: each row's first close pair, the
    # others listed and refined together; 3: more close pairs than that (the pass over every
    # row); 0: that pass whenever a row has more than one.
    x1, x2 = _hard_rows(dtype)
    if capacity in (64, 3):
        x1 = np.vstack([x1] * 4)  # 4 x 8 pairs, more than 3 of them close beyond each row's first
    cos = jnp.asarray((_unit(x1) @ _unit(x2).T).astype(dtype))
    got = np.asarray(jax.jit(direction_gap, static_argnames="capacity")(x1, x2, cos, capacity=capacity))
    eps = np.finfo(dtype).eps
    for i in range(x1.shape[0]):
        for j in range(x2.shape[0]):
            ref = R.gap(x1[i], x2[j])
            # Within a few ulps of itself; rows whose norms differ by far more than their
            # directions leave an absolute eps sqrt(gap) of the radial part of the difference.
            ratio = np.linalg.norm(x2[j] / np.max(np.abs(x2[j]))) * np.max(np.abs(x2[j])) / np.linalg.norm(x1[i])
            radial = eps * math.sqrt(ref) * min(1.0, abs(ratio - 1.0))
            assert abs(got[i, j] - ref) <= 8 * eps * ref + radial, (i, j, got[i, j], ref)
    assert np.all(got[:, 3:5] == 0.0)  # identical and antipodal rows: exactly 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [12, 1200])
def test_direction_gap_with_one_close_pair_a_row(x64, dtype, rows):
    # Each row with one close partner off the diagonal (nearly identical or nearly antipodal),
    # found by the one reduction: a small kernel (12 rows) and one past every pair's recomputation
    # (1200 rows, 12 of them checked), both refined to a few ulps of themselves.
    rng = np.random.default_rng(4)
    x1 = rng.normal(size=(rows, 8))
    step = 1e-7 if dtype == np.float64 else 1e-3
    flip = np.where(np.arange(rows) % 3 == 0, -1.0, 1.0)[:, None]
    x2 = (x1 + step * rng.normal(size=x1.shape))[::-1] * flip
    x1, x2 = x1.astype(dtype), x2.astype(dtype)
    cos = jnp.asarray((_unit(x1) @ _unit(x2).T).astype(dtype))
    got = np.asarray(jax.jit(direction_gap)(x1, x2, cos))
    eps = np.finfo(dtype).eps
    for i in range(12):
        for j in range(rows - 12, rows):
            ref = R.gap(x1[i], x2[j])
            if j == rows - 1 - i:  # the close partner: 1 - |cos| far below the threshold
                assert ref < 1e-4 * GAP_THRESHOLD[np.dtype(dtype).name]
            assert abs(got[i, j] - ref) <= 8 * eps * ref + eps * math.sqrt(ref), (i, j, got[i, j], ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direction_gap_of_one_set_takes_its_diagonal_as_identical(x64, dtype):
    # symmetric=True (x2 is x1): without another close pair the diagonal is 0 and the rest the plain
    # gap, as the search gives; with one (a near duplicate, a near antipode) the search runs and refines
    # them to a few ulps of themselves. 300 rows: past every pair's recomputation.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 8)).astype(dtype)
    fn = jax.jit(direction_gap, static_argnames="symmetric")
    eps = np.finfo(dtype).eps
    for case in ("apart", "close"):
        if case == "close":
            step = 1e-7 if dtype == np.float64 else 1e-3
            x[7] = x[3] + step * rng.normal(size=8)
            x[11] = -(x[5] + step * rng.normal(size=8))
        cos = jnp.asarray((_unit(x) @ _unit(x).T).astype(dtype))
        got = np.asarray(fn(x, x, cos, symmetric=True))
        np.testing.assert_array_equal(np.diag(got), 0.0)
        np.testing.assert_array_equal(got, np.asarray(fn(x, x, cos)))  # the search's numbers
        for i, j in ((3, 7), (5, 11), (0, 1)):
            ref = R.gap(x[i], x[j])
            assert abs(got[i, j] - ref) <= 8 * eps * ref + eps * math.sqrt(ref), (case, i, j, got[i, j], ref)


def test_direction_gap_is_differentiable_at_identical_rows(x64):
    x = jnp.asarray(R.BASE[None, :])
    g = jax.grad(lambda v: direction_gap(v, v + 1e-7, jnp.ones((1, 1)))[0, 0])(x)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("b_std", [0.1, 1e-4])
def test_bias_correlation_gap_matches_the_reference(x64, b_std):
    x1, x2 = _hard_rows(np.float64)
    x2 = x2[:7]
    n0 = x1.shape[1]
    norm1, norm2 = np.linalg.norm(x1, axis=1), np.linalg.norm(x2, axis=1)
    cos = (x1 / norm1[:, None]) @ (x2 / norm2[:, None]).T
    gap = direction_gap(jnp.asarray(x1), jnp.asarray(x2), jnp.asarray(cos))
    s1, s2 = W / math.sqrt(n0) * norm1, W / math.sqrt(n0) * norm2
    rho, far = (np.asarray(v) for v in bias_correlation(jnp.asarray(cos), gap, jnp.asarray(s1), jnp.asarray(s2),
                                                        jnp.asarray(b_std)))
    for j in range(x2.shape[0]):
        ref = R.pair_kernels(x1[0], x2[j], layers=[1], W_std=W, b_std=b_std)
        r = ref["rho"][0]
        ref_far = ref["gap"][0]
        assert abs(rho[0, j] - r) <= 4e-16 * max(abs(r), 1e-300) + 1e-16 * ref_far, (j, rho[0, j], r)
        # The norms' difference comes from the norms: an absolute eps |s - s'| b^2 / Q besides.
        ds = abs(s1[0] - s2[j]) * b_std**2 / (s1[0] * s2[j] + b_std**2)
        assert abs(far[0, j] - ref_far) <= 1e-14 * ref_far + 4e-16 * ds, (j, far[0, j], ref_far)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_half_square_is_accurate_relative_to_itself(x64, dtype):
    from mpmath import mp, mpf

    ws = [W, np.nextafter(W, 0.0), 1.0, 1.5, 3.0, 1e-3, 1.41421, 1e30 if dtype == np.float32 else 1e200]
    for w in np.asarray(ws, dtype):
        with mp.workdps(50):
            ref = float(mp.log(mpf(float(w)) ** 2 / 2))
        got = float(jax.jit(log_half_square)(jnp.asarray(w)))
        assert abs(got - ref) <= 4 * np.finfo(dtype).eps * abs(ref), (w, got, ref)
    np.testing.assert_allclose(jax.grad(log_half_square)(1.3), 2 / 1.3, rtol=1e-15)


def test_gap_threshold_leaves_generic_pairs_to_the_gram_matrix():
    # The refinement is for the few ill-conditioned pairs: unrelated inputs never reach it.
    assert GAP_THRESHOLD["float64"] < 1e-2 and GAP_THRESHOLD["float32"] < 0.05


# --------------------------------------------------------------------------
# The kernel functions on those pairs.

@pytest.mark.parametrize("method", ["loop", "interp"])
def test_nearly_identical_float64_pair_keeps_its_angle(x64, method):
    # 1 - rho_1 = 1.1e-15: the Gram matrix cannot tell it from 0.
    x, y = R.deep_pairs()["near_identical_f64"]
    layers = [1, 2, 3, 10]
    ref = R.pair_kernels(x, y, layers=layers, W_std=W)
    got = relu_kernel_trace(x[None], y[None], depth=10, layers=layers, method=method)
    for field in ("ntk_normalized", "ntk", "nngp_dot", "nngp"):
        assert rel(np.asarray(getattr(got, field))[:, 0, 0][1:], ref[field][1:]) < 1e-14, field


def test_nearly_identical_float32_pair_keeps_its_angle():
    # 1 - rho_1 ~ 6e-8 in float32 (a step of 1e-3 along the row).
    x = R.BASE.astype(np.float32)
    y = (R.BASE + 1e-3 * R.DIRECTION).astype(np.float32)
    ref = R.pair_kernels(x, y, layers=[2, 1000], W_std=W)
    got = relu_kernel_trace(x[None], y[None], depth=1000, layers=[2, 1000], dtype="float32",
                            get="ntk_normalized", method="loop")
    err = np.abs(np.asarray(got.ntk_normalized)[:, 0, 0] - ref["ntk_normalized"])
    # float32's own rounding over 1000 layers: ~1e-5 relative.
    assert np.all(err <= 1e-5 * np.abs(ref["ntk_normalized"])), err


def test_derivative_near_minus_one(x64):
    starts = np.array([-1 + 1e-14, -1 + 4.4e-15, -1 + 1e-10])
    got = correlation_trace(starts, depth=2)
    for k, r in enumerate(starts):
        ref = R.sphere_recursion(float(r), [1, 2])
        assert rel(got.fprime[:, k], [float(v) for v in ref["fprime"]]) < 1e-14, r


@pytest.mark.parametrize("b_std", [0.0, 1e-9])
def test_nearly_antipodal_pair_at_layer_two(x64, b_std):
    x = R.BASE
    y = -(R.BASE + 1e-7 * R.DIRECTION)
    ref = R.pair_kernels(x, y, layers=[1, 2, 3], W_std=W, b_std=b_std)
    got = relu_kernel_trace(x[None], y[None], depth=3, W_std=W, b_std=b_std)
    for field in ("nngp_dot", "ntk", "ntk_normalized", "rho", "nngp"):
        assert rel(np.asarray(getattr(got, field))[1:, 0, 0], ref[field][1:]) < 1e-13, field


def test_small_correlations_are_returned_exactly(x64):
    got = correlation_trace(np.array([1e-10, -3e-17, -1 + 1e-14]), depth=2)
    assert np.array_equal(np.asarray(got.rho[0]), [1e-10, -3e-17, -1 + 1e-14])
    ref = R.sphere_recursion(-1 + 1e-14, [2])["rho"][0]  # 3.0e-22
    assert rel(got.rho[1, 2], float(ref)) < 1e-13


# --------------------------------------------------------------------------
# Depth 10^6 and float32 at depth 10^5 (stored values, tests/data/relu_accuracy.json).


DEEP_METHODS = ["loop", pytest.param("interp", marks=pytest.mark.slow)]  # tables at 10^6: ~40 s


@pytest.mark.parametrize("method", DEEP_METHODS)
def test_nearly_identical_pair_at_depth_1e6(x64, deep, method):
    x, y = R.deep_pairs()["near_identical_f64"]
    got = relu_kernel_trace(x[None], y[None], depth=10**6, layers=R.DEEP_LAYERS, method=method,
                            get="ntk_normalized")
    ref = deep["near_identical_f64"]["ntk_normalized"]
    assert rel(np.asarray(got.ntk_normalized)[:, 0, 0], ref) < 1e-13


@pytest.mark.parametrize("method", DEEP_METHODS)
def test_raw_kernels_at_depth_1e6(x64, deep, method):
    # (W_std^2 / 2)^(L - 1) with W_std = sqrt(2) rounded is 1 + 1.4e-10 at L = 10^6.
    x, y = R.deep_pairs()["generic_f64"]
    got = relu_kernel_trace(x[None], y[None], depth=10**6, layers=R.DEEP_LAYERS, method=method,
                            get=("nngp", "ntk"))
    ref = deep["generic_f64"]
    for field in ("nngp", "ntk", "nngp_diag1", "ntk_diag1"):
        value = np.asarray(getattr(got, field))
        value = value[:, 0, 0] if value.ndim == 3 else value[:, 0]
        # The normalized kernels' own rounding at depth 10^6 (the interpolant's: 2.4e-14).
        assert rel(value, ref[field]) < 1e-13, field


def _rel_floor(a, b, floor):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


@pytest.mark.slow
def test_interp_is_as_close_to_the_40_digit_oracle_as_the_loop_to_depth_1e6(x64):
    # Starting correlations from -1 to 1, within 1e-8 and 1e-12 of +-1; depths 1..1e6 (the same
    # layers as above: one set of depth-10^6 tables serves this file).
    oracle = json.loads((pathlib.Path(__file__).parent / "data" / "deep_oracle.json").read_text())
    rho1, layers = np.array(oracle["rho1"]), oracle["layers"]
    assert layers == R.DEEP_LAYERS
    interp = correlation_trace(rho1, depth=max(layers), layers=layers, method="interp")
    loop = correlation_trace(rho1, depth=max(layers), layers=layers, method="loop")
    for field in ("rho", "one_minus_rho", "fprime", "ntk_normalized"):
        ref = np.array([v[field] for v in oracle["values"]]).T  # [layers, rho1]
        floor = 1e-300 if field == "one_minus_rho" else 1e-6
        for k, layer in enumerate(layers):
            e_int = _rel_floor(np.asarray(getattr(interp, field))[k], ref[k], floor)
            e_loop = _rel_floor(np.asarray(getattr(loop, field))[k], ref[k], floor)
            # As exact as the recursion: within 1e-12 of the oracle, or no further
            # from it than the loop's own rounding where that is larger.
            assert e_int <= max(1e-12, 1.1 * e_loop), (field, layer, e_int, e_loop)
            assert _rel_floor(np.asarray(getattr(interp, field))[k],
                              np.asarray(getattr(loop, field))[k], floor) <= max(1e-12, 2 * e_loop)


@pytest.mark.parametrize("method", ["loop", "interp"])
def test_float32_at_depth_1e5_within_the_stated_bound(deep, method):
    # docs/kernels.md#precision-per-call: Thetabar within 1e-3 at depth 10^5 in float32.
    x, y = R.deep_pairs()["generic_f32"]
    layers = R.DEEP_LAYERS[:-1]
    with pytest.warns(UserWarning, match="float32"):
        got = relu_kernel_trace(x[None], y[None], depth=10**5, layers=layers, method=method,
                                get="ntk_normalized")
    ref = deep["generic_f32"]["ntk_normalized"][:-1]
    err = np.abs(np.asarray(got.ntk_normalized, np.float64)[:, 0, 0] - ref) / ref
    assert np.all(err[layers.index(1000)::-1] < 1e-5) and err.max() < 1e-3, err


# --------------------------------------------------------------------------
# Many depths, and which path a call takes.


def _count_compiles():
    """A listener counting XLA compilations (JAX reports each with this event)."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    return count, listener


@pytest.mark.parametrize("method", ["loop", "interp"])
def test_many_depths_compile_a_few_loops(x64, method):
    x = np.random.default_rng(0).normal(size=(3, 5))
    depths = list(range(1000, 1024))  # one bucket of loop lengths (1024)
    relu_kernel_trace(x, depth=depths[0], layers=[depths[0]], method=method)  # warm
    relu_kernel_trace(x, depth=depths[0], layers=[1, depths[0]], method=method)
    count, listener = _count_compiles()
    try:
        for d in depths[1:]:
            got = relu_kernel_trace(x, depth=d, layers=[d], method=method)
            relu_kernel_trace(x, depth=d, layers=[1, d], method=method)
            correlation_trace(np.array([0.3, -0.5]), depth=d, layers=[d])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    # The first correlation_trace call compiles its loop (and, on the interpolated path, its
    # node run and pass); no other depth compiles anything.
    assert count[0] <= 4, count[0]
    ref = R.pair_kernels(x[0], x[1], layers=[depths[-1]], W_std=W)
    assert rel(np.asarray(got.ntk_normalized)[0, 0, 1], ref["ntk_normalized"]) < 1e-13


def test_auto_takes_the_loop_for_a_few_points_at_a_great_depth():
    from ntkdepth.kernels.interp import use_interp

    # 3 points against 400 at depth 10^7: the node run alone would cost twice the loop.
    assert not use_interp("auto", None, np.array([10**7]), 3 * 400)
    assert not use_interp("auto", None, np.array([10**5]), 20 * 20)
    # Many pairs at a moderate depth: the tables pay (measured 8x faster at 200 points, L = 1000).
    assert use_interp("auto", None, np.array([1000]), 200 * 200)
    assert use_interp("auto", None, np.array([10**6]), 2000 * 2000)
    # Depth 10 at 2,000 points (measured 2x faster by the tables), and tables already kept: no node
    # run to pay, so the few pairs at depth 10^7 take them too.
    assert use_interp("auto", None, np.array([10]), 2000 * 2000, "float32")
    assert use_interp("auto", None, np.array([10**7]), 3 * 400, built=True)
    # With a bias (inputs of one norm), 1,000 points, tables kept: the loop's layers cost more. Every
    # other layer of 100 in float64: 0.29 s by the tables, 0.87 s by the loop; every layer of 100:
    # 0.61 s against 0.82 s in float64, 0.41 s against 0.48 s in float32.
    bias = (1.69, 0.01, 1.0)
    assert use_interp("auto", bias, np.arange(1, 101, 2), 1000 * 1000, built=True)
    assert use_interp("auto", bias, np.arange(1, 101), 1000 * 1000, built=True)
    assert use_interp("auto", bias, np.arange(1, 101), 1000 * 1000, "float32", built=True)
    # Every layer of 100 without bias in float64, 1,000 points: a tie (0.58 s by the loop, 0.61 s by the
    # tables), which keeps the loop.
    assert not use_interp("auto", None, np.arange(1, 101), 1000 * 1000, built=True)
    # Every layer of 5 for 20 points: the node run (tables not built) costs more than the loop.
    assert not use_interp("auto", bias, np.arange(1, 6), 20 * 20)


def _memory_maps() -> int:
    """The process's memory maps (each compiled executable adds some), or -1 where unknown."""
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return -1


def _tanh_case(case):
    """``(call, reference)`` of one path for tanh (``W_std = 1.2``, ``b_std = 0.3``): ``call(d)`` the
    depth-``d`` kernels by the path, ``reference(d)`` the same from a loop exactly ``d`` long."""
    x = np.random.default_rng(1).normal(size=(2, 5))
    if case == "interp":  # one norm: the tabulated path applies
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    x1, x2 = x[:1], x[1:]
    kw = dict(activation="tanh", W_std=1.2, b_std=0.3, get=("ntk_normalized", "nngp"))

    def every_layer(d, **extra):  # layers 1..d: the loop's length is the depth itself
        return kernel_trace(x1, x2, depth=d, method="loop", **kw, **extra)

    if case == "residual":
        def call(d):
            # alpha = 1/sqrt(d) changes with the depth: a value of the loop too.
            got = kernel_trace(x1, x2, depth=d, layers=[1, d], residual=d**-0.5, **kw)
            kernel_fn(d, "tanh", 1.2, 0.3, residual="1/sqrt(L)")(x1, x2, get="ntk")
            return got

        return call, lambda d: every_layer(d, residual=d**-0.5)
    return (lambda d: kernel_trace(x1, x2, depth=d, layers=[1, d], method=case, **kw)), every_layer


@pytest.mark.parametrize("case", ["loop", "interp", "residual"])
def test_many_depths_neither_compile_nor_grow_the_process(x64, case):
    # Depths sharing a loop length (1025..1088) share the compiled loop, its Hermite plan and the
    # interpolated pass: after the first, no depth compiles anything or adds memory maps. Twelve
    # depths across the bucket, its first and last among them.
    call, reference = _tanh_case(case)
    depths = [*range(1025, 1088, 6), 1088]
    call(depths[0])
    maps = _memory_maps()
    count, listener = _count_compiles()
    try:
        for d in depths[1:]:
            got = call(d)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert count[0] == 0, count[0]
    if maps > 0:
        # Before the loop's depth became a value, each depth added about 200 maps.
        assert _memory_maps() - maps <= 16, (maps, _memory_maps())
    ref = reference(depths[-1])
    for field in ("ntk_normalized", "nngp"):
        # The loop past the depth does nothing: the padded loop gives the exact-length loop's numbers
        # (the tabulated path within its interpolation error).
        tol = 1e-12 if case == "interp" else 1e-14
        assert rel(np.asarray(getattr(got, field))[-1, 0, 0], np.asarray(getattr(ref, field))[-1, 0, 0]) < tol, field


def test_a_thousand_depths_need_a_few_loop_lengths():
    from ntkdepth.kernels.scan import loop_length

    depths = np.unique(np.geomspace(1, 10**7, 1000).astype(int))
    lengths = {loop_length(int(d)) for d in depths}
    assert all(d <= loop_length(int(d)) <= d + d // 8 for d in depths)
    # Eight lengths an octave (the depths themselves up to 16): 16 + 8 log2(10^7 / 16) ~ 170.
    assert len(lengths) <= 16 + 8 * math.ceil(math.log2(10**7 / 16)), len(lengths)


def test_layer_places_are_found_inside_the_loop():
    from ntkdepth.kernels.scan import requested_layers, slot_of

    layers = np.array([17, 2, 9, 1, 30])
    req = jnp.asarray(requested_layers(layers))
    got = [int(slot_of(req, jnp.int32(l))) for l in range(1, 40)]
    want = [list(layers).index(l) if l in layers else len(layers) for l in range(1, 40)]
    assert got == want


def test_the_loops_keep_nothing_per_layer(x64):
    # Depth 2^31 - 1, the largest: the compiled loops' arguments and scratch stay a few kilobytes
    # (a table of each layer's place in the output would take 8 GiB).
    from ntkdepth.kernels.activations import activation
    from ntkdepth.kernels.engine import normalized_loop, static_plan
    from ntkdepth.kernels.relu_engine import correlation_loop, layer_loop
    from ntkdepth.kernels.scan import requested_layers, run_length

    layers = np.array([1, 2**31 - 1])
    req = jnp.asarray(requested_layers(layers))
    loop = dict(length=run_length(layers), n_out=2, every_layer=False, unroll=1, on_cpu=True)
    x, w, b = jnp.ones((2, 5)), np.float64(1.4), np.float64(0.1)
    tanh = activation("tanh")
    lowered = [
        layer_loop.lower(x, x, w, b, req, get=("ntk", "rho"), bias=True, **loop),
        correlation_loop.lower(jnp.zeros(3), req, ones=(0,), **loop),
        normalized_loop.lower(jnp.zeros((2, 2)), jnp.zeros(2), jnp.zeros(2), w, b, req, act=tanh,
                              plan=static_plan(tanh.plan(np.array([1.0]), np.float64)), get=("ntk", "rho"),
                              bias=True, **loop),
    ]
    for low in lowered:
        m = low.compile().memory_analysis()
        if m is None:
            pytest.skip("this backend reports no memory analysis")
        total = m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes
        assert total < 2**20, m


def test_repeated_calls_compile_nothing(x64):
    # Twelve rows against themselves: more close pairs (the diagonal) than the gathered refinement
    # of ntkdepth.kernels.pairs takes at once, so its conditional runs; compiled once, not per call.
    x = np.random.default_rng(2).normal(size=(12, 5))
    kw = dict(depth=3, activation="tanh", W_std=1.2, b_std=0.3, method="loop")
    first = kernel_trace(x, **kw)
    count, listener = _count_compiles()
    try:
        again = kernel_trace(x, **kw)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert count[0] == 0, count[0]
    np.testing.assert_array_equal(np.asarray(again.ntk), np.asarray(first.ntk))


def test_arcsine_is_within_two_ulps_of_50_digits_and_differentiates_as_the_arcsine():
    """The erf and sign kernels' arcsine (a polynomial and a square root, no library call) against
    mpmath: uniform points, points near +-1 (down to 1 - 1e-16) and near 0 (down to 1e-300), the branch
    point sqrt(1/2) and its neighbours, in float64 and float32 (normal numbers: XLA flushes subnormals)."""
    import mpmath

    from ntkdepth.kernels.angles import ARCSINE_CORRECTION, arcsine

    # Its correction q(h) = (asin(sqrt h) / sqrt h - 1) / h on [0, 1/2], against 50 digits.
    h = np.linspace(0.0, 0.5, 41)
    with mpmath.workdps(50):
        want = [float((mpmath.asin(mpmath.sqrt(v)) / mpmath.sqrt(v) - 1) / v) if v > 0 else 1.0 / 6.0
                for v in (mpmath.mpf(float(v)) for v in h)]
    got = np.polynomial.chebyshev.chebval(4.0 * h - 1.0, ARCSINE_CORRECTION)
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)

    rng = np.random.default_rng(7)
    b = math.sqrt(0.5)
    x = np.concatenate([rng.uniform(-1, 1, 2000), 1 - np.geomspace(1e-16, 0.5, 200), -(1 - np.geomspace(1e-16, 0.5, 200)),
                        np.geomspace(1e-300, 1e-2, 200), np.linspace(b - 1e-3, b + 1e-3, 101),
                        [0.0, 1.0, -1.0, b, np.nextafter(b, 1.0), np.nextafter(b, 0.0)]])
    with mpmath.workdps(50):
        for dtype in (np.float64, np.float32):
            xd = x.astype(dtype)
            xd = xd[(np.abs(xd) >= np.finfo(dtype).tiny) | (xd == 0)]
            with jax.enable_x64(dtype == np.float64):
                got = np.asarray(arcsine(jnp.asarray(xd)), np.float64)
            ref = np.array([float(mpmath.asin(mpmath.mpf(float(v)))) for v in xd])
            ulp = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
            ulps = np.abs(got - ref) / np.where(ref == 0, 1.0, ulp)
            assert ulps.max() <= 2.0, (dtype, ulps.max(), xd[np.argmax(ulps)])
    with jax.enable_x64(True):
        pts = np.array([0.0, 0.3, -0.7, b, 0.9, -0.999999])
        grad = np.asarray(jax.vmap(jax.grad(arcsine))(jnp.asarray(pts)))
    with mpmath.workdps(50):
        ref = [float(1 / mpmath.sqrt(1 - mpmath.mpf(float(p)) ** 2)) for p in pts]
    np.testing.assert_allclose(grad, ref, rtol=1e-14)
