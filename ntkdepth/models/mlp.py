"""Fully-connected Flax NNX networks at NTK, standard and muP parameterization, with token inputs
(docs/networks.md); a network returns its output and its last hidden layer from one pass.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

import jax
import jax.numpy as jnp
from flax import nnx

from ntkdepth.kernels.activations import ACTIVATION_NAMES, Activation
from ntkdepth.kernels.activations import activation as as_activation

__all__ = ["MLP", "PARAMETERIZATIONS", "PARAMETERIZATION_NAMES", "ACTIVATIONS"]

PARAMETERIZATIONS = ("ntk", "standard", "mup")

#: Each of :data:`PARAMETERIZATIONS` as tables, legends and summaries name it.
PARAMETERIZATION_NAMES = {"ntk": "NTK", "mup": "muP", "standard": "standard"}

#: The activations known by name (ntkdepth.kernels.ACTIVATION_NAMES); an Activation object (with
#: parameters, e.g. ``activation("leaky_relu", slope=0.2)``) or a function is accepted as well.
ACTIVATIONS = ACTIVATION_NAMES


class Dense(nnx.Module):
    """One weight layer: ``multiplier * a @ kernel + bias_multiplier * bias``."""

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        *,
        weight_std: float,
        multiplier: float,
        bias_std: float,
        bias_multiplier: float,
        use_bias: bool,
        rngs: nnx.Rngs,
        param_dtype,
    ):
        k = rngs.params()
        self.kernel = nnx.Param(weight_std * jax.random.normal(k, (fan_in, fan_out), param_dtype))
        self.bias = (
            nnx.Param(bias_std * jax.random.normal(rngs.params(), (fan_out,), param_dtype))
            if use_bias
            else None
        )
        self.multiplier = multiplier
        self.bias_multiplier = bias_multiplier

    def __call__(self, a: jax.Array, precision) -> jax.Array:
        h = self.multiplier * jnp.matmul(a, self.kernel[...], precision=precision)
        if self.bias is not None:
            h = h + self.bias_multiplier * self.bias[...]
        return h

    def lookup(self, tokens: jax.Array, input_scale: float) -> jax.Array:
        """The layer applied to ``input_scale * e_token`` for integer ``tokens`` ``[b]``.

        An id outside ``[0, fan_in)`` (negative ones included) reads a row of NaN.
        """
        kernel = self.kernel[...]
        vocab = kernel.shape[0]
        safe = jnp.where(tokens < 0, vocab, tokens)  # no wrap-around to the last rows
        rows = jnp.take(kernel, safe, axis=0, mode="fill", fill_value=jnp.nan)
        h = (self.multiplier * input_scale) * rows
        if self.bias is not None:
            h = h + self.bias_multiplier * self.bias[...]
        return h


class MLP(nnx.Module):
    """A fully-connected network returning its output and its last hidden layer.

    Args:
      in_dim: input dimension ``n_0`` (the vocabulary size ``V`` for token inputs).
      hidden: hidden widths ``n_1 .. n_{L-1}`` (at least one); depth ``L = len(hidden) + 1``.
      out_dim: output dimension ``n_L``.
      parameterization: ``"ntk"``, ``"standard"`` or ``"mup"`` (module docstring).
      W_std: ``sigma_w`` of every layer but the last.
      b_std: ``sigma_b`` (0: no biases, the paper's setting).
      out_std: ``sigma_w`` of the output layer (default ``W_std``).
      activation: a name of :data:`ntkdepth.kernels.ACTIVATION_NAMES` (default ``"relu"``), an
        :class:`~ntkdepth.kernels.Activation` or an elementwise JAX function.
      tokens: inputs are integer token ids ``[b]`` in ``[0, in_dim)`` (embedding lookup).
      input_scale: the one-hot vector of a token is ``input_scale * e_c``.
      base_width: muP's reference width (where it equals the NTK network).
      rngs: ``nnx.Rngs`` (or an int seed).
      param_dtype: dtype of the parameters.
      precision: matmul precision; the default ``HIGHEST`` keeps float32 exact on
        accelerators whose default (TF32, bf16 passes) would swamp per-unit
        drifts of order 1e-3.

    ``model(x) -> (f [b, out_dim], features [b, n_{L-1}])``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        *,
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
        hidden = list(hidden)
        if not hidden:
            raise ValueError("an MLP needs at least one hidden layer (hidden=[n_1, ...])")
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), *(
            (f"hidden[{i}]", w) for i, w in enumerate(hidden)
        )):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer width; got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive width; got {value}")
        hidden = [int(w) for w in hidden]
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {parameterization!r}; choose one of {PARAMETERIZATIONS}"
            )
        as_activation(activation)  # an unknown name is an error naming the known ones
        out_std = W_std if out_std is None else out_std
        if not (W_std > 0 and out_std > 0):
            raise ValueError(f"W_std and out_std must be positive; got {W_std}, {out_std}")
        if b_std < 0:
            raise ValueError(f"b_std must be >= 0; got {b_std}")
        if isinstance(rngs, int):
            rngs = nnx.Rngs(params=rngs)

        self.parameterization = parameterization
        self.activation = activation
        self.tokens = bool(tokens)
        self.input_scale = float(input_scale)
        self.base_width = int(base_width)
        self.precision = precision
        self.in_dim = int(in_dim)
        self.hidden = tuple(hidden)
        self.out_dim = int(out_dim)
        self.W_std, self.b_std, self.out_std = float(W_std), float(b_std), float(out_std)

        dims = [int(in_dim), *hidden, int(out_dim)]
        layers = []
        for l in range(len(dims) - 1):
            fan_in, fan_out = dims[l], dims[l + 1]
            std = out_std if l == len(dims) - 2 else W_std
            if parameterization == "standard":
                w_std, mult, bstd, bmult = std / fan_in**0.5, 1.0, b_std, 1.0
            else:
                w_std, mult, bstd, bmult = 1.0, std / fan_in**0.5, 1.0, b_std
                if parameterization == "mup" and l == len(dims) - 2:
                    mult = std * self.base_width**0.5 / fan_in
            layers.append(
                Dense(
                    fan_in, fan_out,
                    weight_std=w_std, multiplier=mult, bias_std=bstd, bias_multiplier=bmult,
                    use_bias=b_std > 0, rngs=rngs, param_dtype=param_dtype,
                )
            )
        self.layers = nnx.List(layers)

    @property
    def depth(self) -> int:
        """``L``, the number of weight layers."""
        return len(self.hidden) + 1

    def learning_rate_multiplier(self) -> float:
        """The factor muP applies to every learning rate (1 for the other parameterizations)."""
        if self.parameterization == "mup":
            return self.hidden[-1] / self.base_width
        return 1.0

    def first_layer(self, x: jax.Array) -> jax.Array:
        if self.tokens:
            x = jnp.asarray(x)
            if not jnp.issubdtype(x.dtype, jnp.integer):
                raise ValueError(f"token inputs must be integer ids; got dtype {x.dtype}")
            try:
                ids = np.asarray(x)  # concrete ids can be checked; traced ones cannot
            except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
                ids = None
            if ids is not None and ids.size:
                bad = (ids < 0) | (ids >= self.in_dim)
                if bad.any():
                    first = int(np.flatnonzero(bad.ravel())[0])
                    raise ValueError(
                        f"token id {int(ids.ravel()[first])} at position {first} is outside the "
                        f"vocabulary [0, {self.in_dim}) ({int(bad.sum())} such ids); ids must index "
                        "the vocabulary the MLP was built for (in_dim)"
                    )
            return self.layers[0].lookup(x, self.input_scale)
        return self.layers[0](x, self.precision)

    def __call__(self, x: jax.Array, perturbations: Sequence[jax.Array] | None = None):
        """``(f(x), a^{L-1}(x))``.

        ``perturbations`` (one ``[b, n_l]`` array per weight layer, added to its
        pre-activation ``h^l``) exist for differentiating with respect to the
        pre-activations: :func:`ntkdepth.empirical.mlp_ntk` uses them.
        """
        f, inputs = self.forward(x, perturbations)
        return f, inputs[-1]

    def forward(self, x: jax.Array, perturbations: Sequence[jax.Array] | None = None):
        """``(f(x), [x, a^1(x), ..., a^{L-1}(x)])``: the output and what each weight layer reads."""
        phi = as_activation(self.activation)
        h = self.first_layer(x)
        if perturbations is not None:
            h = h + perturbations[0]
        inputs = [x]
        for l, layer in enumerate(self.layers[1:], start=1):
            a = phi(h)
            inputs.append(a)
            h = layer(a, self.precision)
            if perturbations is not None:
                h = h + perturbations[l]
        return h, inputs
