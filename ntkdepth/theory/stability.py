"""Theorem 3 on a given dataset: ``lambda_min(Thetabar^L)``, ``|P_t|`` and the expressivity gap
depth by depth, and the Goldilocks range of depths (docs/predictor.md#stability-and-expressivity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.theory.predictor import projection_spectrum

__all__ = ["DepthScan", "depth_scan", "goldilocks_range", "stopping_time", "near_points"]


def stopping_time(lambda_min: float, c: float = 1.0, learning_rate: float = 1.0) -> float:
    """``t = c / (eta lambda_min)``: the early-stopping time of Theorem 3.

    At that time ``|P_t| <= t`` and the slowest eigen-direction has converged
    by a factor ``exp(-c)``.
    """
    if not lambda_min > 0:
        raise ValueError(f"lambda_min must be > 0 for a stopping time; got {lambda_min}")
    return c / (learning_rate * lambda_min)


def near_points(rng: np.random.Generator, x: np.ndarray, angle: float) -> np.ndarray:
    """For each unit row of ``x``, a unit vector at exactly ``angle`` from it (random direction)."""
    x = np.asarray(x, dtype=np.float64)
    g = rng.standard_normal(x.shape)
    g -= np.sum(g * x, axis=1, keepdims=True) * x
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return np.cos(angle) * x + np.sin(angle) * g


@dataclass(frozen=True)
class DepthScan:
    """Per-depth stability and expressivity numbers (every array is ``[len(depths), ...]``).

    Attributes:
      depths: ``[D]``.
      lambda_min, lambda_max: ``[D]`` extreme eigenvalues of ``Thetabar^L(X, X)``.
      times: ``[T]`` the bounded stopping times.
      projection_norm: ``[D, T]`` ``|P_t|`` for each time; ``projection_norm_inf``: ``[D]`` ``1/lambda_min``.
      gap: ``[D, m]`` ``max_i |Thetabar^L(x, x_i) - 1/4|`` for each test point.
    """

    depths: np.ndarray
    lambda_min: np.ndarray
    lambda_max: np.ndarray
    times: np.ndarray
    projection_norm: np.ndarray
    projection_norm_inf: np.ndarray
    gap: np.ndarray


def depth_scan(
    x_train: np.ndarray,
    x_test: np.ndarray,
    depths: Sequence[int],
    times: Sequence[float] = (1.0, 10.0, 100.0),
    *,
    learning_rate: float = 1.0,
) -> DepthScan:
    """Stability and expressivity of the normalized-NTK predictor at each depth.

    Inputs on the sphere, ``W_std^2 = 2``, no bias (the paper's section 6).
    One pass of :func:`~ntkdepth.kernels.relu_kernel_trace` over ``[x_train; x_test]`` gives
    ``Thetabar^L`` at every depth; one ``eigvalsh`` per depth gives the rest.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    depths = np.asarray(sorted(set(int(d) for d in depths)))
    times = np.asarray(times, dtype=np.float64)
    n = x_train.shape[0]
    with jax.enable_x64(True):
        trace = relu_kernel_trace(
            np.vstack([x_train, x_test]), depth=int(depths[-1]), layers=depths,
            get=("ntk_normalized",),
        )
        tb = np.asarray(trace.ntk_normalized)
    lam_min, lam_max, p_norm, gap = [], [], [], []
    for k in range(len(depths)):
        lam = np.linalg.eigvalsh(tb[k, :n, :n])
        lam_min.append(lam[0])
        lam_max.append(lam[-1])
        p_norm.append(np.max(projection_spectrum(lam, times, learning_rate), axis=1))
        gap.append(np.max(np.abs(tb[k, n:, :n] - 0.25), axis=1))
    lam_min = np.array(lam_min)
    with np.errstate(divide="ignore"):
        p_inf = np.where(lam_min > 0, 1.0 / lam_min, np.inf)
    return DepthScan(
        depths=depths, lambda_min=lam_min, lambda_max=np.array(lam_max), times=times,
        projection_norm=np.array(p_norm), projection_norm_inf=p_inf, gap=np.array(gap),
    )


def goldilocks_range(scan: DepthScan, *, min_lambda: float, min_gap: float) -> dict:
    """The depths at which the predictor is stable and expressive.

    Stable: ``lambda_min(Thetabar^L) >= min_lambda`` (so ``|P_inf| <= 1/min_lambda``).
    Expressive: every test point keeps ``max_i |Thetabar^L(x, x_i) - 1/4| >= min_gap``.
    Returns the stable, expressive and Goldilocks depths, and the range
    ``(first, last)`` of the Goldilocks depths (``None`` when empty).
    """
    stable = scan.lambda_min >= min_lambda
    expressive = np.min(scan.gap, axis=1) >= min_gap
    both = stable & expressive
    zone = scan.depths[both]
    return {
        "stable_depths": scan.depths[stable].tolist(),
        "expressive_depths": scan.depths[expressive].tolist(),
        "goldilocks_depths": zone.tolist(),
        "range": (int(zone[0]), int(zone[-1])) if zone.size else None,
    }
