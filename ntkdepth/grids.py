"""Grids of depths and widths for sweeps."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["log_grid", "trace_depths"]


def log_grid(max_value: int, count: int, min_value: int = 1) -> np.ndarray:
    """About ``count`` distinct integers, log-spaced from ``min_value`` to ``max_value`` (both kept)."""
    if count < 1 or max_value < min_value or min_value < 1:
        raise ValueError(f"need 1 <= min_value <= max_value and count >= 1; got "
                         f"{min_value}, {max_value}, {count}")
    return np.unique(np.round(np.geomspace(min_value, max_value, count)).astype(int))


def trace_depths(depth: int, count: int) -> np.ndarray:
    """The depths at which a trace to ``depth`` is kept: :func:`log_grid` ``(depth, count)``,
    every power of ten up to ``depth``, and ``depth - 1`` with ``depth`` (the last two, so that
    the step ratio ``|e_{L+1}| / |e_L|`` of docs/depth.md#logarithmic-convergence is read at
    the deepest layer)."""
    if depth < 2:
        raise ValueError(f"depth must be at least 2 (the last two depths are kept); got {depth}")
    decades = [10**k for k in range(int(math.log10(depth)) + 1)]
    return np.unique(np.concatenate([log_grid(depth, count), decades, [depth - 1, depth]]))
