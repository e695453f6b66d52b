"""Empirical kernels of finite networks.

The empirical NTK of a network ``f(params, x)`` is
``Theta_hat(x, x') = sum_p  d f(x)/d p  d f(x')/d p`` (Jacot et al., 2018): at
NTK parameterization it converges to the analytic ``Theta^L`` as the widths
grow (MATH.md, section 2). neural-tangents' own empirical kernels do not
import on current JAX; these replace them.
"""

from ntkdepth.empirical.ntk import empirical_ntk, empirical_ntk_fn, monte_carlo_ntk

__all__ = ["empirical_ntk", "empirical_ntk_fn", "monte_carlo_ntk"]
