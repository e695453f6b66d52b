"""The depth axis of residual ReLU networks: with a fixed branch scale the plain network's limit 1/4 at a
slower pace; with ``alpha = a / sqrt(L)`` a limit that keeps the inputs, the solution of an ODE
(docs/residual.md#depth-with-a-fixed-alpha, docs/residual.md#depth-with-alpha--a--sqrtl).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "ResidualLimit",
    "branch_weight",
    "fixed_alpha_log_law",
    "fixed_alpha_one_minus_rho",
    "profile_time",
    "residual_limit",
    "residual_limit_matrix",
    "residual_profile",
]


def _check_scale(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return number


def branch_weight(alpha: float, W_std: float = math.sqrt(2.0)) -> float:
    """``lambda = c / (1 + c)`` with ``c = alpha^2 W_std^2 / 2``: the share of each ReLU block's branch in
    the stream's variance, ``rho_{l+1} = (1 - lambda) rho_l + lambda f(rho_l)`` (docs/residual.md#depth-with-a-fixed-alpha)."""
    c = _check_scale(alpha, "alpha") ** 2 * _check_scale(W_std, "W_std") ** 2 / 2.0
    return c / (1.0 + c)


def profile_time(a: float, W_std: float = math.sqrt(2.0)) -> float:
    """``A = a^2 W_std^2 / 2``: the time the profile ODE runs for ``alpha = a / sqrt(L)`` as ``L -> inf``."""
    return _check_scale(a, "a") ** 2 * _check_scale(W_std, "W_std") ** 2 / 2.0


def fixed_alpha_one_minus_rho(L, alpha: float, W_std: float = math.sqrt(2.0)):
    """The asymptote ``1 - rho_L ~ 9 pi^2 / (2 lambda^2 L^2)`` of a fixed ``alpha`` (numpy, elementwise)."""
    lam = branch_weight(alpha, W_std)
    L = np.asarray(L, dtype=np.float64)
    return 9.0 * math.pi**2 / (2.0 * lam**2 * L**2)


def fixed_alpha_log_law(one_minus_rho, layers, alpha: float, W_std: float = math.sqrt(2.0)) -> dict:
    """The rate ``Thetabar^L - 1/4 ~ (a log L + b) / L`` of a fixed ``alpha``, from a trace's deepest layer.

    ``a = 3/8`` for every pair and every ``alpha``; ``b = 3 pi C / (4 lambda) - (1 - lambda) / (4 lambda)
    - 1/8`` with ``C = 1/theta_L - lambda L / (3 pi) - lambda log(L) / (2 pi)`` read off the deepest layer
    (docs/residual.md#depth-with-a-fixed-alpha).

    Args:
      one_minus_rho: ``[m, k]`` ``1 - rho_l`` of ``k`` pairs at ``layers [m]`` (the last row is used).

    Returns:
      ``{"a": 3/8, "b": [k], "C": [k]}``.
    """
    lam = branch_weight(alpha, W_std)
    L = float(np.asarray(layers)[-1])
    omr = np.asarray(one_minus_rho, dtype=np.float64)[-1]
    theta = 2.0 * np.arcsin(np.sqrt(omr / 2.0))
    with np.errstate(divide="ignore"):
        C = 1.0 / theta - lam * L / (3.0 * math.pi) - lam * math.log(L) / (2.0 * math.pi)
    b = 3.0 * math.pi * C / (4.0 * lam) - (1.0 - lam) / (4.0 * lam) - 0.125
    return {"a": 0.375, "b": b, "C": C}


def _angle(u):
    """``theta = arccos(1 - u)`` from ``u = 1 - rho`` (accurate for small ``u``)."""
    return 2.0 * np.arcsin(np.sqrt(np.clip(u, 0.0, 2.0) / 2.0))


def _drift(theta):
    """``f(cos t) - cos t = (sin t - t cos t) / pi``, by its series below ``t = 0.1``."""
    t = np.asarray(theta, dtype=np.float64)
    small = t < 0.1
    ts = np.where(small, t, 0.0)
    t2 = ts * ts
    # sin t - t cos t = t^3/3 - t^5/30 + t^7/840 - t^9/45360 + ...
    series = ts**3 * (1.0 / 3.0 - t2 * (1.0 / 30.0 - t2 * (1.0 / 840.0 - t2 / 45360.0)))
    return np.where(small, series, np.sin(t) - t * np.cos(t)) / math.pi


class ResidualLimit(NamedTuple):
    """The profile's values at the times asked: ``rho``, ``one_minus_rho`` and ``ntk_normalized``, ``[T, k]``."""

    times: np.ndarray
    rho: np.ndarray
    one_minus_rho: np.ndarray
    ntk_normalized: np.ndarray


def residual_profile(one_minus_rho1, times, *, rtol: float = 1e-12) -> ResidualLimit:
    """The continuum limit of a ReLU residual network with ``alpha = a / sqrt(L)`` on the sphere.

    With ``t = (l - 1) lambda_L`` the normalized recursion becomes, as ``L -> inf``, the ODE

        d rho / dt = f(rho) - rho,    dN/dt = f(rho) - (theta / pi) N,    Thetabar = N / (1 + t),

    from ``rho(0) = N(0) = rho_1`` (``f`` the ReLU correlation map, ``theta = arccos rho``;
    docs/residual.md#depth-with-alpha--a--sqrtl). Layer ``L`` of the network is ``t = A =
    a^2 W_std^2 / 2`` (:func:`profile_time`).

    Args:
      one_minus_rho1: ``[k]`` values ``1 - rho_1`` in ``[0, 2]`` (for precision near 1).
      times: ``[T]`` non-negative times, increasing.

    Returns:
      A :class:`ResidualLimit` of ``[T, k]`` arrays. SciPy's DOP853 at relative tolerance ``rtol``.
    """
    from scipy.integrate import solve_ivp

    u0 = np.asarray(one_minus_rho1, dtype=np.float64).ravel()
    if u0.size == 0 or not np.all(np.isfinite(u0)) or np.any((u0 < 0) | (u0 > 2)):
        raise ValueError("one_minus_rho1 must be a non-empty array of values 1 - rho_1 in [0, 2]")
    times = np.asarray(times, dtype=np.float64).ravel()
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0) or np.any(np.diff(times) <= 0):
        raise ValueError("times must be finite, non-negative and increasing")
    k = u0.size

    def rhs(_, y):
        u, n = y[:k], y[k:]
        theta = _angle(u)
        d = _drift(theta)
        return np.concatenate([-d, (1.0 - u) + d - theta / math.pi * n])

    y0 = np.concatenate([u0, 1.0 - u0])
    if times[-1] == 0:
        ys = np.repeat(y0[:, None], len(times), axis=1)
    else:
        sol = solve_ivp(rhs, (0.0, float(times[-1])), y0, method="DOP853", t_eval=times, rtol=rtol,
                        atol=rtol * 1e-3)
        if not sol.success:
            raise RuntimeError(f"the profile ODE did not converge: {sol.message}")
        ys = sol.y
    u, n = ys[:k].T, ys[k:].T  # [T, k]
    tbar = np.clip(n / (1.0 + times[:, None]), -1.0, 1.0)
    return ResidualLimit(times, 1.0 - u, u, tbar)


def residual_limit(one_minus_rho1, a: float, W_std: float = math.sqrt(2.0)) -> tuple[np.ndarray, np.ndarray]:
    """``(rho_inf, Thetabar_inf)``, each ``[k]``: the limits as ``L -> inf`` of a ReLU residual network
    with ``alpha = a / sqrt(L)``, no bias, inputs on the sphere (:func:`residual_profile` at ``t = A``)."""
    prof = residual_profile(one_minus_rho1, [profile_time(a, W_std)])
    return prof.rho[0], prof.ntk_normalized[0]


def residual_limit_matrix(x, a: float, W_std: float = math.sqrt(2.0)) -> np.ndarray:
    """``[n, n]`` the limit ``Thetabar_inf(x_i, x_j)`` of :func:`residual_limit` for the rows of ``x``
    (``[n, d]``, normalized onto the sphere here): a dot-product kernel of the inputs, positive definite
    on distinct points; ``lambda_min`` of it is the depth limit of ``lambda_min(Thetabar^L)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty matrix [n, d]; got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(norms > 0) or not np.all(np.isfinite(x)):
        raise ValueError("x must hold finite, nonzero rows")
    xs = x / norms
    # 1 - <x, x'> as |x - x'|^2 / 2: accurate for close pairs.
    d2 = np.sum((xs[:, None, :] - xs[None, :, :]) ** 2, axis=-1) / 2.0
    iu = np.triu_indices(len(x), 1)
    values, inverse = np.unique(np.round(d2[iu], 15), return_inverse=True)
    _, tbar = residual_limit(values, a, W_std)
    out = np.eye(len(x))
    out[iu] = tbar[inverse]
    out.T[iu] = tbar[inverse]
    return out
