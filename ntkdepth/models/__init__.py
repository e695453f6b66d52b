"""Finite networks (Flax NNX) whose infinite-width limits are the kernels of :mod:`ntkdepth.kernels`."""

from ntkdepth.models.mlp import ACTIVATIONS, MLP, PARAMETERIZATIONS
from ntkdepth.models.functional import FunctionalModel, functional

__all__ = ["ACTIVATIONS", "MLP", "PARAMETERIZATIONS", "FunctionalModel", "functional"]
