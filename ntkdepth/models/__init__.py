"""Finite networks (Flax NNX) whose infinite-width limits are the kernels of :mod:`ntkdepth.kernels`.

:class:`NetworkSpec` describes a network once (depth, scales, parameterization,
activation, residual branch scale) and gives its Flax model at a width (:class:`MLP`,
:class:`ResidualMLP`), its analytic kernels and its neural-tangents layers.
"""

from ntkdepth.models.mlp import ACTIVATIONS, MLP, PARAMETERIZATION_NAMES, PARAMETERIZATIONS
from ntkdepth.models.functional import FunctionalModel, functional
from ntkdepth.models.residual import ResidualMLP
from ntkdepth.models.spec import NetworkSpec

__all__ = ["ACTIVATIONS", "MLP", "PARAMETERIZATIONS", "PARAMETERIZATION_NAMES", "FunctionalModel", "NetworkSpec",
           "ResidualMLP", "functional"]
