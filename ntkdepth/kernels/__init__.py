"""Analytic kernels of deep ReLU networks and the bridge to neural-tangents.

- :func:`relu_kernel_trace`: ``Sigma^l``, ``Sigmadot^l``, ``Theta^l``, ``rho_l`` and
  ``Thetabar^l`` at every requested depth from one compiled pass (MATH.md, section 2).
- :func:`relu_ntk`, :func:`relu_nngp`: the final-depth kernels.
- :func:`correlation_trace`: the correlation-space recursion on the sphere,
  accurate at depths of 1e5 and beyond (MATH.md, section 3).
- :func:`stax_mlp`: the same network as neural-tangents ``stax`` layers.
"""

from ntkdepth.kernels.nt_bridge import stax_mlp
from ntkdepth.kernels.relu import (
    KERNEL_FIELDS,
    CorrelationTrace,
    KernelTrace,
    correlation_map,
    correlation_map_derivative,
    correlation_trace,
    relu_kernel_trace,
    relu_nngp,
    relu_ntk,
)
from ntkdepth.kernels.tiled import tiled_kernel

__all__ = [
    "KERNEL_FIELDS",
    "CorrelationTrace",
    "KernelTrace",
    "correlation_map",
    "correlation_map_derivative",
    "correlation_trace",
    "relu_kernel_trace",
    "relu_nngp",
    "relu_ntk",
    "stax_mlp",
    "tiled_kernel",
]
