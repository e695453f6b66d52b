"""How far the last hidden layer moves in training (docs/drift.md#measured-drift; the paper's Table 1).

For features ``a_0(x)``, ``a_t(x)`` in ``R^n`` of the last hidden layer at
initialization and after training:

    aggregate  D(x)   = |a_t(x) - a_0(x)|_2                   (O(1) at NTK parameterization)
    per-neuron d_i(x) = |a_{t,i}(x) - a_{0,i}(x)|             (O(n^{-1/2}))
    relative          = D(x) / |a_0(x)|_2                     (O(n^{-1/2}))

and, for Proposition 4, the change of the normalized inner products
``<a_t(x), a_t(x')> / n - <a_0(x), a_0(x')> / n``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ntkdepth.stats.fits import PowerLaw, fit_power_law

__all__ = ["DriftStats", "PowerLaw", "drift_statistics", "fit_power_law", "inner_product_change"]


class DriftStats(NamedTuple):
    """Per evaluation input ``[n_eval]`` each."""

    aggregate: np.ndarray  # |a_t - a_0|_2
    per_neuron_mean: np.ndarray  # mean_i |a_{t,i} - a_{0,i}|
    per_neuron_max: np.ndarray  # max_i |a_{t,i} - a_{0,i}|
    relative: np.ndarray  # |a_t - a_0|_2 / |a_0|_2


def _check(a0, at):
    a0 = np.asarray(a0, dtype=np.float64)
    at = np.asarray(at, dtype=np.float64)
    if a0.shape != at.shape or a0.ndim != 2:
        raise ValueError(
            f"features must be two arrays of the same shape [n_eval, width]; got {a0.shape} and {at.shape}"
        )
    for name, a in (("a_0", a0), ("a_t", at)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds NaN or inf values: the training diverged")
    return a0, at


def drift_statistics(a0, at) -> DriftStats:
    """Drift of each evaluation input's features: ``a0``, ``at`` are ``[n_eval, width]``."""
    a0, at = _check(a0, at)
    diff = np.abs(at - a0)
    aggregate = np.sqrt((diff**2).sum(-1))
    norm0 = np.sqrt((a0**2).sum(-1))
    if np.any(norm0 == 0):
        bad = np.flatnonzero(norm0 == 0)[:5].tolist()
        raise ValueError(
            f"the initial features of evaluation inputs {bad} are the zero vector (every unit "
            "inactive): the relative drift is undefined"
        )
    return DriftStats(aggregate, diff.mean(-1), diff.max(-1), aggregate / norm0)


def inner_product_change(a0, at) -> np.ndarray:
    """``<a_t(x_i), a_t(x_j)>/n - <a_0(x_i), a_0(x_j)>/n`` for all pairs, ``[n_eval, n_eval]``."""
    a0, at = _check(a0, at)
    n = a0.shape[-1]
    return at @ at.T / n - a0 @ a0.T / n
