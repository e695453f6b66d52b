"""The infinite-width drift of the hidden layers under gradient flow, from kernels alone: any layer at
any depth, one unit's law, the one-hot setting of Table 1 and the Gram matrix of its change between
words, for the activations of ``DRIFT_ACTIVATIONS`` (derivation: docs/drift.md).
"""

from __future__ import annotations

from ntkdepth.theory.drift.aggregate import drift_norm_prediction, drift_prediction
from ntkdepth.theory.drift.expectations import DRIFT_ACTIVATIONS, supports_drift
from ntkdepth.theory.drift.gram import equicorrelated_orthant, onehot_drift_gram
from ntkdepth.theory.drift.kernels import residual_integral_map
from ntkdepth.theory.drift.onehot import onehot_drift_measures, onehot_drift_prediction
from ntkdepth.theory.drift.units import UnitDriftStatistics, per_unit_drift_statistics

__all__ = [
    "DRIFT_ACTIVATIONS",
    "UnitDriftStatistics",
    "drift_prediction",
    "drift_norm_prediction",
    "equicorrelated_orthant",
    "onehot_drift_gram",
    "onehot_drift_measures",
    "onehot_drift_prediction",
    "per_unit_drift_statistics",
    "residual_integral_map",
    "supports_drift",
]
