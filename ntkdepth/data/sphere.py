"""Points on the unit sphere ``S^{d-1}``, the canonical projection onto it and the inverse
stereographic projection (Definition 6; docs/separation.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_sphere", "sample_cube", "canonical_projection", "inverse_stereographic"]


def sample_sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``[n, d]`` points drawn uniformly on ``S^{d-1}`` (normalized Gaussians)."""
    if n < 1 or d < 2:
        raise ValueError(f"need n >= 1 points in dimension d >= 2; got n={n}, d={d}")
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sample_cube(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``[n, d]`` points drawn uniformly from the cube ``[-1, 1]^d``."""
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 points in dimension d >= 1; got n={n}, d={d}")
    return rng.uniform(-1.0, 1.0, size=(n, d))


def canonical_projection(x: np.ndarray, *, colinear_tol: float = 1e-12) -> np.ndarray:
    """``x / |x|`` row by row, refusing inputs the projection would merge.

    Raises ``ValueError`` for NaN/inf entries, a zero row, or two rows that are
    colinear (``|cos| >= 1 - colinear_tol``), naming the offending rows.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a [n, d] array of points; got shape {x.shape}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"input contains NaN or inf at row {bad[0][0]}, column {bad[0][1]}")
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"row {zero[0]} is the zero vector: it has no direction to project")
    u = x / norms[:, None]
    cos = u @ u.T
    np.fill_diagonal(cos, 0.0)
    i, j = np.unravel_index(np.argmax(np.abs(cos)), cos.shape)
    if x.shape[0] > 1 and abs(cos[i, j]) >= 1.0 - colinear_tol:
        kind = "the same point" if cos[i, j] > 0 else "antipodal points"
        raise ValueError(
            f"rows {min(i, j)} and {max(i, j)} are colinear (cos = {cos[i, j]:.15f}): the "
            f"canonical projection maps them to {kind}; use the inverse stereographic "
            "projection, which keeps them apart"
        )
    return u


def inverse_stereographic(x: np.ndarray) -> np.ndarray:
    """The inverse stereographic projection ``R^d -> S^d`` (Definition 6; docs/separation.md), row by row::

        x  ->  ( 2x / (1 + |x|^2),  (|x|^2 - 1) / (|x|^2 + 1) )

    It is injective (``x`` and ``2x``, ``x`` and ``-x`` stay apart, unlike under
    the canonical projection) and sends ``0`` to the south pole ``(0, ..., 0, -1)``;
    large ``|x|`` approach the north pole, the "point at infinity".

    ``x`` is ``[n, d]`` (or a single point ``[d]``); the result is ``[n, d + 1]``
    (or ``[d + 1]``). ``|x|`` is computed with scaling and, for ``|x| > 1``, the
    map in terms of ``s = 1/|x|``::

        2x / (1 + |x|^2) = 2 (x/|x|) s / (1 + s^2),   (|x|^2 - 1)/(|x|^2 + 1) = (1 - s^2)/(1 + s^2)

    so no intermediate overflows for any finite input (``|x|`` up to ~1e308).
    Raises ``ValueError`` naming the first row that holds NaN or inf.
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"expected a [n, d] array of points (d >= 1); got shape {x.shape}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"input contains NaN or inf at row {bad[0][0]}, column {bad[0][1]}")
    scale = np.max(np.abs(x), axis=1, keepdims=True)  # [n, 1]
    safe = np.where(scale > 0, scale, 1.0)
    direction_scaled = x / safe  # entries in [-1, 1], largest exactly 1 (unless the row is 0)
    r_scaled = np.linalg.norm(direction_scaled, axis=1, keepdims=True)  # in [1, sqrt(d)] or 0
    with np.errstate(over="ignore"):
        r = scale * r_scaled  # |x|; inf only beyond the float range, handled by the far branch
    near = r <= 1.0
    out = np.empty((x.shape[0], x.shape[1] + 1))
    # |x| <= 1: the formula as written (|x|^2 <= 1, squares cannot overflow).
    x_near = np.where(near, x, 0.0)
    r2 = np.sum(x_near**2, axis=1, keepdims=True)
    denom = 1.0 + r2
    near_first = 2.0 * x_near / denom
    near_last = (r2 - 1.0) / denom
    # |x| > 1: in terms of s = 1/|x| <= 1, with x/|x| from the scaled row.
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        s = np.where(near, 1.0, np.where(np.isfinite(r), 1.0 / r, (1.0 / safe) / r_scaled))
        unit = direction_scaled / np.where(r_scaled > 0, r_scaled, 1.0)
    s2 = s * s
    far_first = 2.0 * unit * (s / (1.0 + s2))
    far_last = (1.0 - s2) / (1.0 + s2)
    out[:, :-1] = np.where(near, near_first, far_first)
    out[:, -1:] = np.where(near, near_last, far_last)
    return out[0] if single else out
