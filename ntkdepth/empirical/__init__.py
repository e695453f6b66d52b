"""Empirical kernels of finite networks.

The empirical NTK of a network ``f(params, x)`` is
``Theta_hat(x, x') = sum_p  d f(x)/d p  d f(x')/d p`` (Jacot et al., 2018): at
NTK parameterization it converges to the analytic ``Theta^L`` as the widths
grow (docs/kernels.md#finite-width). neural-tangents' own empirical kernels do not
import on current JAX; these replace them. The feature kernel of the last
hidden layer and the drift measures of docs/drift.md#measured-drift are here too.
"""

from ntkdepth.empirical.drift import DRIFT_MEASURES, drift_curves, feature_record, final_drift
from ntkdepth.empirical.ntk import (
    empirical_ntk,
    empirical_ntk_fn,
    feature_kernel,
    mlp_ntk,
    monte_carlo_ntk,
)

__all__ = [
    "DRIFT_MEASURES",
    "drift_curves",
    "feature_record",
    "final_drift",
    "empirical_ntk",
    "empirical_ntk_fn",
    "feature_kernel",
    "mlp_ntk",
    "monte_carlo_ntk",
]
