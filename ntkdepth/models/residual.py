"""The residual MLP (Flax NNX): a first layer, ``L - 1`` blocks ``h + alpha (W phi(h) + b)`` of one width
and a linear readout of the stream (docs/residual.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.activations import activation as as_activation
from ntkdepth.kernels.residual import check_residual, residual_alpha
from ntkdepth.models.mlp import MLP

__all__ = ["ResidualMLP"]


class ResidualMLP(MLP):
    """A residual network of ``depth`` layers of one ``width``, returning its output and its stream.

    ``h^1 = (W_std / sqrt(n0)) W^1 x + b_std b^1``, then for ``l = 1 .. depth - 1`` the blocks
    ``h^{l+1} = h^l + alpha ((W_std / sqrt(width)) W^{l+1} phi(h^l) + b_std b^{l+1})``, and the readout
    ``f = (out_std / sqrt(width)) W^out h^depth + b_std b^out``; every parameter ``N(0, 1)`` at NTK
    parameterization (``"standard"`` and ``"mup"`` move the scales as :class:`~ntkdepth.models.MLP`
    does). Its kernels are :func:`ntkdepth.kernels.kernel_fn` with ``residual``; those of the stream
    ``h^l`` are :func:`ntkdepth.kernels.kernel_trace`'s (docs/residual.md).

    Args:
      in_dim: input dimension ``n0`` (the vocabulary size for token inputs).
      width: the stream's width ``n`` (every layer but the readout).
      depth: ``L >= 1``, the stream's layers (the first and ``L - 1`` blocks; ``L + 1`` weight layers
        with the readout).
      out_dim: output dimension.
      residual: ``alpha > 0``, or ``"a/sqrt(L)"`` for ``alpha = a / sqrt(depth)``.

    The other keywords are those of :class:`~ntkdepth.models.MLP`. ``model(x) -> (f [b, out_dim], h^L [b, width])``: the features are the stream the readout reads.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int,
        *,
        residual: float | str,
        parameterization: str = "ntk",
        W_std: float = 2.0**0.5,
        b_std: float = 0.0,
        out_std: float | None = None,
        activation: str | Activation = "relu",
        tokens: bool = False,
        input_scale: float = 1.0,
        base_width: int = 256,
        rngs: nnx.Rngs | int = 0,
        param_dtype=jnp.float32,
        precision=jax.lax.Precision.HIGHEST,
    ):
        if residual is None:
            raise ValueError("ResidualMLP needs residual=alpha (> 0) or 'a/sqrt(L)'; the plain network is MLP")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
        self.residual = check_residual(residual)
        self.alpha = residual_alpha(self.residual, depth)
        # The stream's layers, then the readout: hidden widths [width] * depth.
        super().__init__(
            in_dim, [width] * depth, out_dim, parameterization=parameterization, W_std=W_std, b_std=b_std,
            out_std=out_std, activation=activation, tokens=tokens, input_scale=input_scale,
            base_width=base_width, rngs=rngs, param_dtype=param_dtype, precision=precision,
        )
        for layer in self.layers[1:-1]:  # the blocks' branches carry alpha
            layer.multiplier = self.alpha * layer.multiplier
            layer.bias_multiplier = self.alpha * layer.bias_multiplier

    @property
    def depth(self) -> int:
        """``L``, the stream's layers (the readout is one more weight layer)."""
        return len(self.hidden)

    def forward(self, x: jax.Array, perturbations: Sequence[jax.Array] | None = None):
        """``(f(x), [x, phi(h^1), ..., phi(h^{L-1}), h^L])``: the output and what each weight layer reads.

        ``perturbations[l]`` is added to the output of weight layer ``l`` (``h^{l+1}`` for the stream),
        so that their gradients are the signals :func:`ntkdepth.empirical.mlp_ntk` contracts.
        """
        phi = as_activation(self.activation)
        h = self.first_layer(x)
        if perturbations is not None:
            h = h + perturbations[0]
        inputs = [x]
        for l, layer in enumerate(self.layers[1:-1], start=1):
            a = phi(h)
            inputs.append(a)
            h = h + layer(a, self.precision)
            if perturbations is not None:
                h = h + perturbations[l]
        inputs.append(h)
        f = self.layers[-1](h, self.precision)
        if perturbations is not None:
            f = f + perturbations[-1]
        return f, inputs
