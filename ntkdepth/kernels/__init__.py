"""Analytic kernels of deep ReLU networks and the bridge to neural-tangents.

- :func:`relu_kernel_trace`: ``Sigma^l``, ``Sigmadot^l``, ``Theta^l``, ``rho_l`` and
  ``Thetabar^l`` at every requested depth (docs/kernels.md): by the layer loop, or
  at the cost of one Gram matrix at any depth by the interpolated path.
- :func:`relu_ntk`, :func:`relu_nngp`: the final-depth kernels.
- :func:`relu_kernel_fn`: one network's ``kernel_fn(x1, x2, get)``, as in neural-tangents.
- :func:`correlation_trace`: the correlation-space recursion on the sphere,
  accurate at depths of 1e6 (docs/kernels.md, "Stable angle form").
- :func:`stax_mlp`: the same network as neural-tangents ``stax`` layers.
"""

from ntkdepth.kernels.nt_bridge import stax_mlp
from ntkdepth.kernels.relu import (
    FLOAT32_MAX_DEPTH,
    KERNEL_FIELDS,
    CorrelationTrace,
    KernelTrace,
    correlation_map,
    correlation_map_derivative,
    correlation_trace,
    relu_kernel_fn,
    relu_kernel_trace,
    relu_nngp,
    relu_ntk,
)

__all__ = [
    "FLOAT32_MAX_DEPTH",
    "KERNEL_FIELDS",
    "CorrelationTrace",
    "KernelTrace",
    "correlation_map",
    "correlation_map_derivative",
    "correlation_trace",
    "relu_kernel_fn",
    "relu_kernel_trace",
    "relu_nngp",
    "relu_ntk",
    "stax_mlp",
]
