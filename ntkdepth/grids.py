"""Grids of depths and widths for sweeps."""

from __future__ import annotations

import numpy as np

__all__ = ["log_grid"]


def log_grid(max_value: int, count: int, min_value: int = 1) -> np.ndarray:
    """About ``count`` distinct integers, log-spaced from ``min_value`` to ``max_value`` (both kept)."""
    if count < 1 or max_value < min_value or min_value < 1:
        raise ValueError(f"need 1 <= min_value <= max_value and count >= 1; got "
                         f"{min_value}, {max_value}, {count}")
    return np.unique(np.round(np.geomspace(min_value, max_value, count)).astype(int))
