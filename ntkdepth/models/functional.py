"""A Flax NNX model as a pure function of its parameters, for ``jax.jit``, ``jax.grad`` and optax.

Training loops and kernel computations work on the parameter pytree; the
model's structure (layer sizes, multipliers, parameterization) travels in the
static ``graphdef``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
from flax import nnx

__all__ = ["FunctionalModel", "functional"]


class FunctionalModel(NamedTuple):
    """``apply(params, x) -> (f, features)`` with ``params`` the model's state."""

    graphdef: Any
    params: Any

    def apply(self, params, x, perturbations=None):
        return nnx.merge(self.graphdef, params)(x, perturbations)

    def output(self, params, x) -> jax.Array:
        """``f(x)`` alone: the function whose Jacobian is the empirical NTK's."""
        return self.apply(params, x)[0]

    def model(self, params=None) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params if params is None else params)


def functional(model: nnx.Module) -> FunctionalModel:
    """Splits ``model`` into its static structure and its parameters."""
    graphdef, params = nnx.split(model)
    return FunctionalModel(graphdef, params)
