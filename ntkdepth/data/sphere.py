"""Points on the unit sphere ``S^{d-1}`` and the canonical projection onto it (MATH.md, section 4).

The paper's depth analysis (section 6) takes inputs on the sphere: the ReLU
NTK of distinct points there is invertible. Data elsewhere is projected
canonically, ``x -> x / |x|``, which is valid when no input is zero and no two
inputs are colinear (positively or negatively: ``x`` and ``-x`` map to
antipodal points, ``x`` and ``2x`` to the same one).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_sphere", "sample_cube", "canonical_projection"]


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
