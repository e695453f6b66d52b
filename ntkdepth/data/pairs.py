"""Pair geometry of a dataset: angles between its points and its separation ``delta``, accurate
also for nearly identical rows (docs/separation.md#measuring-separation).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["closest_pair", "colinear_angles", "max_abs_cosine", "min_pairwise_angle", "pair_angles"]


def _scale_rows(x: np.ndarray) -> np.ndarray:
    """Rows multiplied by exact powers of two so that their largest entry lies in [0.5, 1)."""
    m = np.max(np.abs(x), axis=-1, keepdims=True)
    _, e = np.frexp(np.where(m > 0, m, 1.0))
    return np.ldexp(x, -e)


def pair_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles between the rows of ``a`` and ``b`` (``[..., d]`` each), accurate down to tiny angles.

    ``arccos(<a, b> / |a||b|)`` loses half the digits near 0 and ``pi``; the
    same holds, through the rounding of the normalization, for ``2 arcsin(|u - v| / 2)``
    with ``u, v`` the normalized rows when the inputs are not exactly unit. Here,
    with ``w = b - a`` (exact for nearly identical rows), ``c = <w, a> / |a|^2`` and
    ``w_perp = w - c a``, the decomposition ``b = (1 + c) a + w_perp`` gives::

        angle(a, b) = atan2( |w_perp|, (1 + c) |a| )

    whose relative error stays at a few ulps even for angles of ``1e-9`` (for unit
    rows it equals ``2 arcsin(|u - v|/2)`` in exact arithmetic). Rows are first
    scaled by powers of two, so any finite magnitude works. Zero rows give NaN.
    """
    a = _scale_rows(np.asarray(a, dtype=np.float64))
    b = _scale_rows(np.asarray(b, dtype=np.float64))
    na2 = np.sum(a * a, axis=-1, keepdims=True)
    w = b - a
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.sum(w * a, axis=-1, keepdims=True) / na2
        w_perp = w - c * a
        ang = np.arctan2(np.linalg.norm(w_perp, axis=-1), (1.0 + c[..., 0]) * np.sqrt(na2[..., 0]))
    zero = (na2[..., 0] == 0) | (np.sum(b * b, axis=-1) == 0)
    return np.where(zero, np.nan, ang)


def colinear_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``min(angle(a, b), pi - angle(a, b))``, the second as ``angle(a, -b)`` (accurate near pi)."""
    return np.minimum(pair_angles(a, b), pair_angles(a, -b))


def _validated_rows(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a [n, d] array of points; got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 rows to measure a separation; got {x.shape[0]}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"input contains NaN or inf at row {bad[0][0]}, column {bad[0][1]}")
    zero = np.flatnonzero(~np.any(x != 0, axis=1))
    if zero.size:
        raise ValueError(f"row {zero[0]} is the zero vector: it has no direction")
    return x


def closest_pair(
    x, *, colinear: bool = False, block_entries: int = 1 << 22
) -> tuple[float, int, int]:
    """``(angle, i, j)`` with ``i < j`` the closest pair of rows of ``x`` by angle.

    With ``colinear=True`` the distance of a pair is ``min(angle, pi - angle)``
    (closeness to the same *line*: ``|cos|`` largest). Rows need not be unit.

    A Gram matrix of the normalized rows, ``block_entries`` entries at a time,
    screens candidates: every pair whose cosine is within a rounding margin of
    the block's largest; their angles are then computed accurately by
    :func:`pair_angles` (arccos of the Gram entry cannot resolve angles below ~1e-8).
    Ties go to the first pair in row-major order.
    """
    x = _validated_rows(x)
    n, d = x.shape
    xs = _scale_rows(x)
    u = xs / np.linalg.norm(xs, axis=1, keepdims=True)
    eps = np.finfo(np.float64).eps
    margin = 1e-11 + 16 * d * eps  # covers the rounding of u and of the dot products
    rows_per_block = max(1, int(block_entries) // n)
    best = (math.inf, -1, -1)
    best_cos = -math.inf
    for s in range(0, n - 1, rows_per_block):
        e = min(n - 1, s + rows_per_block)
        g = u[s:e] @ u[s:].T  # [e - s, n - s]: row i = s + r against columns j = s + c
        if colinear:
            np.abs(g, out=g)
        g[np.tril(np.ones(g.shape, dtype=bool))] = -np.inf  # keep j > i only
        gmax = float(g.max())
        thresh = max(gmax, best_cos) - margin
        r, c = np.nonzero(g >= thresh)
        if r.size == 0:
            continue
        i, j = r + s, c + s
        chunk = max(1, (1 << 20) // d)
        angles = np.concatenate([
            (colinear_angles if colinear else pair_angles)(x[i[k:k + chunk]], x[j[k:k + chunk]])
            for k in range(0, i.size, chunk)
        ])
        k = int(np.argmin(angles))
        if angles[k] < best[0]:
            best = (float(angles[k]), int(i[k]), int(j[k]))
            best_cos = math.cos(best[0])
    return best


def min_pairwise_angle(x, *, strict: bool = False, atol: float = 0.0) -> float:
    """The smallest angle between two distinct rows of ``x`` (the separation ``delta`` of
    Proposition 7 / Theorem 3), accurate also for nearly identical rows (see
    :func:`pair_angles`) and computed in blocks for large ``n``.

    With ``strict=True`` a pair at angle ``<= atol`` (by default: exactly 0, rows
    identical up to a positive factor) raises ``ValueError`` naming the two rows.
    """
    angle, i, j = closest_pair(x)
    if strict and angle <= atol:
        raise ValueError(
            f"rows {i} and {j} point in the same direction (angle {angle:.3g}): the data is not "
            "separated, and the NTK Gram matrix of their projections is singular"
        )
    return angle


def max_abs_cosine(x, *, strict: bool = False, atol: float = 0.0) -> float:
    """``max_{i<j} |<x_i, x_j>| / (|x_i| |x_j|)``, the near-colinearity of Proposition 7.

    Computed as ``cos(phi)`` of the smallest ``phi = min(angle, pi - angle)`` over
    pairs, found with :func:`closest_pair` (``colinear=True``). With ``strict=True``
    a pair with ``phi <= atol`` (by default exactly colinear: same or opposite
    direction) raises ``ValueError`` naming the two rows.
    """
    phi, i, j = closest_pair(x, colinear=True)
    if strict and phi <= atol:
        full = float(pair_angles(np.asarray(x, float)[i], np.asarray(x, float)[j]))
        kind = "the same direction" if full < math.pi / 2 else "opposite directions"
        raise ValueError(
            f"rows {i} and {j} are colinear ({kind}, angle to the common line {phi:.3g}): "
            "|cos| = 1, the data is not separated"
        )
    return math.cos(phi)
