"""The Gaussian expectations of ``phi'`` that the drift's recursion needs, in closed form, and the
activations that have them (derivation and formulas: docs/drift.md#activations).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels.activations import ABRelu, Activation, Erf, Identity, Sin
from ntkdepth.kernels.activations import activation as as_activation

__all__ = ["DRIFT_ACTIVATIONS", "DriftExpectations", "drift_activation", "drift_expectations", "is_relu",
           "supports_drift"]

#: The activation names whose drift has a closed form (docs/drift.md#activations).
DRIFT_ACTIVATIONS = ("relu", "leaky_relu", "abrelu", "abs", "identity", "erf", "sin", "cos")


def is_relu(act: Activation) -> bool:
    """Whether ``act`` is ReLU itself (``abrelu(a=0, b=1)``), whose drift keeps its own code path."""
    return isinstance(act, ABRelu) and (act.a, act.b) == (0.0, 1.0)


def supports_drift(spec: Any) -> bool:
    """Whether the drift prediction covers the activation ``spec`` (a name of
    :data:`ntkdepth.kernels.ACTIVATION_NAMES`, an :class:`~ntkdepth.kernels.Activation` or a function)."""
    try:
        act = as_activation(spec)
    except ValueError:
        return False
    return isinstance(act, (ABRelu, Identity, Erf, Sin))


def drift_activation(spec: Any, purpose: str = "the drift prediction") -> Activation:
    """The :class:`~ntkdepth.kernels.Activation` of ``spec`` where the drift covers it.

    Raises:
      ValueError: naming the covered activations and the step of the derivation the activation
        fails (``purpose`` names the caller).
    """
    act = as_activation(spec)
    if supports_drift(act):
        return act
    if act.passes_gradient:
        reason = (f"the recursion for D^m needs E[phi'(h(x))^2 phi'(h(x_j)) phi'(h(x_j'))] in closed form at "
                  f"every triple of inputs and every layer, and {act.label} has none")
    else:
        reason = (f"{act.label}'s derivative is 0 almost everywhere, so its layers pass no gradient and a unit "
                  "moves only by crossing the jump, which the derivation's first-order step does not describe")
    raise ValueError(f"{purpose} covers the activations {', '.join(DRIFT_ACTIVATIONS)}; not {act.label}: {reason} "
                     "(docs/drift.md#activations)")


def _namespace(*arrays):
    """``jax.numpy`` where any argument is a JAX array (or a tracer), else NumPy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _clip(xp, r):
    return xp.clip(r, -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DriftExpectations:
    """``E[phi'(u)^2]``, ``E[phi'(u) phi'(v)]`` and ``E[phi'(u)^2 phi'(v) phi'(w)]`` for centred
    Gaussians, from variances ``q`` and correlations ``r`` of any broadcasting shapes.

    Built by :func:`drift_expectations`; hashable (a static argument of jitted code). Works on
    NumPy arrays (float64) and on JAX arrays alike. The correlations are taken as given (the
    kernel engine's, exactly 1 for an input with itself): ReLU's family needs their arcsines,
    which lose half the digits of a correlation recomputed as ``c / sqrt(q1 q2)`` next to 1.
    """

    activation: Activation

    def __post_init__(self):
        drift_activation(self.activation)

    def square(self, q: ArrayLike) -> ArrayLike:
        """``E[phi'(u)^2]`` for ``u ~ N(0, q)``."""
        xp = _namespace(q)
        return self.pair(q, q, xp.ones_like(q))

    def pair(self, q1: ArrayLike, q2: ArrayLike, r: ArrayLike) -> ArrayLike:
        """``E[phi'(u) phi'(v)]`` for ``(u, v)`` with variances ``q1, q2`` and correlation ``r``."""
        act, xp = self.activation, _namespace(q1, q2, r)
        r = _clip(xp, r)
        if isinstance(act, Erf):
            t = 2.0 * act.b**2
            # E[exp(-b^2 (u^2 + v^2))] = det(I + 2 b^2 Sigma)^(-1/2), the determinant as a sum of
            # nonnegative terms.
            det = 1.0 + t * (q1 + q2) + t * t * q1 * q2 * (1.0 - r) * (1.0 + r)
            return (2.0 * act.a * act.b) ** 2 / math.pi / xp.sqrt(det)
        if isinstance(act, Sin):
            c = r * xp.sqrt(q1 * q2)
            return _cosine_product(xp, act, [(q1, c), (c, q2)], 2)
        a, b = _slopes(act)
        d = b - a
        return a * a + a * d + d * d * _orthant2(xp, r)

    def triple(self, q0: ArrayLike, q1: ArrayLike, q2: ArrayLike, r01: ArrayLike, r02: ArrayLike,
               r12: ArrayLike) -> ArrayLike:
        """``E[phi'(u0)^2 phi'(u1) phi'(u2)]`` for ``(u0, u1, u2)`` with variances ``q0, q1, q2`` and
        correlations ``r01, r02, r12`` (``u0`` may coincide with ``u1`` or ``u2``, and ``u1`` with ``u2``)."""
        act, xp = self.activation, _namespace(q0, q1, q2, r01, r02, r12)
        r01, r02, r12 = _clip(xp, r01), _clip(xp, r02), _clip(xp, r12)
        if isinstance(act, Erf):
            # E[exp(-z^T M z)] = det(I + 2 Sigma M)^(-1/2), M = b^2 diag(2, 1, 1); with
            # S = 2 M^(1/2) Sigma M^(1/2), det(I + S) = 1 + tr S + (principal 2x2 minors) + det S, each
            # term nonnegative.
            t = 2.0 * act.b**2
            s0, s1, s2 = 2.0 * t * q0, t * q1, t * q2
            m01, m02, m12 = ((1.0 - r) * (1.0 + r) for r in (r01, r02, r12))
            corr_det = xp.maximum(m01 * m02 - (r12 - r01 * r02) ** 2, 0.0)
            det = 1.0 + s0 + s1 + s2 + s0 * s1 * m01 + s0 * s2 * m02 + s1 * s2 * m12 + s0 * s1 * s2 * corr_det
            return (2.0 * act.a * act.b) ** 4 / math.pi**2 / xp.sqrt(det)
        if isinstance(act, Sin):
            c01, c02, c12 = r01 * xp.sqrt(q0 * q1), r02 * xp.sqrt(q0 * q2), r12 * xp.sqrt(q1 * q2)
            # The covariances of the four factors cos(b u0 + c)^2 cos(b u1 + c) cos(b u2 + c).
            cov = [(q0, q0, c01, c02), (q0, q0, c01, c02), (c01, c01, q1, c12), (c02, c02, c12, q2)]
            return _cosine_product(xp, act, cov, 4)
        a, b = _slopes(act)
        # phi'(u)^2 = a^2 + (b^2 - a^2) H(u) and phi'(v) = a + (b - a) H(v), H the step: the product is
        # a sum of orthant probabilities of one, two and three of the variables.
        sq, lin, d = a * a, b * b - a * a, b - a
        p01, p02, p12 = (_orthant2(xp, r) for r in (r01, r02, r12))
        p012 = 0.125 + (xp.arcsin(r01) + xp.arcsin(r02) + xp.arcsin(r12)) / (4.0 * math.pi)
        return (sq * a * a + sq * a * d + sq * d * d * p12 + 0.5 * lin * a * a
                + lin * a * d * (p01 + p02) + lin * d * d * p012)


def _slopes(act) -> tuple[float, float]:
    """``(a, b)`` with ``phi'(x) = a`` for ``x < 0`` and ``b`` for ``x > 0``."""
    return (1.0, 1.0) if isinstance(act, Identity) else (float(act.a), float(act.b))


def _orthant2(xp, r):
    """``P(u > 0, v > 0)`` for a centred pair of correlation ``r``."""
    return 0.25 + xp.arcsin(r) / (2.0 * math.pi)


def _cosine_product(xp, act: Sin, cov, n: int):
    """``E[prod_i phi'(z_i)]`` for ``phi'(z) = a b cos(b z + c)`` and ``n`` Gaussian factors with
    covariances ``cov[i][j]``: ``prod_i cos(t_i) = 2^-n sum_e cos(sum_i e_i t_i)`` over signs
    ``e``, and ``E[cos(k.z + p)] = cos(p) exp(-k^T Sigma k / 2)``."""
    total = 0.0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        if signs[0] < 0:  # e and -e give the same term
            continue
        quad = sum(signs[i] * signs[j] * cov[i][j] for i in range(n) for j in range(n))
        total = total + 2.0 * math.cos(act.c * sum(signs)) * xp.exp(-0.5 * act.b**2 * quad)
    return (act.a * act.b) ** n / 2.0**n * total


def drift_expectations(spec: Any, purpose: str = "the drift prediction") -> DriftExpectations:
    """The :class:`DriftExpectations` of the activation ``spec``; ``ValueError`` (from
    :func:`drift_activation`) where the drift does not cover it."""
    return DriftExpectations(drift_activation(spec, purpose))
