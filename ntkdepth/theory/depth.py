"""The depth axis of the paper (section 6): the normalized recursion, the limit 1/4, the rate
``(3/8 log L + b)/L`` and the onset of the decay (Lemma 1, Theorem 2, Corollary 1; docs/depth.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.relu import (
    correlation_map,
    correlation_map_derivative,
    correlation_trace,
)
from ntkdepth.stats.fits import fit_log_law, fit_power_law

__all__ = [
    "RHO_DECAY_CONSTANT",
    "LOG_LAW_SLOPE",
    "ONSET_Y",
    "ONSET_THETA_CONSTANT",
    "ONSET_CONSTANT",
    "normalize_kernel",
    "normalized_ntk_step",
    "limit_matrix",
    "limit_eigenvalues",
    "one_minus_rho_asymptote",
    "rho_decay_ratio",
    "iterations_to_reach",
    "DecayFit",
    "fit_decay",
    "fit_decays_past_onset",
    "decay_fit_table",
    "predicted_log_law",
    "OnsetDepth",
    "decay_onset_depth",
    "OnsetLaw",
    "fit_onset_law",
    "continuum_onset",
    "continuum_profile",
]

#: Lemma 1: ``L^2 (1 - rho_L) -> 9 pi^2 / 2``.
RHO_DECAY_CONSTANT = 9.0 * math.pi**2 / 2.0
#: The coefficient ``a`` of ``e_L ~ (a log L + b) / L`` derived above, the same for every pair.
LOG_LAW_SLOPE = 3.0 / 8.0


def _onset_root() -> float:
    roots = np.roots([3.0, -2.0, -2.0, -2.0])
    return float(roots[np.argmin(np.abs(roots.imag))].real)


#: ``y*``: the continuum profile's deviation falls to half its peak at ``y = y*``.
ONSET_Y = _onset_root()
#: ``theta_1 L_onset -> 3 pi (y* - 1)`` as ``rho_1 -> 1``.
ONSET_THETA_CONSTANT = 3.0 * math.pi * (ONSET_Y - 1.0)
#: ``(1 - rho_1)^(1/2) L_onset -> 3 pi (y* - 1) / sqrt(2)`` as ``rho_1 -> 1``.
ONSET_CONSTANT = ONSET_THETA_CONSTANT / math.sqrt(2.0)


# --------------------------------------------------------------------------
# Definitions, Proposition 5, Theorem 2's limit, Lemma 1.


def _check_diagonal(d: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(d) | ~(d > 0)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = idx[0] if len(idx) == 1 else idx
        raise ValueError(
            f"{name}[{where}] = {float(d[idx])!r}: Definition 4 needs positive, finite "
            f"diagonal entries K(x, x)"
        )


def normalize_kernel(k, diag1=None, diag2=None) -> np.ndarray:
    """Definition 4: ``Kbar(x, x') = K(x, x') / sqrt(K(x, x) K(x', x'))``.

    Args:
      k: ``[..., n1, n2]`` kernel matrix (leading axes, e.g. depths, broadcast).
      diag1: ``[..., n1]`` the values ``K(x, x)`` of the rows; for a square
        ``k`` defaults to its diagonal.
      diag2: ``[..., n2]`` the values ``K(x', x')`` of the columns; for a
        square ``k`` defaults to ``diag1`` if given, else to ``k``'s diagonal.

    Returns:
      ``[..., n1, n2]`` numpy array (floating dtype of the inputs).

    Raises:
      ValueError: ``k`` is not a matrix, a rectangular ``k`` without both
        diagonals, diagonals of the wrong shape, or a diagonal entry that is
        ``<= 0``, NaN or infinite (the message names its index).
    """
    k = np.asarray(k)
    if not np.issubdtype(k.dtype, np.floating):
        k = k.astype(np.float64)
    if k.ndim < 2:
        raise ValueError(f"k must be a matrix [..., n1, n2]; got shape {k.shape}")
    n1, n2 = k.shape[-2:]
    square = n1 == n2
    if not square and (diag1 is None or diag2 is None):
        raise ValueError(
            f"k is rectangular ({n1} x {n2}): pass both diagonals diag1 = K(x, x) "
            f"for the rows and diag2 = K(x', x') for the columns"
        )
    if diag1 is None and diag2 is None:
        diag1 = diag2 = np.diagonal(k, axis1=-2, axis2=-1)
    elif diag1 is None or diag2 is None:
        diag1 = diag2 = diag1 if diag1 is not None else diag2
    d1 = np.asarray(diag1, dtype=k.dtype)
    d2 = np.asarray(diag2, dtype=k.dtype)
    for d, n, name in ((d1, n1, "diag1"), (d2, n2, "diag2")):
        if d.ndim < 1 or d.shape[-1] != n:
            raise ValueError(f"{name} must have last axis {n} to match k {k.shape}; got {d.shape}")
        _check_diagonal(d, name)
    return k / (np.sqrt(d1)[..., :, None] * np.sqrt(d2)[..., None, :])


def normalized_ntk_step(thetabar, rho, L):
    """Proposition 5: ``Thetabar^{L+1} = (L f'(rho_L) Thetabar^L + f(rho_L)) / (L + 1)``.

    ``thetabar`` is ``Thetabar^L``, ``rho`` is ``rho_L`` and ``L >= 1`` the
    depth; all broadcast elementwise (``jnp`` arrays; float64 needs
    ``jax.enable_x64``).
    """
    thetabar, rho = jnp.asarray(thetabar), jnp.asarray(rho)
    L = jnp.asarray(L, dtype=jnp.result_type(thetabar.dtype, rho.dtype))
    return (L * correlation_map_derivative(rho) * thetabar + correlation_map(rho)) / (L + 1.0)


def limit_matrix(n: int) -> np.ndarray:
    """Theorem 2's limit of the normalized NTK matrix of n distinct points: ``(3/4) I + (1/4) 1 1^T``."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    n = int(n)
    return 0.75 * np.eye(n) + 0.25 * np.ones((n, n))


def limit_eigenvalues(n: int) -> np.ndarray:
    """Eigenvalues of :func:`limit_matrix`, ascending: ``3/4`` (n - 1 times) and ``3/4 + n/4``."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    n = int(n)
    return np.concatenate([np.full(n - 1, 0.75), [0.75 + n / 4.0]])


def one_minus_rho_asymptote(L):
    """Lemma 1's asymptote ``1 - rho_L ~ 9 pi^2 / (2 L^2)`` (numpy, elementwise)."""
    L = np.asarray(L, dtype=np.float64)
    return RHO_DECAY_CONSTANT / L**2


def rho_decay_ratio(layers, one_minus_rho) -> np.ndarray:
    """``L^2 (1 - rho_L) / (9 pi^2 / 2)``, which tends to 1 (Lemma 1).

    Args:
      layers: ``[m]`` depths.
      one_minus_rho: ``[m, k]`` ``1 - rho_L`` of ``k`` pairs at those depths.

    Returns:
      ``[m, k]`` numpy array.
    """
    L = np.asarray(layers)
    return L[:, None] ** 2 * np.asarray(one_minus_rho) / RHO_DECAY_CONSTANT


def iterations_to_reach(one_minus_rho, threshold: float) -> np.ndarray:
    """Per pair, the number of applications of f until ``1 - rho < threshold`` (-1 if never).

    Args:
      one_minus_rho: ``[L, k]`` ``1 - rho_l`` at layers ``l = 1..L`` (row ``l - 1``
        holds ``f^(l-1)(rho_1)``) of ``k`` pairs.

    Returns:
      ``[k]`` integers.
    """
    below = np.asarray(one_minus_rho) < threshold
    first = np.argmax(below, axis=0)
    return np.where(below.any(axis=0), first, -1)


# --------------------------------------------------------------------------
# The rate of Thetabar^L -> 1/4.


@dataclass(frozen=True)
class DecayFit:
    """Two laws fitted to ``|e_L| = |Thetabar^L - 1/4|`` over a window of depths.

    Residuals are relative, ``model / |e_L| - 1``, over the window.

    Attributes:
      window: ``(L_min, L_max)`` of the points fitted; ``n_points`` of them.
      log_a, log_b: ``|e_L| ~ (a log L + b) / L`` (theory: ``a = 3/8``).
      log_max_rel, log_rms_rel: its residuals.
      power_c, power_p: ``|e_L| ~ c L^-p``.
      power_max_rel, power_rms_rel: its residuals.
      better: ``"log"`` or ``"power"``, the smaller RMS residual.
      local_exponent: ``-d log|e| / d log L`` between the last two points.
      step_ratio: ``|e_{L+1}| / |e_L|`` at ``step_ratio_depth`` (Definition 7;
        from the last two points, per layer, when they are not consecutive).
      step_ratio_depth: the depth ``L`` of ``step_ratio``.
    """

    window: tuple[int, int]
    n_points: int
    log_a: float
    log_b: float
    log_max_rel: float
    log_rms_rel: float
    power_c: float
    power_p: float
    power_max_rel: float
    power_rms_rel: float
    better: str
    local_exponent: float
    step_ratio: float
    step_ratio_depth: int

    def as_dict(self) -> dict:
        return asdict(self)

    def log_law(self, L):
        L = np.asarray(L, dtype=np.float64)
        return (self.log_a * np.log(L) + self.log_b) / L

    def power_law(self, L):
        L = np.asarray(L, dtype=np.float64)
        return self.power_c * L ** (-self.power_p)


def fit_decay(layers, deviation, *, window: tuple[float, float] | None = None) -> DecayFit:
    """Fits ``|Thetabar^L - 1/4|`` against depth with ``(a log L + b)/L`` and with ``c L^-p``.

    The recursion implies ``e_L = (a log L + b)/L + O(log^2 L / L^2)`` with
    ``a = 3/8`` for every pair (module docstring): with ``theta_l ~ 3 pi / l``,
    ``f'(rho_l) = 1 - 3/l + O(log l / l^2)`` and Proposition 5 reads
    ``(L + 1) e_{L+1} = (L - 3) e_L + O(log L / L)``. Both laws are fitted by
    least squares on the log scale (log of the data against log of the model)
    over the window, so a law that fits better has smaller relative residuals.

    Args:
      layers: ``[m]`` increasing depths ``>= 1``.
      deviation: ``[m]`` the values ``Thetabar^L - 1/4`` (signed or not; the
        absolute value is fitted) at those depths, for one pair.
      window: ``(L_min, L_max)`` depths to fit; default the last two decades,
        ``(max(layers)/100, max(layers))``. Choose ``L_min`` well past the
        onset depth of the pair (:func:`decay_onset_depth`).

    Raises:
      ValueError: mismatched shapes, layers not increasing, fewer than 3
        points in the window, or a zero or non-finite deviation in it.
    """
    L = np.asarray(layers, dtype=np.float64).ravel()
    e = np.abs(np.asarray(deviation, dtype=np.float64)).ravel()
    if L.shape != e.shape:
        raise ValueError(f"layers {L.shape} and deviation {e.shape} must have the same length")
    if L.size == 0 or np.any(L < 1) or np.any(np.diff(L) <= 0):
        raise ValueError("layers must be increasing depths >= 1")
    lo, hi = window if window is not None else (L[-1] / 100.0, L[-1])
    m = (L >= lo) & (L <= hi)
    if m.sum() < 3:
        raise ValueError(f"window {lo:g}..{hi:g} holds {int(m.sum())} depths; need at least 3")
    Lw, ew = L[m], e[m]
    if np.any(~np.isfinite(ew)) or np.any(ew <= 0):
        raise ValueError("the deviation must be finite and nonzero inside the window")

    a, b = fit_log_law(Lw, ew)
    rel_log = ((a * np.log(Lw) + b) / Lw) / ew - 1.0
    power = fit_power_law(Lw, ew)
    c, p = power.prefactor, -power.exponent
    rel_pow = c * Lw ** (-p) / ew - 1.0

    def rms(r):
        return float(np.sqrt(np.mean(r**2)))

    # Definition 7 and the local exponent from the last two points.
    L0, L1, e0, e1 = Lw[-2], Lw[-1], ew[-2], ew[-1]
    step_ratio = float((e1 / e0) ** (1.0 / (L1 - L0)))
    local_exponent = float(-np.log(e1 / e0) / np.log(L1 / L0))
    return DecayFit(
        window=(int(Lw[0]), int(Lw[-1])), n_points=int(m.sum()),
        log_a=a, log_b=b, log_max_rel=float(np.max(np.abs(rel_log))), log_rms_rel=rms(rel_log),
        power_c=c, power_p=p, power_max_rel=float(np.max(np.abs(rel_pow))),
        power_rms_rel=rms(rel_pow),
        better="log" if rms(rel_log) < rms(rel_pow) else "power",
        local_exponent=local_exponent, step_ratio=step_ratio, step_ratio_depth=int(L0),
    )


def fit_decays_past_onset(
    layers, deviation, rho1, onset, predicted_b, *, fit_decades: float, after_onset: float
) -> list[dict]:
    """:func:`fit_decay` for each pair, over the deepest decades and past the pair's onset.

    Pair ``j`` is fitted over the depths from ``max(L_max / 10**fit_decades,
    after_onset * onset[j])`` to ``L_max = max(layers)``; a pair whose window is
    shorter than half a decade (or whose onset is infinite) is not fitted.

    Args:
      layers: ``[m]`` increasing depths.
      deviation: ``[m, k]`` ``Thetabar^L - 1/4`` of ``k`` pairs at those depths.
      rho1, onset, predicted_b: ``[k]`` the pairs' starting correlations, onset
        depths (:func:`decay_onset_depth`) and predicted offsets ``b``
        (:func:`predicted_log_law`).
      fit_decades, after_onset: the window, as above.

    Returns:
      one dictionary per pair: ``rho1``, ``onset``, ``predicted_a`` (3/8),
      ``predicted_b`` and ``fit`` (:meth:`DecayFit.as_dict`, or ``None`` with
      the reason in ``skipped``).
    """
    L = np.asarray(layers)
    depth = L[-1]
    fits = []
    for j, r in enumerate(np.asarray(rho1)):
        lo = max(depth / 10**fit_decades, after_onset * onset[j])
        entry = {"rho1": float(r), "onset": float(onset[j]),
                 "predicted_a": LOG_LAW_SLOPE, "predicted_b": float(predicted_b[j])}
        if not np.isfinite(lo) or lo > depth / math.sqrt(10):
            entry["fit"] = None
            entry["skipped"] = (f"less than half a decade between {after_onset:g} x onset and "
                                f"depth {depth}")
        else:
            entry["fit"] = fit_decay(L, deviation[:, j], window=(lo, depth)).as_dict()
        fits.append(entry)
    return fits


def decay_fit_table(fits: list[dict]) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: the records of :func:`fit_decays_past_onset`, one row per pair
    (the cells of a pair not fitted left empty)."""
    keys = ["log_a", "log_b", "predicted_b", "log_max_rel", "log_rms_rel", "power_c", "power_p",
            "power_max_rel", "power_rms_rel", "better", "local_exponent", "step_ratio"]
    rows = []
    for f in fits:
        g = {**(f["fit"] or {}), "predicted_b": f["predicted_b"]}
        rows.append([f["rho1"], f["onset"], *g.get("window", (None, None)), *(g.get(k) for k in keys)])
    columns = ["rho1", "onset_depth", "window_min", "window_max", *keys[:-2], "local_exponent_at_L",
               "step_ratio_at_L"]
    return columns, rows


def predicted_log_law(one_minus_rho, layers) -> dict[str, np.ndarray]:
    """The law ``e_L ~ (a log L + b)/L`` that the recursion predicts, from a trace.

    ``C = 1/theta_L - L/(3 pi) - log(L)/(2 pi)`` (which converges as L grows)
    is read off the deepest layer, and ``a = 3/8``, ``b = 3 pi C / 4 - 1/8``.

    Args:
      one_minus_rho: ``[m, ...]`` ``1 - rho_L`` at ``layers`` (a trace's
        ``one_minus_rho``); the last row is used.
      layers: ``[m]`` the depths.

    Returns:
      ``{"a": ..., "b": [...], "C": [...]}`` with ``b``, ``C`` of shape ``[...]``.
    """
    omr = np.asarray(one_minus_rho, dtype=np.float64)[-1]
    L = float(np.asarray(layers)[-1])
    theta = 2.0 * np.arcsin(np.sqrt(omr / 2.0))
    with np.errstate(divide="ignore"):  # rho_1 = 1: theta = 0, C = b = inf
        C = 1.0 / theta - L / (3.0 * math.pi) - math.log(L) / (2.0 * math.pi)
    return {"a": LOG_LAW_SLOPE, "b": 3.0 * math.pi * C / 4.0 - 0.125, "C": C}


# --------------------------------------------------------------------------
# Corollary 1: the onset of the decay.


class OnsetDepth(NamedTuple):
    """The onset of the decay of ``Thetabar^L`` towards 1/4, per starting correlation.

    Attributes:
      onset: the onset depth (``inf`` where not reached by ``max_depth``, e.g. ``rho_1 = 1``).
      peak_depth: the depth of the largest ``|Thetabar^L - 1/4|``.
      peak_deviation: that largest ``|Thetabar^L - 1/4|``.
      max_depth: the deepest layer examined.
    """

    onset: np.ndarray
    peak_depth: np.ndarray
    peak_deviation: np.ndarray
    max_depth: int


def _grid(max_depth: int, dense_until: int, ratio: float) -> np.ndarray:
    dense = np.arange(1, min(dense_until, max_depth) + 1)
    if max_depth <= dense_until:
        return dense
    n = int(math.ceil(math.log(max_depth / dense_until) / math.log(ratio)))
    sparse = np.round(dense_until * ratio ** np.arange(1, n + 1)).astype(np.int64)
    return np.unique(np.concatenate([dense, np.minimum(sparse, max_depth), [max_depth]]))


def decay_onset_depth(
    rho1, *, max_depth: int | None = None, dense_until: int = 2000, ratio: float = 1.002
) -> OnsetDepth:
    """Corollary 1 made concrete: from which depth the decay towards 1/4 is visible.

    Definition: with ``e_L = Thetabar^L - 1/4`` and ``L_peak`` the depth of the
    largest ``|e_L|`` (the first one, if tied), the onset depth is the first
    ``L > L_peak`` with ``|e_L| <= |e_{L_peak}| / 2``. For ``rho_1`` near 1 the
    peak is ``e_1 = rho_1 - 1/4 ~ 3/4`` and ``Thetabar^L`` stays near 1 until
    ``L`` is comparable with ``1/theta_1``; the onset grows like
    ``ONSET_THETA_CONSTANT / theta_1 ~ ONSET_CONSTANT (1 - rho_1)^(-1/2)``
    (module docstring). For ``rho_1 <= 0`` it is 2: the deviation falls at
    once (and later changes sign). Near ``rho_1 = 1/4`` the peak is small and
    lies past ``L = 1``, so the onset there marks the end of a short hump
    rather than a long plateau.

    Exact to the layer: one float64 pass of :func:`~ntkdepth.kernels.correlation_trace` over a
    grid (every layer up to ``dense_until``, then steps of ``ratio``) brackets
    the crossing, a second pass over the bracketed layers finds it. The peak
    is located on the grid (exact when it lies below ``dense_until``).

    Args:
      rho1: starting correlations in ``[-1, 1]``, any shape.
      max_depth: the deepest layer to examine; default
        ``max(200, 3 * ONSET_THETA_CONSTANT / theta_1)`` for the smallest
        ``theta_1 > 0``, capped at 1e7.
      dense_until, ratio: the grid of the first pass.

    Returns:
      :class:`OnsetDepth`, each array of ``rho1``'s shape.
    """
    r = np.asarray(rho1, dtype=np.float64)
    shape = r.shape
    r = r.ravel()
    if r.size == 0 or np.any(~np.isfinite(r)) or np.any(np.abs(r) > 1):
        raise ValueError("rho1 must be finite correlations in [-1, 1]")
    if ratio <= 1.0 or dense_until < 2:
        raise ValueError("need ratio > 1 and dense_until >= 2")
    if max_depth is None:
        theta = np.arccos(r[r < 1.0])
        theta_min = float(theta.min()) if theta.size else math.pi
        max_depth = int(min(1e7, max(200.0, math.ceil(3 * ONSET_THETA_CONSTANT / theta_min))))
    if int(max_depth) != max_depth or max_depth < 2:
        raise ValueError(f"max_depth must be an integer >= 2; got {max_depth!r}")
    max_depth = int(max_depth)

    grid = _grid(max_depth, dense_until, ratio)
    with jax.enable_x64(True):
        tb = np.asarray(correlation_trace(r, depth=max_depth, layers=grid).ntk_normalized)
    dev = np.abs(tb - 0.25)  # [len(grid), n]
    k_peak = np.argmax(dev, axis=0)
    peak = dev[k_peak, np.arange(r.size)]
    after = (np.arange(len(grid))[:, None] > k_peak[None, :]) & (dev <= peak[None, :] / 2)
    found = after.any(axis=0)
    k_hit = np.where(found, np.argmax(after, axis=0), -1)
    onset = np.where(found, grid[np.maximum(k_hit, 0)], np.inf).astype(np.float64)

    # Refine: the crossing lies in (grid[k_hit - 1], grid[k_hit]].
    gaps = [
        (int(grid[k - 1]) + 1, int(grid[k]))
        for k in k_hit
        if k > 0 and grid[k] - grid[k - 1] > 1
    ]
    if gaps:
        fine = np.unique(np.concatenate([np.arange(lo, hi + 1) for lo, hi in gaps]))
        with jax.enable_x64(True):
            tb_f = np.asarray(
                correlation_trace(r, depth=int(fine[-1]), layers=fine).ntk_normalized
            )
        dev_f = np.abs(tb_f - 0.25)
        for j in np.nonzero(found)[0]:
            k = k_hit[j]
            if k == 0 or grid[k] - grid[k - 1] <= 1:
                continue
            sel = (fine > grid[k - 1]) & (fine <= grid[k])
            hit = np.nonzero(dev_f[sel, j] <= peak[j] / 2)[0]
            onset[j] = fine[sel][hit[0]]
    return OnsetDepth(
        onset=onset.reshape(shape), peak_depth=grid[k_peak].reshape(shape),
        peak_deviation=peak.reshape(shape), max_depth=max_depth,
    )


@dataclass(frozen=True)
class OnsetLaw:
    """``L_onset ~ C (1 - rho_1)^(-q)`` fitted by least squares on log-log axes.

    Attributes:
      C, q: the fitted law (theory as ``rho_1 -> 1``: ``q = 1/2``, ``C = ONSET_CONSTANT``).
      max_rel, rms_rel: relative residuals over the ``n_points`` fitted.
      range_one_minus_rho: the ``(min, max)`` of ``1 - rho_1`` fitted.
      theta_onset: ``theta_1 * L_onset`` at the smallest ``1 - rho_1`` (theory ``ONSET_THETA_CONSTANT``).
      sqrt_onset: ``(1 - rho_1)^(1/2) L_onset`` there (theory ``ONSET_CONSTANT``).
    """

    C: float
    q: float
    max_rel: float
    rms_rel: float
    n_points: int
    range_one_minus_rho: tuple[float, float]
    theta_onset: float
    sqrt_onset: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __call__(self, one_minus_rho):
        return self.C * np.asarray(one_minus_rho, dtype=np.float64) ** (-self.q)


def fit_onset_law(one_minus_rho1, onset, *, max_one_minus_rho: float = 1e-2) -> OnsetLaw:
    """Fits ``L_onset = C (1 - rho_1)^(-q)`` over the pairs with ``1 - rho_1 <= max_one_minus_rho``.

    Pass ``1 - rho_1`` (not ``rho_1``) so that it keeps its precision near 1;
    pairs whose onset is infinite are skipped. Needs at least 3 pairs.
    """
    x = np.asarray(one_minus_rho1, dtype=np.float64).ravel()
    y = np.asarray(onset, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"one_minus_rho1 {x.shape} and onset {y.shape} must match")
    m = (x > 0) & (x <= max_one_minus_rho) & np.isfinite(y)
    if m.sum() < 3:
        raise ValueError(
            f"{int(m.sum())} pairs with 0 < 1 - rho_1 <= {max_one_minus_rho:g} and a finite "
            f"onset; need at least 3"
        )
    xm, ym = x[m], y[m]
    law = fit_power_law(xm, ym)
    C, q = law.prefactor, -law.exponent
    rel = C * xm ** (-q) / ym - 1.0
    k = int(np.argmin(xm))
    theta = 2.0 * math.asin(math.sqrt(xm[k] / 2.0))
    return OnsetLaw(
        C=C, q=q, max_rel=float(np.max(np.abs(rel))), rms_rel=float(np.sqrt(np.mean(rel**2))),
        n_points=int(m.sum()), range_one_minus_rho=(float(xm.min()), float(xm.max())),
        theta_onset=float(theta * ym[k]), sqrt_onset=float(math.sqrt(xm[k]) * ym[k]),
    )


def continuum_onset(one_minus_rho1):
    """The onset depth of the continuum limit, ``ONSET_THETA_CONSTANT / theta_1`` with
    ``theta_1 = 2 arcsin(sqrt((1 - rho_1) / 2))`` (docs/depth.md#the-onset-of-the-decay).

    Takes ``[m]`` values ``1 - rho_1`` (for precision near 1); returns ``[m]`` floats.
    """
    return np.array([ONSET_THETA_CONSTANT / (2 * math.asin(math.sqrt(x / 2)))
                     for x in np.asarray(one_minus_rho1, dtype=np.float64).ravel()])


def continuum_profile(L, one_minus_rho1):
    """The continuum approximation ``Thetabar^L ~ (y + 1)(y^2 + 1) / (4 y^3)``, ``y = 1 + (L - 1) theta_1 / (3 pi)``
    (Corollary 1).

    Leading order as ``rho_1 -> 1`` at ``L theta_1`` fixed (module docstring);
    it omits the ``(3/8) log(L) / L`` part of the deviation, which matters
    only once ``L >> 1 / theta_1`` and ``1/theta_1`` is not large against
    ``log L``. Takes ``1 - rho_1`` for precision; broadcasts.
    """
    L = np.asarray(L, dtype=np.float64)
    omr = np.asarray(one_minus_rho1, dtype=np.float64)
    theta = 2.0 * np.arcsin(np.sqrt(omr / 2.0))
    y = 1.0 + (L - 1.0) * theta / (3.0 * math.pi)
    return (y + 1.0) * (y * y + 1.0) / (4.0 * y**3)
