"""Kernel regression with early stopping (ntkdepth.theory.regression) against closed forms."""

import jax
import numpy as np
import pytest
import scipy.linalg

from ntkdepth.data import Subset, draw_subset, sample_sphere
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.metrics import one_hot
from ntkdepth.reporting import time_label
from ntkdepth.theory.regression import evaluate, ntk_regression, subset_regression


def _kernel(x, z, depth):
    with jax.enable_x64(True):
        return np.asarray(relu_kernel_trace(x, z, depth=depth, layers=[depth],
                                            get=("ntk_normalized",)).ntk_normalized[0])


def _closed_form(x_train, y_train, x_eval, depth, t):
    """``Thetabar(x, X) Thetabar^{-1} (I - expm(-t Thetabar)) Y`` by a dense matrix exponential."""
    k, kx, y = _kernel(x_train, x_train, depth), _kernel(x_eval, x_train, depth), one_hot(y_train, 3)
    if np.isinf(t):
        return kx @ np.linalg.solve(k, y)
    return kx @ np.linalg.solve(k, (np.eye(len(k)) - scipy.linalg.expm(-t * k)) @ y)


def test_ntk_regression_matches_the_matrix_exponential_at_every_depth_and_time():
    rng = np.random.default_rng(3)
    x = sample_sphere(rng, 14, 6)
    x_train, x_eval = x[:9], x[9:]
    y_train = rng.integers(0, 3, 9)
    depths, times = [2, 3, 7], [0.5, 4.0, np.inf]
    outputs, lam, stopped = ntk_regression(x_train, y_train, x_eval, depths, times, stopping_depth=3,
                                       num_classes=3)
    assert outputs.shape == (3, 3, 5, 3) and lam.shape == (3,)
    for d, depth in enumerate(depths):
        assert lam[d] == pytest.approx(np.linalg.eigvalsh(_kernel(x_train, x_train, depth))[0], rel=1e-9)
        for i, t in enumerate(times):
            np.testing.assert_allclose(outputs[d, i], _closed_form(x_train, y_train, x_eval, depth, t),
                                       rtol=1e-8, atol=1e-10)
    # Theorem 3's time 1 / lambda_min at depth 3.
    np.testing.assert_allclose(stopped, _closed_form(x_train, y_train, x_eval, 3, 1 / lam[1]), rtol=1e-8, atol=1e-10)


def test_evaluate_scores_outputs_and_leaves_nan_for_a_singular_kernel():
    labels = np.array([0, 1, 2, 2])
    perfect = one_hot(labels, 3)
    wrong = one_hot([1, 1, 2, 0], 3)  # two of four right; class 0 never predicted right
    scores = evaluate(np.stack([perfect, wrong, np.full_like(perfect, np.nan)]), labels)
    np.testing.assert_allclose(scores["mse"][:2], [0.0, 4 / 12])
    np.testing.assert_allclose(scores["accuracy"][:2], [1.0, 0.5])
    np.testing.assert_allclose(scores["error_rate"][:2], [0.0, 0.5])
    # Per-class F1 of `wrong`: class 0: 0, class 1: 2/3, class 2: 2/3.
    np.testing.assert_allclose(scores["macro_f1"][:2], [1.0, 4 / 9])
    assert all(np.isnan(scores[m][2]) for m in scores)


def test_subsets_are_disjoint_reproducible_and_choose_the_time_of_least_validation_mse():
    rng = np.random.default_rng(0)
    images, labels = rng.random((60, 8)), rng.integers(0, 10, 60)
    sub = draw_subset(images, labels, 12, 5, 7, seed=4, s=1)
    assert isinstance(sub, Subset) and len(set(sub.indices)) == 24
    assert [len(sub.x_train), len(sub.x_val), len(sub.x_test)] == [12, 5, 7]
    np.testing.assert_allclose(np.linalg.norm(sub.x_test, axis=1), 1.0)
    np.testing.assert_array_equal(sub.indices, draw_subset(images, labels, 12, 5, 7, seed=4, s=1).indices)
    assert not np.array_equal(sub.indices, draw_subset(images, labels, 12, 5, 7, seed=4, s=2).indices)
    times = [0.1, 1.0, 10.0, np.inf]
    out = subset_regression(sub, [1, 2], times, depth=2)
    np.testing.assert_array_equal(out["chosen_time_index"], np.nanargmin(out["val_mse"], axis=1))
    assert out["test_outputs"].shape == (4, 7, 10) and out["val_mse"].shape == (2, 4)
    assert out["t_stop"] == pytest.approx(1 / out["lambda_min"][1])
    assert (time_label(np.inf), time_label(10.0)) == ("inf", "10")
