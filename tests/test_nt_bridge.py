"""neural-tangents through ntkdepth's bridge: stax and predict work, TensorFlow stays out."""

import math
import subprocess
import sys

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.empirical import empirical_ntk, monte_carlo_ntk
from ntkdepth.kernels import nt_bridge, relu_ntk, stax_mlp


def test_tensorflow_is_neither_installed_nor_imported():
    code = (
        "import sys, importlib.util\n"
        "from ntkdepth.kernels import nt_bridge, stax_mlp\n"
        "import numpy as np\n"
        "_, _, kernel_fn = stax_mlp(3, 8)\n"
        "k = kernel_fn(np.ones((2, 3)), None, 'ntk')\n"
        "nt_bridge.predict.gradient_descent_mse(k, np.ones((2, 1)))\n"
        "assert 'neural_tangents' in sys.modules\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf2jax')]\n"
        "assert not bad, bad\n"
        "assert importlib.util.find_spec('tensorflow') is None\n"
        "assert importlib.util.find_spec('tf2jax') is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_ntkdepth_kernels_does_not_import_neural_tangents():
    code = (
        "import sys, ntkdepth.kernels\n"
        "assert 'neural_tangents' not in sys.modules, 'imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "attribute,replacement",
    [
        ("empirical_ntk_fn", "ntkdepth.empirical.empirical_ntk"),
        ("empirical_kernel_fn", "ntkdepth.empirical.empirical_ntk"),
        ("linearize", "ntkdepth.empirical.empirical_ntk"),
        ("monte_carlo_kernel_fn", "ntkdepth.empirical.monte_carlo_ntk"),
    ],
)
def test_unavailable_parts_fail_with_a_message_naming_the_replacement(attribute, replacement):
    nt = nt_bridge.load()
    with pytest.raises(nt_bridge.NeuralTangentsFeatureUnavailable, match=replacement) as info:
        getattr(nt, attribute)(lambda p, x: x)
    assert "current JAX" in str(info.value)
    assert isinstance(info.value, NotImplementedError)


def test_experimental_fails_naming_tensorflow():
    nt = nt_bridge.load()
    with pytest.raises(nt_bridge.NeuralTangentsFeatureUnavailable, match="TensorFlow"):
        nt.experimental.empirical_ntk_fn_tf(None)


def test_stax_mlp_validates_its_arguments():
    with pytest.raises(ValueError, match="depth"):
        stax_mlp(0, 10)
    with pytest.raises(ValueError, match="parameterization"):
        stax_mlp(2, 10, parameterization="mup")


def test_stax_mlp_has_depth_weight_layers():
    init_fn, apply_fn, _ = stax_mlp(4, 7, b_std=0.1)
    _, params = init_fn(jax.random.PRNGKey(0), (-1, 3))
    weights = [p for p in params if p]
    assert len(weights) == 4
    assert [w[0].shape for w in weights] == [(3, 7), (7, 7), (7, 7), (7, 1)]
    assert apply_fn(params, jnp.ones((5, 3))).shape == (5, 1)


def test_predict_gradient_descent_mse_matches_an_eigendecomposition(x64, rng):
    # Gradient flow on 1/2 |f(X) - Y|^2 from f_0 = 0 (docs/predictor.md#the-predictor):
    # f_t(X) = (I - exp(-t Theta)) Y and f_t(x) = Theta(x, X) Theta^{-1} (I - exp(-t Theta)) Y.
    x_train = rng.normal(size=(6, 4))
    x_test = rng.normal(size=(3, 4))
    y = rng.normal(size=(6, 2))
    k_tt = np.asarray(relu_ntk(x_train, depth=5))
    k_st = np.asarray(relu_ntk(x_test, x_train, depth=5))
    lam, v = np.linalg.eigh(k_tt)
    # neural-tangents divides the loss by y.size; learning_rate=y.size removes that factor.
    predict_fn = nt_bridge.predict.gradient_descent_mse(k_tt, y, learning_rate=y.size)
    for t in (0.1, 1.0, 7.0):
        proj = v @ np.diag((1 - np.exp(-t * lam)) / lam) @ v.T
        expected_test = k_st @ proj @ y
        expected_train = (v @ np.diag(1 - np.exp(-t * lam)) @ v.T) @ y
        got_test = predict_fn(t, np.zeros((6, 2)), np.zeros((3, 2)), k_st)[1]
        got_train = predict_fn(t, np.zeros((6, 2)))
        np.testing.assert_allclose(got_test, expected_test, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got_train, expected_train, rtol=1e-8, atol=1e-10)


def test_empirical_ntk_of_a_wide_stax_network_approaches_the_analytic_kernel(x64, rng):
    # Monte Carlo over initializations of a finite network (width 1024) against
    # the infinite-width kernel: the analytic value lies within a few standard errors
    # plus the O(1/width) bias of the mean.
    x = rng.normal(size=(4, 5))
    init_fn, apply_fn, _ = stax_mlp(3, 1024, W_std=math.sqrt(2.0), b_std=0.1)
    mean, stderr = monte_carlo_ntk(init_fn, apply_fn, jax.random.PRNGKey(1), x, n_samples=6)
    exact = np.asarray(relu_ntk(x, depth=3, b_std=0.1))
    err = np.abs(np.asarray(mean) - exact)
    assert np.all(err <= 5 * np.asarray(stderr) + 0.02 * np.abs(exact)), (err, stderr)
    # ... and one narrow network is visibly not the kernel (the test can fail).
    init_n, apply_n, _ = stax_mlp(3, 4, W_std=math.sqrt(2.0), b_std=0.1)
    _, params = init_n(jax.random.PRNGKey(2), (-1, 5))
    narrow = np.asarray(empirical_ntk(apply_n, params, x))
    assert np.max(np.abs(narrow - exact) / np.abs(exact)) > 0.05


def test_empirical_ntk_matches_an_explicit_jacobian(x64, rng):
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(2, 3))
    init_fn, apply_fn, _ = stax_mlp(2, 6, b_std=0.2, out_dim=2)
    _, params = init_fn(jax.random.PRNGKey(0), (-1, 3))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = lambda x: jax.jacobian(lambda p: apply_fn(unravel(p), x))(flat)  # [n, k, P]
    j1, j2 = np.asarray(jac(x1)), np.asarray(jac(x2))
    expected = np.einsum("ikp,jkp->ij", j1, j2) / 2
    np.testing.assert_allclose(empirical_ntk(apply_fn, params, x1, x2, block_size=2), expected, rtol=1e-12)


def test_bridge_self_check_passes():
    out = subprocess.run(
        [sys.executable, "-m", "ntkdepth.kernels.check_bridge"], check=True, capture_output=True, text=True
    )
    assert "bridge OK" in out.stdout


def test_max_learning_rate_works_on_current_scipy(x64, rng):
    # 2 (1 + momentum) * y_size / lambda_max: the largest step gradient descent on
    # neural-tangents' loss 0.5 |f - y|^2 / y.size survives (its documented formula).
    x = rng.normal(size=(7, 3))
    k = np.asarray(relu_ntk(x, depth=3))
    lam_max = np.linalg.eigvalsh(k)[-1]
    lr = nt_bridge.predict.max_learning_rate(k)
    np.testing.assert_allclose(lr, 2 * 7 / lam_max, rtol=1e-12)
    lr = nt_bridge.predict.max_learning_rate(k, y_train_size=14, momentum=0.9)
    np.testing.assert_allclose(lr, 2 * 1.9 * 14 / lam_max, rtol=1e-12)
    # The same function through neural-tangents' private path as through the public one.
    nt = nt_bridge.load()
    assert nt._src.predict.max_learning_rate is nt.predict.max_learning_rate


@pytest.mark.parametrize("depth", [np.int64(3), np.int32(3)])
def test_stax_mlp_takes_numpy_integer_depths(depth, x64, rng):
    x = rng.normal(size=(3, 4))
    k = stax_mlp(depth, 8)[2](x, None, "ntk")
    np.testing.assert_allclose(k, relu_ntk(x, depth=3), rtol=1e-10)
