"""The gradient-flow predictor against neural-tangents, closed forms and an ODE."""

import numpy as np
import pytest

from ntkdepth.data import sample_sphere
from ntkdepth.kernels import nt_bridge, relu_ntk
from ntkdepth.theory import GradientFlowPredictor, SingularKernelError


@pytest.fixture
def problem(x64, rng):
    x = sample_sphere(rng, 12, 5)
    x_test = sample_sphere(rng, 4, 5)
    k = np.asarray(relu_ntk(x, depth=4))
    k_test = np.asarray(relu_ntk(x_test, x, depth=4))
    y = rng.normal(size=(12, 3))
    f0 = rng.normal(size=(12, 3)) * 0.3
    f0_test = rng.normal(size=(4, 3)) * 0.3
    return dict(k=k, k_test=k_test, y=y, f0=f0, f0_test=f0_test)


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
