"""Curve fits: power laws ``y = c x^p`` on log-log axes (exponents in width) and the depth law
``y = (a log L + b) / L`` on the log scale (docs/depth.md#the-rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Hashable, NamedTuple

import numpy as np

__all__ = ["PowerLaw", "fit_log_law", "fit_power_law", "fit_range", "power_law_fits"]


class PowerLaw(NamedTuple):
    """``y = prefactor * x**exponent``, fitted on log-log axes; ``stderr`` of the exponent."""

    exponent: float
    prefactor: float
    stderr: float

    def __call__(self, x):
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.exponent

    def as_dict(self) -> dict:
        """``{"exponent", "prefactor", "stderr"}``, the standard error ``None`` when undefined (2 points)."""
        return {"exponent": self.exponent, "prefactor": self.prefactor,
                "stderr": self.stderr if np.isfinite(self.stderr) else None}


def fit_power_law(x, y) -> PowerLaw:
    """Least-squares line through ``(log x, log y)``: the scaling exponent of ``y`` in ``x``.

    Args:
      x, y: ``[m]`` positive values, ``m >= 2``.

    Returns:
      the fitted law; its ``stderr`` is the usual standard error of the slope
      (residual variance over ``m - 2`` degrees of freedom), NaN when ``m = 2``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"need two 1-d arrays of the same length >= 2; got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("a power law is fitted to positive, finite values only")
    lx, ly = np.log(x), np.log(y)
    A = np.stack([lx, np.ones_like(lx)], 1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    if x.size > 2:
        resid = ly - A @ coef
        s2 = resid @ resid / (x.size - 2)
        stderr = float(np.sqrt(s2 / np.sum((lx - lx.mean()) ** 2)))
    else:
        stderr = float("nan")
    return PowerLaw(float(coef[0]), float(np.exp(coef[1])), stderr)


def fit_range(x, x_min: float) -> np.ndarray:
    """``[m]`` booleans: the points of ``x`` (``[m]``) at or above ``x_min``, the asymptotic range a
    law is fitted over; every point when fewer than two are."""
    x = np.asarray(x, dtype=np.float64)
    kept = x >= x_min
    return kept if kept.sum() >= 2 else np.ones_like(kept)


def power_law_fits(x, series: Mapping[Hashable, object]) -> dict:
    """:func:`fit_power_law` of each series ``y = series[key]`` (``[m]`` each) against ``x`` (``[m]``).

    Returns ``{key: PowerLaw.as_dict()}`` for the series whose values are all
    positive (a power law of a series that reaches zero is undefined; such
    series are left out), and ``{}`` when ``x`` holds fewer than two points.
    """
    if len(x) < 2:
        return {}
    fits = {}
    for key, y in series.items():
        y = np.asarray(y, dtype=np.float64)
        if np.all(y > 0):
            fits[key] = fit_power_law(x, y).as_dict()
    return fits


def fit_log_law(L, y) -> tuple[float, float]:
    """``min over (a, b) of sum (log y - log((a log L + b) / L))^2`` by Gauss-Newton.

    Args:
      L: ``[m]`` depths ``>= 1``.
      y: ``[m]`` positive values.

    Returns:
      ``(a, b)``. The start is the relative least-squares solution (linear in
      ``(a, b)``), or ``(0, geometric mean of y L)`` when that makes the model
      nonpositive somewhere; each step is halved until the cost does not grow.
    """
    L = np.asarray(L, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    logL = np.log(L)
    A = np.stack([logL, np.ones_like(logL)], axis=1) / (L * y)[:, None]
    params = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]

    def residual(p):
        m = p[0] * logL + p[1]
        return None if np.any(m <= 0) else np.log(y * L) - np.log(m)

    r = residual(params)
    if r is None:
        params = np.array([0.0, float(np.exp(np.mean(np.log(y * L))))])
        r = residual(params)
    cost = float(r @ r)
    for _ in range(50):
        m = params[0] * logL + params[1]
        J = -np.stack([logL / m, 1.0 / m], axis=1)
        step = np.linalg.lstsq(J, -r, rcond=None)[0]
        for _ in range(30):
            trial = params + step
            rt = residual(trial)
            if rt is not None and float(rt @ rt) <= cost:
                break
            step = step / 2
        else:
            break
        converged = cost - float(rt @ rt) <= 1e-15 * max(cost, 1e-300)
        params, r, cost = trial, rt, float(rt @ rt)
        if converged:
            break
    return float(params[0]), float(params[1])
