"""The gradient-flow predictor against neural-tangents, closed forms and an ODE."""

import numpy as np
import pytest

from ntkdepth.data import sample_sphere
from ntkdepth.kernels import nt_bridge, relu_ntk
from ntkdepth.theory import GradientFlowPredictor, SingularKernelError


def _problem(rng, n, m, dim, depth, outputs, f0_scale):
    """NTK regression data: ``n`` training and ``m`` test points on the sphere, targets and ``f0``."""
    x, x_test = sample_sphere(rng, n, dim), sample_sphere(rng, m, dim)
    k = np.asarray(relu_ntk(x, depth=depth))
    k_test = np.asarray(relu_ntk(x_test, x, depth=depth))
    y = rng.normal(size=(n, outputs))
    f0 = rng.normal(size=(n, outputs)) * f0_scale
    f0_test = rng.normal(size=(m, outputs)) * f0_scale
    return dict(k=k, k_test=k_test, y=y, f0=f0, f0_test=f0_test)


@pytest.fixture
def problem(x64, rng):
    return _problem(rng, 12, 4, dim=5, depth=4, outputs=3, f0_scale=0.3)


@pytest.mark.parametrize("lr", [1.0, 0.3])
def test_agrees_with_neural_tangents_gradient_descent_mse(problem, lr):
    p = problem
    ours = GradientFlowPredictor(p["k"], p["y"], learning_rate=lr)
    # neural-tangents minimises 0.5 |f - y|^2 / y.size: its learning rate is ours times y.size.
    theirs = nt_bridge.predict.gradient_descent_mse(p["k"], p["y"], learning_rate=lr * p["y"].size)
    times = np.array([0.0, 0.05, 0.7, 3.0, 40.0])
    got_test = ours.predict(times, p["k_test"], p["f0"], p["f0_test"])
    got_train = ours.predict_train(times, p["f0"])
    for i, t in enumerate(times):
        nt_train, nt_test = theirs(t, p["f0"], p["f0_test"], p["k_test"])
        np.testing.assert_allclose(got_test[i], nt_test, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got_train[i], nt_train, rtol=1e-8, atol=1e-10)


def test_matches_an_explicit_euler_integration_of_gradient_flow(problem):
    # d f(X)/dt = -eta Theta (f(X) - Y), d f(x)/dt = -eta Theta(x, X) (f(X) - Y).
    p, eta, t_end, steps = problem, 0.5, 2.0, 200_000
    dt = t_end / steps
    f, g = p["f0"].copy(), p["f0_test"].copy()
    for _ in range(steps):
        r = f - p["y"]
        g -= dt * eta * p["k_test"] @ r
        f -= dt * eta * p["k"] @ r
    pred = GradientFlowPredictor(p["k"], p["y"], learning_rate=eta)
    np.testing.assert_allclose(pred.predict_train(t_end, p["f0"]), f, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pred.predict(t_end, p["k_test"], p["f0"], p["f0_test"]), g, rtol=1e-3, atol=1e-4)


def test_t_infinity_interpolates_and_p_t_has_the_closed_form_spectrum(problem):
    p = problem
    pred = GradientFlowPredictor(p["k"], p["y"])
    np.testing.assert_allclose(pred.predict_train(np.inf, p["f0"]), p["y"], atol=1e-8)
    np.testing.assert_allclose(pred.predict_train(np.inf), p["y"], atol=1e-8)
    # Test points equal to training points are interpolated too.
    np.testing.assert_allclose(pred.predict(np.inf, p["k"][:3]), p["y"][:3], atol=1e-8)
    lam = np.linalg.eigvalsh(p["k"])
    for t in (0.1, 2.0, 50.0):
        got = np.linalg.eigvalsh(pred.projection(t))
        np.testing.assert_allclose(np.sort(got), np.sort((1 - np.exp(-t * lam)) / lam), rtol=1e-10)
        assert pred.projection_norm(t) <= min(t, 1 / lam.min()) * (1 + 1e-12)
    np.testing.assert_allclose(pred.projection(np.inf) @ p["k"], np.eye(12), atol=1e-9)
    assert pred.lambda_min == pytest.approx(lam.min(), rel=1e-12)
    assert pred.condition_number == pytest.approx(lam.max() / lam.min(), rel=1e-10)


def test_mean_predictor_is_the_average_over_initial_functions(problem, rng):
    p = problem
    pred = GradientFlowPredictor(p["k"], p["y"])
    mean = pred.predict(1.5, p["k_test"])
    # f_t is affine in f_0: averaging over +-f_0 gives the mean predictor exactly.
    plus = pred.predict(1.5, p["k_test"], p["f0"], p["f0_test"])
    minus = pred.predict(1.5, p["k_test"], -p["f0"], -p["f0_test"])
    np.testing.assert_allclose((plus + minus) / 2, mean, rtol=1e-12, atol=1e-14)


def test_vector_targets_and_scalar_times_keep_their_shapes(problem):
    p = problem
    pred = GradientFlowPredictor(p["k"], p["y"][:, 0])
    assert pred.predict(1.0, p["k_test"]).shape == (4,)
    assert pred.predict([1.0, 2.0], p["k_test"]).shape == (2, 4)
    assert pred.predict_train(1.0).shape == (12,)


def test_a_singular_kernel_is_refused_at_t_infinity_only():
    k = np.ones((3, 3))  # rank one: colinear inputs
    pred = GradientFlowPredictor(k, np.arange(3.0))
    with pytest.raises(SingularKernelError, match="singular"):
        pred.predict_train(np.inf)
    # A finite time is fine: P_t's eigenvalues tend to t where lambda -> 0.
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(pred.projection(2.0))), np.sort([2.0, 2.0, (1 - np.exp(-6)) / 3]), rtol=1e-10)


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.ones((2, 3)), np.ones(2)), "square"),
        ((np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones(2)), "not symmetric"),
        ((np.eye(2), np.ones(3)), "y_train must be"),
        ((np.array([[np.nan, 0], [0, 1.0]]), np.ones(2)), "NaN"),
    ],
)
def test_bad_input_is_named(args, match):
    with pytest.raises(ValueError, match=match):
        GradientFlowPredictor(*args)


# -- the factorizations at scale, against numpy's eigendecomposition ----------


@pytest.fixture
def larger(x64, rng):
    # 150 points: three blocks of Householder reflectors, the last one partial.
    return _problem(rng, 150, 7, dim=8, depth=3, outputs=4, f0_scale=0.2)


def _reference(k, k_test, y, f0, f0_test, t):
    """The predictor written out with numpy's eigh: f0(x) + K(x, X) V diag(p_t) V^T (Y - f0(X))."""
    lam, v = np.linalg.eigh(k)
    p = 1 / lam if np.isinf(t) else -np.expm1(-t * lam) / lam
    coeff = v @ (p[:, None] * (v.T @ (y - f0)))
    return f0_test + k_test @ coeff, coeff


@pytest.mark.parametrize("overwrite", [False, True])
def test_in_place_factorizations_equal_the_eigendecomposition(larger, overwrite):
    p = larger
    times = np.array([0.0, 0.03, 1.0, 25.0, np.inf])
    k = p["k"].copy()
    pred = GradientFlowPredictor(k, p["y"], overwrite_k=overwrite)
    got = pred.predict(times, p["k_test"], p["f0"], p["f0_test"])
    coeff = pred.coefficients(times, p["f0"])
    for i, t in enumerate(times):
        want, want_coeff = _reference(p["k"], p["k_test"], p["y"], p["f0"], p["f0_test"], t)
        np.testing.assert_allclose(got[i], want, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(coeff[i], want_coeff, rtol=1e-8, atol=1e-9 * np.abs(want_coeff).max())
    lam, v = np.linalg.eigh(p["k"])
    np.testing.assert_allclose(pred.eigenvalues, lam, rtol=1e-12, atol=1e-13 * lam[-1])
    vecs = pred.eigenvectors
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(150), atol=1e-12)
    np.testing.assert_allclose((vecs * pred.eigenvalues) @ vecs.T, p["k"], atol=1e-12 * lam[-1])
    np.testing.assert_allclose(pred.projection(2.0), (v * (-np.expm1(-2 * lam) / lam)) @ v.T, atol=1e-11)
    # Only overwrite_k lets the factorization use the caller's array.
    assert np.array_equal(k, p["k"]) != overwrite


def test_predictions_are_float64_whatever_jax_x64_mode(rng):
    # No x64 fixture: the predictor's compiled products must stay float64 (float32 would be ~1e-7 off).
    a = rng.normal(size=(150, 200))
    k, k_test = a @ a.T / 200, rng.normal(size=(6, 200)) @ a.T / 200
    y = rng.normal(size=(150, 3))
    pred = GradientFlowPredictor(k, y)
    times = np.array([0.5, 4.0, np.inf])
    zero = np.zeros_like(y)
    for _ in range(2):  # the second call reuses V^T Y
        got, got_train = pred.predict(times[:2], k_test), pred.predict_train(times[:2])
        for i, t in enumerate(times[:2]):
            want, coeff = _reference(k, k_test, y, zero, np.zeros((6, 3)), t)
            np.testing.assert_allclose(got[i], want, rtol=1e-11, atol=1e-12 * np.abs(want).max())
            np.testing.assert_allclose(got_train[i], k @ coeff, rtol=1e-11, atol=1e-12 * np.abs(y).max())
    assert got.dtype == np.float64 and got.flags.writeable
    want, _ = _reference(k, k_test, y, zero, np.zeros((6, 3)), np.inf)
    np.testing.assert_allclose(pred.predict(times, k_test)[2], want, rtol=1e-9, atol=1e-10 * np.abs(want).max())


def test_t_infinity_by_cholesky_equals_the_eigendecomposition(larger):
    p = larger
    want, _ = _reference(p["k"], p["k_test"], p["y"], p["f0"], p["f0_test"], np.inf)
    chol = GradientFlowPredictor(p["k"], p["y"])
    np.testing.assert_allclose(chol.predict(np.inf, p["k_test"], p["f0"], p["f0_test"]), want, rtol=1e-9)
    assert chol._eig is None  # t = inf alone never computed the spectrum
    np.testing.assert_allclose(chol.predict_train(np.inf, p["f0"]), p["y"])
    # Once factorized in place by Cholesky, the kernel is gone: finite times say what to do.
    inplace = GradientFlowPredictor(p["k"].copy(), p["y"], overwrite_k=True)
    inplace.predict(np.inf, p["k_test"])
    with pytest.raises(RuntimeError, match="finite times before t = inf"):
        inplace.predict(1.0, p["k_test"])


def test_a_singular_float32_kernel_is_refused_at_t_infinity(rng):
    """n = d + 1 points at depth 1: Theta^1 is a Gram matrix of rank d, rounded to float32.

    A fixed rtol of 1e-13 lets most draws through and t = inf returns finite garbage;
    the singularity test at n eps(float32) refuses every one, by either factorization.
    """
    d = 5
    for _ in range(20):
        x = sample_sphere(rng, d + 1, d).astype(np.float32)
        k = np.asarray(relu_ntk(x, depth=1))
        assert k.dtype == np.float32
        y = rng.normal(size=d + 1)
        with pytest.raises(SingularKernelError, match="singular|not positive definite"):
            GradientFlowPredictor(k, y).predict_train(np.inf)  # Cholesky
        pred = GradientFlowPredictor(k, y)
        assert pred.lambda_min <= (d + 1) * np.finfo(np.float32).eps * pred.lambda_max
        with pytest.raises(SingularKernelError, match="singular"):
            pred.predict(np.inf, k[:2])  # the spectrum
        assert np.all(np.isfinite(pred.predict(3.0, k[:2])))  # finite times stay fine


def test_the_singularity_threshold_follows_the_dtype(rng):
    # Condition number 1e9: invertible in float64, not for a kernel rounded to float32.
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    k = (q * np.geomspace(1e-9, 1.0, 10)) @ q.T
    k = (k + k.T) / 2
    y = rng.normal(size=10)
    np.testing.assert_allclose(GradientFlowPredictor(k, y).predict_train(np.inf), y)
    assert np.all(np.isfinite(GradientFlowPredictor(k, y).predict(np.inf, k[:3])))
    k32 = k.astype(np.float32)
    k32 = (k32 + k32.T) / 2
    with pytest.raises(SingularKernelError):
        GradientFlowPredictor(k32, y).predict(np.inf, k[:3])
    with pytest.raises(SingularKernelError, match="singular"):
        GradientFlowPredictor(k32, y, rtol=None).projection_norm(np.inf)
    # A user's rtol overrides the default.
    with pytest.raises(SingularKernelError, match="rtol"):
        GradientFlowPredictor(k, y, rtol=1e-8).projection_norm(np.inf)


def test_symmetry_and_definiteness_are_checked_within_rounding(rng):
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    k = (q * np.linspace(0.5, 2.0, 6)) @ q.T
    noise = np.zeros((6, 6))
    noise[0, 1] = 1e-5
    GradientFlowPredictor((k + noise).astype(np.float32), np.ones(6))  # within sqrt(eps) of float32
    with pytest.raises(ValueError, match="k_train is not symmetric.*sqrt"):
        GradientFlowPredictor(k + noise, np.ones(6))  # beyond sqrt(eps) of float64
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        GradientFlowPredictor(indefinite, np.ones(2)).predict(1.0, indefinite)
    with pytest.raises(SingularKernelError, match="not positive definite"):
        GradientFlowPredictor(indefinite, np.ones(2)).predict(np.inf, indefinite)


def test_nan_and_broadcast_only_shapes_are_named(problem):
    p = problem
    pred = GradientFlowPredictor(p["k"], p["y"])
    for value in (np.nan, -np.inf):
        bad = p["k_test"].copy()
        bad[1, 2] = value
        for t in (1.0, [0.5, np.inf]):
            with pytest.raises(ValueError, match="k_test_train contains NaN"):
                pred.predict(t, bad)
    f0 = p["f0"].copy()
    f0[0, 0] = np.nan
    with pytest.raises(ValueError, match="f0_train contains NaN"):
        pred.predict(1.0, p["k_test"], f0, p["f0_test"])
    with pytest.raises(ValueError, match="f0_train contains NaN"):
        pred.predict_train(1.0, f0)
    f0t = p["f0_test"].copy()
    f0t[3, 1] = np.inf
    with pytest.raises(ValueError, match="f0_test contains NaN"):
        pred.predict(1.0, p["k_test"], p["f0"], f0t)
    # [m] and [1, K] broadcast against [m, K]: refused, naming the shape wanted.
    for shape in [(4,), (1, 3), (4, 1)]:
        with pytest.raises(ValueError, match=r"f0_test must have shape \[4, 3\]"):
            pred.predict(1.0, p["k_test"], p["f0"], np.zeros(shape))


def test_a_jax_kernel_is_never_written_into(larger):
    import jax.numpy as jnp

    p = larger
    kj = jnp.asarray(p["k"])
    pred = GradientFlowPredictor(kj, p["y"], overwrite_k=True)
    pred.predict([1.0, np.inf], p["k_test"])
    np.testing.assert_array_equal(np.asarray(kj), p["k"])


def test_from_spec_is_the_predictor_of_the_spec_kernel(rng):
    from ntkdepth.models import NetworkSpec

    spec = NetworkSpec(depth=4, W_std=1.3, b_std=0.2, out_std=0.9)
    x, x_test = sample_sphere(rng, 10, 5), sample_sphere(rng, 3, 5)
    y = rng.normal(size=(10, 2))
    pred = GradientFlowPredictor.from_spec(spec, x, y, learning_rate=0.5)
    assert pred.spec == spec
    kernel_fn = spec.kernel_fn(dtype="float64")
    ref = GradientFlowPredictor(np.asarray(kernel_fn(x, get="ntk")), y, learning_rate=0.5)
    k_test = np.asarray(kernel_fn(x_test, x, get="ntk"))
    times = [0.3, 2.0, np.inf]
    np.testing.assert_allclose(pred.predict_at(times, x_test), ref.predict(times, k_test), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pred.predict_at(np.inf, x), y, atol=1e-8)  # interpolation at t = inf
    with pytest.raises(ValueError, match="predict_at needs the network.*from_spec"):
        ref.predict_at(1.0, x_test)
    with pytest.raises(ValueError, match="muP network has no infinite-width kernel"):
        GradientFlowPredictor.from_spec(spec.replace(parameterization="mup"), x, y)
    with pytest.raises(TypeError, match="spec must be a NetworkSpec; got int"):
        GradientFlowPredictor.from_spec(4, x, y)
