"""The networks of the kernel functions as neural-tangents ``stax`` layers, through the bridge
(:mod:`ntkdepth.kernels.nt_bridge`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ntkdepth.kernels.activations import activation as as_activation
from ntkdepth.kernels.nt_bridge import load
from ntkdepth.kernels.residual import residual_alpha

__all__ = ["stax_mlp", "stax_residual_mlp"]


def stax_mlp(
    depth: int,
    width: int,
    W_std: float = 2.0**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    out_std: float | None = None,
    activation="relu",
):
    """The paper's MLP as neural-tangents layers: ``(init_fn, apply_fn, kernel_fn)``.

    ``depth`` weight layers (``depth - 1`` hidden layers of ``width`` units with
    neural-tangents' own layer for ``activation`` (ReLU by default; a name or an
    :class:`ntkdepth.kernels.Activation`), then a linear readout of ``out_dim``
    units), weights ``N(0, W_std^2)``
    and biases ``N(0, b_std^2)`` in the given ``parameterization`` (``"ntk"``,
    the paper's, or ``"standard"``). With ``b_std == 0`` the layers have no
    bias parameters at all. ``kernel_fn`` is the infinite-width limit and
    agrees with :func:`ntkdepth.kernels.kernel_trace`. An activation that
    neural-tangents has no closed-form layer for (tanh, silu, softplus, a
    custom function) is a ``ValueError`` pointing to ntkdepth's own kernels.

    ``depth``, ``width`` and ``out_dim`` are integers >= 1 (Python or NumPy),
    ``W_std`` and ``out_std`` finite numbers > 0, ``b_std`` a finite number >= 0; anything
    else is a ``ValueError`` naming the argument.
    """
    for name, value in (("depth", depth), ("width", width), ("out_dim", out_dim)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    depth, width, out_dim = int(depth), int(width), int(out_dim)
    out_std = W_std if out_std is None else out_std
    for name, value, low in (("W_std", W_std, "> 0"), ("b_std", b_std, ">= 0"), ("out_std", out_std, "> 0")):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a finite number {low}; got {value!r}") from None
        if not math.isfinite(number) or (number < 0 if name == "b_std" else number <= 0):
            raise ValueError(f"{name} must be a finite number {low}; got {value!r}")
    W_std, b_std, out_std = float(W_std), float(b_std), float(out_std)
    if parameterization not in ("ntk", "standard"):
        raise ValueError(
            f"parameterization must be 'ntk' or 'standard'; got {parameterization!r}"
        )
    nonlinearity = as_activation(activation).stax  # the ValueError comes before any layer is built
    stax = load().stax
    bias = None if b_std == 0 else b_std
    hidden = []
    for _ in range(depth - 1):
        hidden += [
            stax.Dense(width, W_std=W_std, b_std=bias, parameterization=parameterization),
            nonlinearity(),
        ]
    readout = stax.Dense(out_dim, W_std=out_std, b_std=bias, parameterization=parameterization)
    return stax.serial(*hidden, readout)


def stax_residual_mlp(
    depth: int,
    width: int,
    residual: float | str,
    W_std: float = 2.0**0.5,
    b_std: float = 0.0,
    parameterization: str = "ntk",
    out_dim: int = 1,
    out_std: float | None = None,
    activation="relu",
):
    """The residual MLP (:class:`ntkdepth.models.ResidualMLP`) as neural-tangents layers.

    ``Dense(width)``, then ``depth - 1`` blocks ``FanOut(2), parallel(Identity, serial(phi,
    Dense(width, W_std = alpha W_std, b_std = alpha b_std))), FanInSum``, then the readout
    ``Dense(out_dim, W_std = out_std)`` of the stream: ``(init_fn, apply_fn, kernel_fn)``.
    ``residual``: ``alpha > 0``, or ``"a/sqrt(L)"`` for ``alpha = a / sqrt(depth)``. The other
    arguments, and the errors, are those of :func:`stax_mlp`; ``kernel_fn`` agrees with
    :func:`ntkdepth.kernels.kernel_fn` with ``residual`` (docs/residual.md).
    """
    stax_mlp(1, width, W_std=W_std, b_std=b_std, parameterization=parameterization, out_dim=out_dim,
             out_std=out_std, activation=activation)  # the same checks, before any block is built
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, numbers.Integral) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
    if residual is None:
        raise ValueError("stax_residual_mlp needs residual=alpha (> 0) or 'a/sqrt(L)'; the plain network is stax_mlp")
    alpha = residual_alpha(residual, int(depth))
    nonlinearity = as_activation(activation).stax
    stax = load().stax
    W_std, b_std = float(W_std), float(b_std)
    out_std = W_std if out_std is None else float(out_std)

    def bias(scale):
        return None if b_std == 0 else scale * b_std

    def block():
        branch = stax.serial(nonlinearity(), stax.Dense(int(width), W_std=alpha * W_std, b_std=bias(alpha),
                                                        parameterization=parameterization))
        return stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())

    first = stax.Dense(int(width), W_std=W_std, b_std=bias(1.0), parameterization=parameterization)
    readout = stax.Dense(int(out_dim), W_std=out_std, b_std=bias(1.0), parameterization=parameterization)
    return stax.serial(first, *[block() for _ in range(int(depth) - 1)], readout)
