"""Separation of random points on the sphere: the law of their angle, Proposition 7's union bound
(Example 2), its Monte Carlo check and their comparison (docs/separation.md#the-union-bound).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import beta, betainc, betaincc

from ntkdepth.data.pairs import colinear_angles, pair_angles

__all__ = [
    "angle_density",
    "angle_cdf",
    "angle_quantile",
    "UnionBound",
    "union_bound_close_pair",
    "union_bound_near_colinear",
    "MonteCarloSeparation",
    "monte_carlo_close_pair",
    "delta_grid",
    "Z_EXCESS",
    "P_EXCESS",
    "compare_with_monte_carlo",
    "comparison_statistics",
]


def _check_dim(d) -> int:
    if isinstance(d, bool) or int(d) != d or d < 2:
        raise ValueError(
            f"the ambient dimension d must be an integer >= 2 (points on S^(d-1)); got {d!r}"
        )
    return int(d)


def _check_angles(name: str, value, upper: float = math.pi) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(a > upper):
        raise ValueError(f"{name} must lie in [0, {upper:.6g}]; got {value!r}")
    return a


def angle_density(theta, d: int) -> np.ndarray:
    """Density of the angle between two independent uniform points on ``S^{d-1}``::

        p_d(theta) = Gamma(d/2) / ( sqrt(pi) Gamma((d-1)/2) ) * sin(theta)^(d-2),   0 <= theta <= pi

    (Cai, Fan & Jiang 2013; the paper's Proposition 7). The constant, ``1/B((d-1)/2, 1/2)``,
    and the power are combined in log space (the log of the Gamma ratio by a Stirling
    series for large ``d``, where two ``gammaln`` would cancel), so large ``d`` (10^4
    and beyond) neither overflows nor underflows before the final ``exp``.
    """
    d = _check_dim(d)
    theta = _check_angles("theta", theta)
    log_const = _log_gamma_ratio_half((d - 1) / 2) - 0.5 * math.log(math.pi)
    if d == 2:
        return np.full(theta.shape, math.exp(log_const))  # uniform on [0, pi]: 1/pi
    c = np.cos(theta)
    with np.errstate(divide="ignore"):
        # log sin(theta): near pi/2 as log1p(-cos^2)/2, which keeps its relative accuracy
        # (the error of log(sin) is multiplied by d - 2).
        log_sin = np.where(c * c < 0.5, 0.5 * np.log1p(-c * c), np.log(np.sin(theta)))
        log_p = log_const + (d - 2) * log_sin
    return np.exp(log_p)


def _log_gamma_ratio_half(a: float) -> float:
    """``log( Gamma(a + 1/2) / Gamma(a) )`` to about 1e-15, also for large ``a``.

    ``gammaln(a + 1/2) - gammaln(a)`` cancels (an error near ``1e-12`` at ``a = 5000``);
    for ``a >= 40`` the Stirling series of the difference is used instead::

        1/2 log a - 1/(8a) + 1/(192 a^3) - 1/(640 a^5) + 17/(14336 a^7) - 31/(18432 a^9)

    (from the Bernoulli polynomials, ``B_{k+1}(1/2) - B_{k+1}(0)``); below, ``1/B(a, 1/2)``.
    """
    if a < 40:
        return math.log(math.sqrt(math.pi) / beta(a, 0.5))
    r = 1.0 / (a * a)
    series = (-1 / 8 + r * (1 / 192 + r * (-1 / 640 + r * (17 / 14336 + r * (-31 / 18432))))) / a
    return 0.5 * math.log(a) + series


def angle_cdf(delta, d: int) -> np.ndarray:
    """``F_d(delta) = P(angle < delta)`` for two independent uniform points on ``S^{d-1}``.

    Exact, through the regularized incomplete beta function::

        F_d(delta) = 1/2 I_{sin^2 delta}((d-1)/2, 1/2)        (delta <= pi/2)
        F_d(delta) = 1 - 1/2 I_{sin^2 delta}((d-1)/2, 1/2)    (delta >  pi/2)

    and, where ``sin^2 delta`` would round to 1 (``|cos delta| < 1/sqrt 2``), the
    equivalent ``1/2 (1 -+ I_{cos^2 delta}(1/2, (d-1)/2))``, the ``1 - I`` taken from
    ``betaincc`` (no cancellation when it is tiny, as for large ``d``). This
    is the integral of :func:`angle_density` from 0 to ``delta``
    (substitute ``t = sin^2 theta``). Small probabilities keep full relative
    accuracy (no ``1 - (...)`` for ``delta <= pi/2``).
    """
    d = _check_dim(d)
    delta = _check_angles("delta", delta)
    a = (d - 1) / 2
    s, c = np.sin(delta), np.cos(delta)
    # Away from pi/2: in sin^2 (full relative accuracy of small probabilities near 0).
    tail = 0.5 * betainc(a, 0.5, s * s)
    by_sin = np.where(delta <= math.pi / 2, tail, 1.0 - tail)
    # Near pi/2, sin^2 delta rounds to 1; there I_{sin^2}(a, 1/2) = 1 - I_{cos^2}(1/2, a), and
    # for delta < pi/2 the complement 1 - I_{cos^2}(1/2, a) comes from betaincc, without
    # cancellation (for large d it is tiny: the angle concentrates at pi/2).
    by_cos = np.where(c > 0, 0.5 * betaincc(0.5, a, c * c), 0.5 + 0.5 * betainc(0.5, a, c * c))
    return np.where(c * c <= 0.5, by_cos, by_sin)


def angle_quantile(p, d: int) -> np.ndarray:
    """The angle ``delta`` with ``F_d(delta) = p`` (the inverse of :func:`angle_cdf`), by bisection.

    Vectorized over ``p`` in ``[0, 1]``; accurate to a few units in the last place
    of ``delta`` (bisection on ``[0, pi]`` carried to exhaustion of float64).
    """
    d = _check_dim(d)
    p = np.asarray(p, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"probabilities must lie in [0, 1]; got {p!r}")
    lo = np.zeros(p.shape)
    hi = np.full(p.shape, math.pi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        done = (mid <= lo) | (mid >= hi)
        if np.all(done):
            break
        below = angle_cdf(mid, d) < p
        lo = np.where(below & ~done, mid, lo)
        hi = np.where(~below & ~done, mid, hi)
    return hi


class UnionBound(NamedTuple):
    """A union bound: ``raw`` (may exceed 1; it is the expected number of bad pairs)
    and ``clipped = min(1, raw)`` (the probability bound proper)."""

    raw: np.ndarray
    clipped: np.ndarray


def _pairs(n) -> float:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"the number of points n must be an integer >= 1; got {n!r}")
    return 0.5 * float(n) * float(n - 1)


def union_bound_close_pair(n: int, d: int, delta) -> UnionBound:
    """Proposition 7: ``P(some pair of n uniform points on S^{d-1} has angle < delta)``
    is at most ``n(n-1)/2 * F_d(delta)`` (a union bound over the pairs; Cai, Fan & Jiang 2013
    for ``F_d``). Returns the raw value and ``min(1, raw)``."""
    raw = _pairs(n) * angle_cdf(delta, d)
    return UnionBound(raw, np.minimum(1.0, raw))


def union_bound_near_colinear(n: int, d: int, delta) -> UnionBound:
    """Proposition 7 for ``|<x_i, x_j>|``: ``P(some pair has |<x_i, x_j>| > cos delta)``, i.e.
    angle ``< delta`` or ``> pi - delta``, is at most ``n(n-1)/2 * 2 F_d(delta)`` for
    ``delta <= pi/2`` (the angle's law is symmetric about ``pi/2``). For ``delta > pi/2``
    every pair qualifies and the per-pair probability is 1. Returns raw and ``min(1, raw)``."""
    delta = _check_angles("delta", delta)
    per_pair = 2.0 * angle_cdf(np.minimum(delta, math.pi / 2), d)
    raw = _pairs(n) * per_pair
    return UnionBound(raw, np.minimum(1.0, raw))


# --------------------------------------------------------------------------- Monte Carlo


@dataclass(frozen=True)
class MonteCarloSeparation:
    """Monte Carlo frequencies of the events of Proposition 7, one entry per ``delta``.

    ``p_close``: fraction of trials whose ``n`` points contain a pair at angle ``< delta``;
    ``p_colinear``: fraction with a pair with ``|cos| > cos delta``. ``se_*`` are the
    binomial standard errors ``sqrt(p (1 - p) / trials)`` (0 when ``p`` is 0 or 1).
    ``min_angle`` and ``min_colinear_angle`` hold the per-trial separations.
    """

    n: int
    d: int
    trials: int
    delta: np.ndarray
    count_close: np.ndarray
    count_colinear: np.ndarray
    p_close: np.ndarray
    se_close: np.ndarray
    p_colinear: np.ndarray
    se_colinear: np.ndarray
    min_angle: np.ndarray
    min_colinear_angle: np.ndarray


@functools.cache
def _closest_pairs_fn():
    import jax
    import jax.numpy as jnp

    @jax.jit
    def closest(x):
        """Flat indices ``i * n + j`` (i < j) of the largest cosine and of the largest |cosine|."""
        b, n, _ = x.shape
        g = jnp.einsum("bnd,bmd->bnm", x, x)
        upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)
        g_close = jnp.where(upper, g, -jnp.inf).reshape(b, n * n)
        g_line = jnp.where(upper, jnp.abs(g), -jnp.inf).reshape(b, n * n)
        return jnp.argmax(g_close, axis=1), jnp.argmax(g_line, axis=1)

    return jax, closest


def _sample_separations(n: int, d: int, trials: int, rng: np.random.Generator, max_bytes: int):
    # The Gram matrices of a batch go through one jitted XLA einsum: NumPy's stacked
    # matmul calls OpenBLAS once per trial, whose threads contend on medium-sized products.
    jax, closest = _closest_pairs_fn()
    per_trial = 8 * n * (3 * n + 2 * d)
    batch_max = int(max(1, min(trials, max_bytes // per_trial)))
    batches = -(-trials // batch_max)
    batch = -(-trials // batches)  # equal batches: one compilation per (batch, n, d)
    min_angle = np.empty(trials)
    min_colinear = np.empty(trials)
    done = 0
    rows = np.arange(batch)
    with jax.enable_x64(True):
        while done < trials:
            x = rng.standard_normal((batch, n, d))
            x /= np.linalg.norm(x, axis=2, keepdims=True)
            k, k_line = (np.asarray(v) for v in closest(x))
            take = min(batch, trials - done)  # the last batch may hold a few extra trials
            angle = pair_angles(x[rows, k // n], x[rows, k % n])
            line = colinear_angles(x[rows, k_line // n], x[rows, k_line % n])
            min_angle[done:done + take] = angle[:take]
            min_colinear[done:done + take] = line[:take]
            done += take
    return min_angle, min_colinear


def monte_carlo_close_pair(
    n: int, d: int, delta, trials: int, rng: np.random.Generator, *, max_bytes: int = 64 << 20
) -> MonteCarloSeparation:
    """Estimates the two probabilities bounded in Proposition 7 by sampling.

    Each of ``trials`` trials draws ``n`` independent uniform points on ``S^{d-1}``
    and records its smallest pairwise angle and its smallest angle to colinearity
    ``min(angle, pi - angle)``; for every ``delta`` the estimates are the fractions
    of trials below ``delta``. Trials run in vectorized batches holding at most
    about ``max_bytes`` of arrays. The smallest angle of each trial is located
    with the Gram matrix and then recomputed accurately (:func:`~ntkdepth.data.pair_angles`).
    """
    d = _check_dim(d)
    _pairs(n)
    if n < 2:
        raise ValueError(f"need n >= 2 points to form a pair; got n={n}")
    if isinstance(trials, bool) or int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be a positive integer; got {trials!r}")
    delta = np.atleast_1d(_check_angles("delta", delta))
    min_angle, min_colinear = _sample_separations(int(n), d, int(trials), rng, max_bytes)
    count_close, p_close, se_close = _frequencies(min_angle, delta)
    count_colinear, p_colinear, se_colinear = _frequencies(min_colinear, delta)
    return MonteCarloSeparation(
        n=int(n), d=d, trials=int(trials), delta=delta,
        count_close=count_close, count_colinear=count_colinear,
        p_close=p_close, se_close=se_close, p_colinear=p_colinear, se_colinear=se_colinear,
        min_angle=min_angle, min_colinear_angle=min_colinear,
    )


def _frequencies(separations: np.ndarray, delta: np.ndarray):
    """Per ``delta``: the count of trials whose separation is below it, its fraction, and the
    binomial standard error of that fraction."""
    trials = separations.size
    count = np.sum(separations[None, :] < delta[:, None], axis=1)
    p = count / trials
    return count, p, np.sqrt(p * (1 - p) / trials)


# --------------------------------------------------------------------------- the bound against Monte Carlo

#: "Beyond sampling error": a Monte Carlo frequency more than this many standard errors above the bound.
Z_EXCESS = 4.0
#: The one-sided tail of ``Z_EXCESS`` standard normal deviations, the level of the exact binomial test.
P_EXCESS = 3.167e-5


def delta_grid(n: int, d: int, bound_min: float, bound_max: float, count: int) -> np.ndarray:
    """Angles at which the close-pair union bound takes ``count`` log-spaced values in
    ``[bound_min, bound_max]``, plus those where it is 1/2 and 1 (the near-colinear bound,
    twice as large, is then 1 and 2), capped at pi/2 (where the near-colinear event is certain)."""
    pairs = n * (n - 1) / 2
    targets = np.geomspace(bound_min, bound_max, count)
    targets = np.union1d(targets, [t for t in (0.5, 1.0) if bound_min < t < bound_max])
    targets = targets / pairs
    delta = angle_quantile(np.minimum(targets, 0.5), d)
    return np.unique(np.minimum(delta, math.pi / 2))


def compare_with_monte_carlo(n: int, d: int, delta, min_angle, min_colinear_angle) -> list[dict]:
    """Both union bounds against their Monte Carlo frequencies, one record per event and angle.

    Args:
      n, d: ``n`` points on ``S^{d-1}``.
      delta: ``[k]`` angles.
      min_angle, min_colinear_angle: ``[T]`` per trial, the smallest pairwise angle and the
        smallest angle to colinearity (:class:`MonteCarloSeparation`).

    Returns:
      records with ``event`` (``"close"`` or ``"colinear"``), ``n``, ``d``, ``delta``, the bound
      (``bound_raw``, ``bound`` clipped at 1, ``poisson = 1 - exp(-bound_raw)``), the frequency
      ``mc`` with its standard error ``mc_se``, hit count ``mc_count`` and ``trials``,
      ``exceeds_4se`` (``mc > bound + Z_EXCESS mc_se``) and ``binom_p_value``, the exact
      one-sided test of "true probability <= bound": ``P(Bin(T, bound) >= count)``.
    """
    from scipy.stats import binom  # imported here: scipy.stats takes half a second to import

    delta = np.asarray(delta, dtype=np.float64)
    rows = []
    for event, bound_fn, sample in (("close", union_bound_close_pair, np.asarray(min_angle)),
                                    ("colinear", union_bound_near_colinear, np.asarray(min_colinear_angle))):
        trials = sample.size
        bound = bound_fn(n, d, delta)
        count, p, se = _frequencies(sample, delta)
        p_value = np.where(count > 0, binom.sf(count - 1, trials, bound.clipped), 1.0)
        for k in range(delta.size):
            rows.append({
                "event": event, "n": n, "d": d, "delta": float(delta[k]),
                "bound_raw": float(bound.raw[k]), "bound": float(bound.clipped[k]),
                "poisson": float(-np.expm1(-bound.raw[k])),
                "mc": float(p[k]), "mc_se": float(se[k]), "mc_count": int(count[k]),
                "trials": int(trials),
                "exceeds_4se": bool(p[k] > bound.clipped[k] + Z_EXCESS * se[k]),
                "binom_p_value": float(p_value[k]),
            })
    return rows


def comparison_statistics(rows: list[dict]) -> dict:
    """What the records of :func:`compare_with_monte_carlo` say about the bound, pooled.

    ``exceed_4se`` and ``exceed_exact`` count the cells where the frequency exceeds the bound
    beyond sampling error (by ``Z_EXCESS`` standard errors, or by the exact test at level
    ``P_EXCESS``). ``tight``: over the cells with a raw bound at most 0.01, the pooled ratio
    ``sum(count) / sum(trials * bound)`` with its Poisson standard error, and the range of the
    per-cell ratios with at least 10 hits. ``near_one``: per (event, n, d), the cell whose raw
    bound is closest to 1 (within a factor 1.5), its frequency against the bound and the Poisson
    value. ``vacuous_*``: the cells with a raw bound of 1 or more.
    """
    small = [r for r in rows if r["bound_raw"] <= 0.01]
    hits = sum(r["mc_count"] for r in small)
    allowed = sum(r["trials"] * r["bound"] for r in small)
    per_cell = [r["mc"] / r["bound"] for r in small if r["mc_count"] >= 10]
    near_one = {}
    for r in rows:
        if 1 / 1.5 <= r["bound_raw"] <= 1.5:
            key = (r["event"], r["n"], r["d"])
            if key not in near_one or abs(math.log(r["bound_raw"])) < abs(math.log(near_one[key]["bound_raw"])):
                near_one[key] = r
    near = list(near_one.values())
    vacuous = [r for r in rows if r["bound_raw"] >= 1]

    def mean(values):
        return float(np.mean(values)) if values else float("nan")

    return {
        "cells": len(rows),
        "exceed_4se": sum(r["exceeds_4se"] for r in rows),
        "exceed_exact": sum(r["binom_p_value"] < P_EXCESS for r in rows),
        "min_binom_p_value": min(r["binom_p_value"] for r in rows),
        "largest_excess_in_se": max(((r["mc"] - r["bound"]) / r["mc_se"] for r in rows if r["mc_se"] > 0),
                                    default=float("nan")),
        "tight": {
            "cells": len(small),
            "hits": int(hits),
            "pooled_ratio": hits / allowed if allowed > 0 else float("nan"),
            "pooled_ratio_se": math.sqrt(hits) / allowed if allowed > 0 else float("nan"),
            "cells_with_10_hits": len(per_cell),
            "per_cell_min": float(np.min(per_cell)) if per_cell else float("nan"),
            "per_cell_max": float(np.max(per_cell)) if per_cell else float("nan"),
        },
        "near_one": {
            "cells": len(near),
            "bound_raw_mean": mean([r["bound_raw"] for r in near]),
            "mc_mean": mean([r["mc"] for r in near]),
            "mc_min": float(np.min([r["mc"] for r in near])) if near else float("nan"),
            "mc_max": float(np.max([r["mc"] for r in near])) if near else float("nan"),
            "poisson_mean": mean([r["poisson"] for r in near]),
        },
        "vacuous_cells": len(vacuous),
        "vacuous_mc_min": float(min((r["mc"] for r in vacuous), default=float("nan"))),
    }
