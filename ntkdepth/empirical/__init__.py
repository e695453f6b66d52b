"""Empirical kernels of finite networks, which tend to ``Theta^L`` as the widths grow
(docs/kernels.md#finite-width), and the drift of their last hidden layer
(docs/drift.md#measured-drift).
"""

from ntkdepth.empirical.drift import (
    DRIFT_MEASURES,
    drift_against_prediction,
    drift_curves,
    feature_record,
    final_drift,
)
from ntkdepth.empirical.ntk import (
    empirical_ntk,
    empirical_ntk_fn,
    feature_kernel,
    mlp_ntk,
    monte_carlo_ntk,
)

__all__ = [
    "DRIFT_MEASURES",
    "drift_against_prediction",
    "drift_curves",
    "feature_record",
    "final_drift",
    "empirical_ntk",
    "empirical_ntk_fn",
    "feature_kernel",
    "mlp_ntk",
    "monte_carlo_ntk",
]
