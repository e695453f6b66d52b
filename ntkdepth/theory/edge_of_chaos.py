"""Ordered and chaotic phases of deep networks, the edge of chaos, and where depth takes the NTK.

Mean-field theory of signal propagation (Poole et al. 2016, Schoenholz et al. 2017) for any
activation of :mod:`ntkdepth.kernels.activations`, vectorized over settings, in float64
(docs/activations.md#the-edge-of-chaos).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.activations import activation as as_activation
from ntkdepth.kernels.gaussian import hermite_table

__all__ = [
    "MeanField",
    "correlation_map",
    "edge_of_chaos",
    "mean_field",
    "ntk_depth_limit",
    "variance_fixed_point",
]

_BISECTIONS = 80


class MeanField(NamedTuple):
    """The mean-field quantities of a network, each shaped like the broadcast ``(W_std, b_std)``.

    Attributes:
      q_star: the variance fixed point ``q* = W^2 m(q*) + b^2`` (``inf`` where the variance grows
        without bound, 0 where it dies out).
      c_star: the stable fixed point of the correlation map in ``[0, 1]``.
      chi_1: ``W^2 E[phi'(sqrt(q*) z)^2]``, the slope of the correlation map at ``c = 1``: below 1
        the ordered phase, above 1 the chaotic one, 1 the edge of chaos.
      chi_c: the slope of the correlation map at ``c*``.
      xi_c: ``-1 / log chi_c``, the depth over which correlations approach ``c*``.
      xi_grad: ``1 / |log chi_1|``, the depth over which gradients vanish (``chi_1 < 1``) or
        explode (``chi_1 > 1``).
      phase: ``"ordered"``, ``"chaotic"``, ``"edge"``, or ``"unbounded"`` where the variance grows
        without bound and the activation acts as its large-scale limit
        (:attr:`~ntkdepth.kernels.Activation.asymptote`, e.g. ReLU for GELU) (NumPy string array).
    """

    q_star: np.ndarray
    c_star: np.ndarray
    chi_1: np.ndarray
    chi_c: np.ndarray
    xi_c: np.ndarray
    xi_grad: np.ndarray
    phase: np.ndarray


def _plan(act: Activation, q_max: float):
    """The Hermite plan for variances up to ``q_max`` (rounded up to a power of two, cached)."""
    if act.closed_form:
        return None
    return _cached_plan(act, 2.0 ** math.ceil(math.log2(max(min(q_max, 1e3), 1e-6))))


@functools.lru_cache(maxsize=64)
def _cached_plan(act, q_max):
    return act.plan(np.array([q_max]), np.float64)


_MOMENT_NODES = 1024


def _moments(act, q, plan=None):
    """``(m(q), md(q))`` elementwise (float64): closed forms, or one Gauss-Hermite sum each."""
    if act.closed_form:
        r = act.rows(jnp.log(jnp.maximum(q, 1e-300)), None)
        return jnp.exp(r["lm"]), jnp.exp(r["lmd"])
    z, sqrt_w, _ = hermite_table(_MOMENT_NODES, 0)
    w = jnp.asarray(sqrt_w * sqrt_w)
    x = jnp.sqrt(q)[..., None] * jnp.asarray(z)
    f, d = act(x), act.derivative(x)
    return jnp.sum(w * f * f, -1), jnp.sum(w * d * d, -1)


def _correlations(act, q, c, plan):
    r = act.rows(jnp.log(jnp.maximum(q, 1e-300)), plan)
    return act.correlations(r, r, c)


def variance_fixed_point(activation, W_std, b_std, *, q_max: float = 1e6) -> np.ndarray:
    """``q*`` solving ``q = W^2 m(q) + b^2`` (broadcast over ``W_std``, ``b_std``).

    Found by bisection on ``[b^2, q_max]``; ``inf`` where ``W^2 m(q) + b^2 > q`` up to ``q_max`` (the
    variance grows without bound), 0 without bias where ``W^2 m(q) < q`` for every ``q > 0``.
    """
    act = as_activation(activation)
    W, b = np.broadcast_arrays(np.asarray(W_std, np.float64), np.asarray(b_std, np.float64))
    with jax.enable_x64(True):
        return np.asarray(_variance_bisection(act, jnp.asarray(W * W), jnp.asarray(b * b), float(q_max)))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _variance_bisection(act, w2, b2, q_max):
    def excess(q):  # W^2 m(q) + b^2 - q
        return w2 * _moments(act, q)[0] + b2 - q

    lo = jnp.maximum(b2, 1e-12)
    hi = jnp.full_like(lo, q_max)
    grows = excess(hi) > 0
    dies = (b2 == 0) & (excess(jnp.full_like(lo, 1e-12)) < 0)

    def step(_, bounds):  # bisection in log q
        llo, lhi = bounds
        mid = 0.5 * (llo + lhi)
        up = excess(jnp.exp(mid)) > 0
        return jnp.where(up, mid, llo), jnp.where(up, lhi, mid)

    llo, lhi = jax.lax.fori_loop(0, _BISECTIONS, step, (jnp.log(lo), jnp.log(hi)))
    q = jnp.exp(0.5 * (llo + lhi))
    return jnp.where(grows, jnp.inf, jnp.where(dies, 0.0, q))


def correlation_map(activation, W_std, b_std, c, *, q=None) -> np.ndarray:
    """``c -> (W^2 E[phi(u) phi(v)] + b^2) / q`` at the variance ``q`` (default ``q*``), ``corr(u, v) = c``."""
    act = as_activation(activation)
    q = variance_fixed_point(act, W_std, b_std) if q is None else np.asarray(q, np.float64)
    W, b, c, q = np.broadcast_arrays(np.asarray(W_std, np.float64), np.asarray(b_std, np.float64),
                                     np.asarray(c, np.float64), q)
    with jax.enable_x64(True):
        plan = _plan(act, float(np.max(q[np.isfinite(q)], initial=1.0)))
        m, _ = _moments(act, jnp.asarray(q))
        kappa, _ = _correlations(act, jnp.asarray(q), jnp.asarray(c), plan)
        return np.asarray((W * W * m * kappa + b * b) / q)


def mean_field(activation, W_std, b_std) -> MeanField:
    """:class:`MeanField` of the network (``W_std``, ``b_std`` broadcast; float64).

    A positively homogeneous activation of degree 1 without bias has no variance fixed point, but
    its correlations do not depend on ``W_std``: it is reported at its edge, ``chi_1 = 1``, which
    is where the normalized kernels of every ``W_std`` lie (docs/activations.md#the-edge-of-chaos).
    """
    act = as_activation(activation)
    W, b = np.broadcast_arrays(np.asarray(W_std, np.float64), np.asarray(b_std, np.float64))
    q = variance_fixed_point(act, W, b)
    homogeneous_edge = (act.degree == 1) & ((b == 0) | ~np.isfinite(q))
    unbounded = ~np.isfinite(q) & ~homogeneous_edge
    with jax.enable_x64(True):
        finite = np.isfinite(q) & (q > 0)
        qq = jnp.asarray(np.where(finite, q, 1.0))
        plan = _plan(act, float(np.max(qq)))
        _, md = _moments(act, qq)
        w2 = jnp.asarray(W * W)
        chi1 = np.asarray(w2 * md)
        if act.degree == 1:
            chi1 = np.where(homogeneous_edge, 1.0, chi1)
        # c*: 1 where chi_1 <= 1, else the root of F(c) - c in [0, 1) (F(0) >= 0 = F(1) - 1).

        root = np.asarray(_correlation_bisection(act, plan, qq, w2, jnp.asarray(b * b)))
        chaotic = (chi1 > 1.0 + 1e-12) & finite & ~homogeneous_edge
        c_star = np.where(chaotic, root, 1.0)
        _, delta = _correlations(act, qq, jnp.asarray(c_star), plan)
        chi_c = np.where(chaotic, np.asarray(w2 * md * delta), chi1)
    with np.errstate(divide="ignore"):
        xi_c = np.where(np.abs(chi_c - 1.0) > 1e-12, -1.0 / np.log(np.minimum(chi_c, 1.0 - 1e-300)), np.inf)
        xi_c = np.where(chi_c < 1.0, xi_c, np.inf)
        xi_grad = np.where(np.abs(chi1 - 1.0) > 1e-12, 1.0 / np.abs(np.log(chi1)), np.inf)
    edge = np.abs(chi1 - 1.0) <= 1e-9
    phase = np.where(edge, "edge", np.where(chi1 < 1.0, "ordered", "chaotic"))
    if unbounded.any():
        # The variance grows without bound: the activation acts as its large-scale limit.
        limit = act.asymptote
        chi_inf = W * W * (limit._moments()[1] if limit is not None else np.nan)
        chi1 = np.where(unbounded, chi_inf, chi1)
        chi_c = np.where(unbounded, np.nan, chi_c)
        c_star = np.where(unbounded, 1.0 if limit is not None else np.nan, c_star)
        xi_c = np.where(unbounded, np.inf, xi_c)
        xi_grad = np.where(unbounded, 1.0 / np.abs(np.log(chi1)), xi_grad)
        phase = np.where(unbounded, "unbounded", phase)
    return MeanField(q, c_star, chi1, np.asarray(chi_c), xi_c, xi_grad, phase)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _correlation_bisection(act, plan, q, w2, b2):
    """The root of ``F(c) - c`` in ``[0, 1)`` (``F(0) >= 0`` and ``F(c) < c`` just below 1 when chaotic)."""
    m, _ = _moments(act, q)

    def step(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        kappa, _ = _correlations(act, q, mid, plan)
        above = (w2 * m * kappa + b2) / q > mid
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, step, (jnp.zeros_like(q), jnp.full_like(q, 1.0 - 1e-15)))
    return 0.5 * (lo + hi)


def edge_of_chaos(activation, b_std, *, W_max: float = 20.0) -> np.ndarray:
    """``W_std`` on the edge of chaos (``chi_1 = 1``) for each ``b_std`` (NaN where there is none below ``W_max``)."""
    act = as_activation(activation)
    b = np.asarray(b_std, np.float64)
    lo, hi = np.full(b.shape, 1e-3), np.full(b.shape, float(W_max))
    none = _chi_1(act, hi, b) < 1.0
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        ordered = _chi_1(act, mid, b) < 1.0
        lo, hi = np.where(ordered, mid, lo), np.where(ordered, hi, mid)
    return np.where(none, np.nan, np.sqrt(lo * hi))


def _chi_1(act, W, b) -> np.ndarray:
    """``chi_1 = W^2 md(q*)`` alone (no correlation fixed point), for the edge's bisection."""
    q = variance_fixed_point(act, W, b)
    finite = np.isfinite(q)
    with jax.enable_x64(True):
        _, md = _moments(act, jnp.asarray(np.where(finite, q, 1.0)))
    chi = np.asarray(W, np.float64) ** 2 * np.asarray(md)
    return np.where(finite, chi, np.inf)


class DepthLimit(NamedTuple):
    """Where the normalized NTK of two distinct inputs goes as the depth grows (docs/activations.md#the-depth-limit).

    ``value``: the limit (NaN where it depends on the inputs); ``rate``: how it is approached, in words;
    ``ratio``: the factor per layer of a geometric approach (NaN otherwise).
    """

    phase: str
    value: float
    rate: str
    ratio: float


def ntk_depth_limit(activation, W_std: float, b_std: float) -> DepthLimit:
    """The depth limit of ``Thetabar^L(x, x')`` for ``x != x'`` and how it is approached.

    Ordered phase: 1 (every input looks alike), geometrically with ratio ``chi_1`` (``sqrt(chi_1)``
    for the kinked homogeneous activations, whose ``1 - delta`` is ``O(sqrt(1 - rho))``). Chaotic phase:
    0 (the NTK becomes diagonal), geometrically with ratio ``max(chi_c, 1) / chi_1``. Edge of chaos
    with ``c* = 1``: ``1 / (1 + gamma)``, ``gamma = lim l (1 - delta(rho_l))``: 1/3 when the
    correlation map is twice differentiable at 1 (smooth activations), 1/4 for the kinked
    homogeneous ones (ReLU, leaky ReLU, |x|; the paper's Theorem 2), approached like ``log L / L``.
    An activation whose derivative vanishes almost everywhere (step, sign) passes no NTK on, and
    ``Thetabar = rho``, which tends to ``c*``.
    """
    act = as_activation(activation)
    mf = mean_field(act, W_std, b_std)
    phase, chi1, chic, c_star = str(mf.phase), float(mf.chi_1), float(mf.chi_c), float(mf.c_star)
    linear = act.degree == 1 and getattr(act, "a", 1.0) == getattr(act, "b", 1.0)
    if linear:
        return DepthLimit("edge", math.nan, "a linear network keeps Thetabar = rho_1 at every depth", math.nan)
    if not act.passes_gradient:
        return DepthLimit(phase, c_star, "as rho_l tends to c*", chic if phase != "edge" else math.nan)
    if phase == "unbounded":
        limit = act.asymptote
        if limit is None:
            return DepthLimit(phase, math.nan, "the variance grows without bound; no large-scale limit is known "
                              "for this activation", math.nan)
        inner = ntk_depth_limit(limit, 1.0 / math.sqrt(limit._moments()[1]), 0.0)
        return DepthLimit(phase, inner.value, f"as {limit.label}: {inner.rate}", inner.ratio)
    if float(mf.q_star) == 0.0:
        return DepthLimit(phase, math.nan, "the variance dies out and the network becomes linear: the "
                          "limit depends on the inputs", math.nan)
    if phase == "ordered":
        # 1 - Thetabar follows 1 - delta(rho_l): ~ (1 - rho_l) ~ chi_1^l for a smooth map, but
        # ~ sqrt(1 - rho_l) ~ chi_1^(l/2) where the derivative has a kink (ReLU-like).
        kinked = act.degree == 1
        return DepthLimit(phase, 1.0, "geometric", math.sqrt(chi1) if kinked else chi1)
    if phase == "chaotic":
        return DepthLimit(phase, 0.0, "geometric", max(chic, 1.0) / chi1)
    return DepthLimit(phase, 0.25 if act.degree == 1 else 1.0 / 3.0, "log L / L", math.nan)
