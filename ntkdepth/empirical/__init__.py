"""Empirical kernels of finite networks.

The empirical NTK of a network ``f(params, x)`` is
``Theta_hat(x, x') = sum_p  d f(x)/d p  d f(x')/d p`` (Jacot et al., 2018): at
NTK parameterization it converges to the analytic ``Theta^L`` as the widths
grow (docs/kernels.md#finite-width). neural-tangents' own empirical kernels do not
import on current JAX; these replace them. The feature kernel of the last
hidden layer and the drift statistics of docs/drift.md#measured-drift are here too.
"""

from ntkdepth.empirical.drift import (
    DriftStats,
    PowerLaw,
    drift_statistics,
    fit_power_law,
    inner_product_change,
)
from ntkdepth.empirical.ntk import (
    empirical_ntk,
    empirical_ntk_fn,
    feature_kernel,
    mlp_ntk,
    monte_carlo_ntk,
)

__all__ = [
    "DriftStats",
    "PowerLaw",
    "fit_power_law",
    "drift_statistics",
    "inner_product_change",
    "empirical_ntk",
    "empirical_ntk_fn",
    "feature_kernel",
    "mlp_ntk",
    "monte_carlo_ntk",
]
