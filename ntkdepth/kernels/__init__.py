"""Analytic kernels of deep networks and the bridge to neural-tangents.

- :func:`kernel_trace`, :func:`kernel_fn`: the same for any elementwise activation
  (:class:`Activation`, :func:`activation`; docs/activations.md).
- :func:`relu_kernel_trace`: ``Sigma^l``, ``Sigmadot^l``, ``Theta^l``, ``rho_l`` and
  ``Thetabar^l`` at every requested depth (docs/kernels.md): by the layer loop, or
  at the cost of one Gram matrix at any depth by the interpolated path.
- :func:`relu_ntk`, :func:`relu_nngp`: the final-depth kernels.
- :func:`relu_kernel_fn`: one network's ``kernel_fn(x1, x2, get)``, as in neural-tangents.
- :func:`correlation_trace`: the correlation-space recursion on the sphere,
  accurate at depths of 1e6 (docs/kernels.md, "Stable angle form").
- :func:`stax_mlp`: the same network as neural-tangents ``stax`` layers; :func:`stax_residual_mlp`
  the residual network (``residual=alpha``, :func:`residual_alpha`; docs/residual.md).
"""

from ntkdepth.kernels.activations import ACTIVATION_NAMES, Activation, activation
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
from ntkdepth.kernels.residual import residual_alpha
from ntkdepth.kernels.stax_layers import stax_mlp, stax_residual_mlp
from ntkdepth.kernels.tiled import tiled_kernel
from ntkdepth.kernels.trace import kernel_fn, kernel_trace

__all__ = [
    "ACTIVATION_NAMES",
    "Activation",
    "FLOAT32_MAX_DEPTH",
    "KERNEL_FIELDS",
    "CorrelationTrace",
    "KernelTrace",
    "correlation_map",
    "correlation_map_derivative",
    "correlation_trace",
    "activation",
    "kernel_fn",
    "kernel_trace",
    "relu_kernel_fn",
    "relu_kernel_trace",
    "relu_nngp",
    "relu_ntk",
    "residual_alpha",
    "stax_mlp",
    "stax_residual_mlp",
    "tiled_kernel",
]
