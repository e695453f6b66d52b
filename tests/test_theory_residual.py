"""The depth theory of residual ReLU networks (docs/residual.md) against the kernel engine at large depth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntkdepth.kernels import kernel_trace
from ntkdepth.theory.depth import limit_eigenvalues
from ntkdepth.theory.residual import (
    branch_weight,
    fixed_alpha_log_law,
    fixed_alpha_one_minus_rho,
    profile_time,
    residual_limit,
    residual_limit_matrix,
    residual_profile,
)


def _sphere(rng, n=6, d=4):
    x = rng.normal(size=(n, d))
    x[-1] = x[0] + 0.05 * rng.normal(size=d)  # one close pair
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pairs(x):
    iu = np.triu_indices(len(x), 1)
    return iu, 1.0 - (x @ x.T)[iu]


@pytest.mark.parametrize("a", [1.0, 2.0])
def test_alpha_over_sqrt_depth_tends_to_the_profile_limit_like_one_over_depth(x64, rng, a):
    """Thetabar^L and rho_L of alpha = a/sqrt(L) approach the ODE's values at t = a^2 W^2 / 2 with an error
    L e_L that has settled by L = 1e3: ten times the depth, a tenth of the error."""
    x = _sphere(rng)
    iu, omr1 = _pairs(x)
    rho_inf, tbar_inf = residual_limit(omr1, a)
    scaled = {}
    for L in (1000, 10000):
        tr = kernel_trace(x, depth=L, layers=[L], residual=a / math.sqrt(L), get=("rho", "ntk_normalized"))
        scaled[L] = (L * (np.asarray(tr.rho[0])[iu] - rho_inf), L * (np.asarray(tr.ntk_normalized[0])[iu] - tbar_inf))
    for k in range(2):
        assert np.max(np.abs(scaled[10000][k])) < 2.0
        np.testing.assert_allclose(scaled[1000][k], scaled[10000][k], atol=2e-3)
    # The limit keeps the inputs: pairs keep distinct values, far from the plain network's 1/4.
    assert np.ptp(tbar_inf) > 0.1 and np.all(rho_inf < 1 - 1e-3)


def test_the_profile_starts_at_the_first_layer_and_its_correlations_grow(rng):
    omr1 = np.array([2.0, 1.3, 0.5, 1e-6, 0.0])
    prof = residual_profile(omr1, [0.0, 0.5, 2.0, 8.0])
    np.testing.assert_allclose(prof.rho[0], 1 - omr1, atol=1e-15)
    np.testing.assert_allclose(prof.ntk_normalized[0], 1 - omr1, atol=1e-15)
    assert np.all(np.diff(prof.rho, axis=0)[:, :-1] > 0) and np.all(prof.rho[:, -1] == 1.0)
    # Near 1 the flow is d(theta)/dt = -theta^2 / (3 pi): 1/theta grows by t / (3 pi).
    theta = 2 * np.arcsin(np.sqrt(prof.one_minus_rho[:, 3] / 2))
    np.testing.assert_allclose(1 / theta - 1 / theta[0], prof.times / (3 * math.pi), rtol=1e-5)
    assert profile_time(2.0) == pytest.approx(4.0) and profile_time(1.0, W_std=1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_fixed_alpha_is_the_plain_limit_at_a_slower_pace(x64, rng, alpha):
    """L^2 (1 - rho_L) -> 9 pi^2 / (2 lambda^2), the angle follows its expansion, and Thetabar^L - 1/4
    follows (3/8 log L + b)/L with b read off the deepest layer: within 0.5% at L = 1e5."""
    x = _sphere(rng)
    iu, _ = _pairs(x)
    layers = [1000, 10000, 100000]
    tr = kernel_trace(x, depth=layers[-1], layers=layers, residual=alpha, get=("rho", "ntk_normalized"))
    omr = 1.0 - np.asarray(tr.rho)[:, iu[0], iu[1]]
    e = np.asarray(tr.ntk_normalized)[:, iu[0], iu[1]] - 0.25
    ratio = omr / fixed_alpha_one_minus_rho(np.array(layers), alpha)[:, None]
    assert np.all(np.abs(ratio[-1] - 1) < 5e-2) and np.all(np.abs(ratio[-1] - 1) < np.abs(ratio[0] - 1) / 5)
    law = fixed_alpha_log_law(omr, layers, alpha)
    # 1/theta_L = lambda L / (3 pi) + lambda log(L) / (2 pi) + C: C read at 1e5 gives theta at 1e4.
    lam = branch_weight(alpha)
    theta = 2 * np.arcsin(np.sqrt(omr[1] / 2))
    predicted = 1 / (lam * 1e4 / (3 * math.pi) + lam * math.log(1e4) / (2 * math.pi) + law["C"])
    np.testing.assert_allclose(theta, predicted, rtol=1e-3)
    L = np.array(layers, float)[:, None]
    rel = e / ((law["a"] * np.log(L) + law["b"]) / L) - 1
    assert np.all(np.abs(rel[-1]) < 5e-3) and np.all(np.abs(rel[-1]) < np.abs(rel[1]) / 5)
    # lambda_min tends to Theorem 2's 3/4, as for the plain network.
    k = np.asarray(tr.ntk_normalized[-1])
    assert abs(np.linalg.eigvalsh(k)[0] - limit_eigenvalues(len(x))[0]) < len(x) * np.max(np.abs(e[-1]))
    assert branch_weight(1.0) == pytest.approx(0.5)


def test_the_limit_matrix_is_the_deep_networks_and_positive_definite(x64, rng):
    x = _sphere(rng, n=8, d=5)
    limit = residual_limit_matrix(3.0 * x, 1.0)  # any norms: normalized onto the sphere
    L = 10000
    deep = np.asarray(kernel_trace(x, depth=L, layers=[L], residual=1 / math.sqrt(L), get="ntk_normalized").ntk_normalized[0])
    assert np.max(np.abs(deep - limit)) < 2.0 / L
    lam = np.linalg.eigvalsh(limit)
    assert lam[0] > 0.01 and abs(lam[0] - np.linalg.eigvalsh(deep)[0]) < 1e-3


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        branch_weight(0.0)
    with pytest.raises(ValueError, match="one_minus_rho1 must be"):
        residual_profile([2.5], [1.0])
    with pytest.raises(ValueError, match="times must be"):
        residual_profile([0.5], [1.0, 0.5])
    with pytest.raises(ValueError, match="nonzero rows"):
        residual_limit_matrix(np.zeros((2, 3)), 1.0)
