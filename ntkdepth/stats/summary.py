"""Summary statistics of repeated measurements (seeds, evaluation inputs).

The sample standard deviation uses ``n - 1`` degrees of freedom; a single
measurement has spread 0 by convention (not NaN), so that tables and error
bars stay defined for one seed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mean_sd", "standard_error"]


def mean_sd(values) -> tuple[float, float]:
    """``(mean, sample standard deviation)`` of the ``[m]`` values; s.d. 0 when ``m = 1``.

    Computed in the dtype of the values (float32 measurements stay float32
    until the result is converted to Python floats).
    """
    v = np.asarray(values)
    if v.size == 0:
        raise ValueError("mean_sd needs at least one value")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else 0.0


def standard_error(values) -> float:
    """Standard error of the mean ``sd / sqrt(m)`` of the ``[m]`` values; 0 when ``m = 1``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("standard_error needs at least one value")
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
