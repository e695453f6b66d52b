"""Gaussian expectations of activations without a closed form, by their Hermite expansion.

For ``u = sqrt(q1) z1`` and ``v = sqrt(q2) (rho z1 + sqrt(1 - rho^2) z2)`` (Mehler's formula)

    E[phi(u) phi(v)]   = sum_k a_k(q1) a_k(q2) rho^k,
    E[phi'(u) phi'(v)] = sum_k k a_k(q1) a_k(q2) rho^(k-1) / sqrt(q1 q2)     (Price's theorem),

with ``a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)``. The coefficients come from Gauss-Hermite
quadrature and the number of terms from their computed tail (docs/activations.md#hermite-expansion).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "MAX_TERMS",
    "MehlerPlan",
    "hermite_coefficients",
    "hermite_table",
    "mehler_correlations",
    "nodes_for",
    "plan_terms",
    "row_expansion",
]

#: The most Hermite terms a kernel call uses (beyond, the expansion's tail is reported, not met).
MAX_TERMS = 2048
_TERM_STEP = 32  # term counts are rounded up to a multiple of this (fewer compilations)


class MehlerPlan(NamedTuple):
    """How many Hermite terms (``terms``, the degree ``K``) and quadrature nodes (``nodes``) a call uses,
    and the relative tail of the expansion they leave (``tail``, the error bound per evaluation)."""

    terms: int
    nodes: int
    tail: float


def nodes_for(terms: int) -> int:
    """The Gauss-Hermite nodes that resolve an expansion of ``terms`` terms."""
    # Gauss-Hermite with N nodes integrates polynomials of degree 2N - 1 exactly; phi(sqrt(q) z) He_K(z)
    # needs the degree K of He_K plus what resolves phi itself.
    return 2 * terms + 64


@functools.lru_cache(maxsize=16)
def gauss_hermite(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(z [N], w [N])``: the Gauss-Hermite rule for ``E[f(z)]``, ``z ~ N(0, 1)``, to rounding.

    SciPy's nodes (``roots_hermitenorm``) are refined by Newton's method on ``p_N``, the orthonormal
    polynomials ``p_k = He_k / sqrt(k!)`` run by their three-term recurrence (rescaled by powers of
    two where they grow, so that no node overflows), and the weights are the Christoffel numbers
    ``1 / (N p_{N-1}(z)^2)``. SciPy's own rule integrates ``z^2`` to 6e-15 (192 nodes) and 4.5e-14
    (3,776 nodes) relative; this one to about 1e-15, which every second moment of a Hermite expansion
    inherits.
    """
    from scipy.special import roots_hermitenorm

    z, _ = roots_hermitenorm(nodes)
    big = 2.0**300
    for _ in range(3):
        p_prev, p = np.zeros_like(z), np.ones_like(z)  # p_{k-1}, p_k from k = 0
        log_scale = np.zeros_like(z)
        for k in range(nodes):
            p_prev, p = p, (z * p - math.sqrt(k) * p_prev) / math.sqrt(k + 1)
            over = np.abs(p) > big
            if over.any():
                p, p_prev = np.where(over, p / big, p), np.where(over, p_prev / big, p_prev)
                log_scale = log_scale + np.where(over, math.log(big), 0.0)
        z = z - p / (math.sqrt(nodes) * p_prev)  # p_N' = sqrt(N) p_{N-1}
    w = np.exp(-math.log(nodes) - 2.0 * (np.log(np.abs(p_prev)) + log_scale))
    z, w = 0.5 * (z - z[::-1]), 0.5 * (w + w[::-1])  # exactly symmetric
    return z, w / math.fsum(w)


@functools.lru_cache(maxsize=16)
def hermite_table(nodes: int, terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z [N], sqrt_w [N], H [N, K + 1])``: Gauss-Hermite nodes for ``E[f(z)]``, ``z ~ N(0, 1)``
    (:func:`gauss_hermite`), the square roots of their weights, and
    ``H[a, k] = sqrt(w_a) He_k(z_a) / sqrt(k!)`` (float64).

    The normalized Hermite functions are built by their three-term recurrence from ``sqrt(w_a)``,
    so that no value overflows at the outer nodes.
    """
    z, w = gauss_hermite(nodes)
    sqrt_w = np.sqrt(w)
    H = np.empty((nodes, terms + 1))
    H[:, 0] = sqrt_w
    if terms >= 1:
        H[:, 1] = z * sqrt_w
    for k in range(1, terms):
        H[:, k + 1] = (z * H[:, k] - math.sqrt(k) * H[:, k - 1]) / math.sqrt(k + 1)
    return z, sqrt_w, H


def hermite_coefficients(fn: Callable, q, terms: int, nodes: int | None = None) -> np.ndarray:
    """``[..., K + 1]``: ``a_k(q) = E[fn(sqrt(q) z) He_k(z)] / sqrt(k!)`` for each ``q`` (NumPy float64)."""
    nodes = nodes_for(terms) if nodes is None else nodes
    z, sqrt_w, H = hermite_table(nodes, terms)
    q = np.asarray(q, np.float64)
    values = np.asarray(fn(np.sqrt(q)[..., None] * z), np.float64) * sqrt_w
    return values @ H


def _tails(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative tails ``sum_{j > k} a_j^2 / sum_j a_j^2`` and the same with weights ``j``, for every ``k``."""
    k = np.arange(a.shape[-1])
    sq = a * a
    total, dtotal = sq.sum(-1, keepdims=True), (k * sq).sum(-1, keepdims=True)
    after = np.cumsum(sq[..., ::-1], -1)[..., ::-1]
    dafter = np.cumsum((k * sq)[..., ::-1], -1)[..., ::-1]
    pad = np.zeros(a.shape[:-1] + (1,))
    tail = np.concatenate([after[..., 1:], pad], -1) / np.where(total > 0, total, 1.0)
    dtail = np.concatenate([dafter[..., 1:], pad], -1) / np.where(dtotal > 0, dtotal, 1.0)
    return tail, dtail


def plan_terms(fn: Callable, q_values, tol: float, max_terms: int = MAX_TERMS) -> MehlerPlan:
    """The fewest terms (a multiple of 32) whose relative tails stay below ``tol`` for every ``q``.

    The tails of both series (``E[phi phi]`` and, through Price's theorem, ``E[phi' phi']``) are
    read off the coefficients computed to ``max_terms``; at most ``max_terms`` are used, and the
    plan's ``tail`` is what they leave.
    """
    q = np.unique(np.asarray(q_values, np.float64).ravel())
    q = q[np.isfinite(q) & (q > 0)]
    if q.size == 0:
        return MehlerPlan(_TERM_STEP, nodes_for(_TERM_STEP), 0.0)
    a = hermite_coefficients(fn, q, max_terms)
    tail, dtail = _tails(a)
    # The tail past the last coefficient computed (not in the sums to max_terms): extrapolated.
    beyond = max(_extrapolated_tail(tail, max_terms), _extrapolated_tail(dtail, max_terms))
    worst = np.maximum(tail, dtail).max(0) + beyond  # [K_max + 1]
    ok = np.flatnonzero(worst <= tol)
    terms = int(ok[0]) if ok.size else max_terms
    terms = min(max_terms, max(_TERM_STEP, -(-terms // _TERM_STEP) * _TERM_STEP))
    return MehlerPlan(terms, nodes_for(terms), float(worst[terms]))


def _extrapolated_tail(tail: np.ndarray, K: int) -> float:
    """The relative tail past term ``K`` of the series whose tails to ``K`` are ``tail [q, K + 1]``.

    Smooth activations' coefficients decay like ``exp(-c sqrt(k))`` (tanh's poles off the real axis;
    docs/activations.md#hermite-expansion): ``c`` comes from the weights of two blocks of terms, at
    ``K / 2`` and just below ``K``, and the tail past ``K`` is that of the geometric series they imply
    in ``sqrt(k)``, doubled (against tanh and SiLU to 8,192 terms it is within 10% below the truth).
    """
    k1, k2 = K // 2, K - _TERM_STEP
    b1, b2 = tail[:, k1] - tail[:, k1 + _TERM_STEP], tail[:, k2] - tail[:, K]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.log(b1 / b2) / (math.sqrt(k2) - math.sqrt(k1))
        d = c * (math.sqrt(K) - math.sqrt(k2))
        beyond = np.where((b2 > 0) & (c > 0), 2.0 * b2 * np.exp(-d) / -np.expm1(-d), b2)
    beyond = beyond[np.isfinite(beyond)]
    return float(max(beyond.max(), 0.0)) if beyond.size else 0.0


def row_expansion(fn: Callable, dfn: Callable, lq: jax.Array, plan: MehlerPlan) -> dict:
    """Per input: the normalized coefficients and second moments at ``q = exp(lq)`` (``[n]``).

    Returns ``alpha [n, K + 1]`` (``a_k / sqrt(sum_k a_k^2)``), ``dnorm [n]``
    (``sqrt(sum_k k alpha_k^2)``), ``lm [n] = log E[phi(sqrt(q) z)^2]`` and
    ``lmd [n] = log E[phi'(sqrt(q) z)^2]`` (the last two by the quadrature itself).
    """
    z, sqrt_w, H = hermite_table(plan.nodes, plan.terms)
    dtype = lq.dtype
    K = plan.terms
    # The nodes come in pairs +-z (:func:`gauss_hermite`: an even number of them, exactly symmetric)
    # and He_k(-z) = (-1)^k He_k(z): the even coefficients are those of phi's even part at the
    # positive nodes, the odd ones of its odd part, two products of a quarter of the one over every
    # node (ascending nodes: the positive half last).
    if plan.nodes % 2:
        raise ValueError(f"a Hermite plan's nodes come in +-z pairs (nodes_for); got {plan.nodes} nodes")
    half = plan.nodes // 2
    z, sqrt_w, H = z[half:], sqrt_w[half:], H[half:]
    z, sqrt_w, h_even, h_odd = (jnp.asarray(v, dtype) for v in (z, sqrt_w, H[:, 0::2], H[:, 1::2]))
    x = jnp.exp(0.5 * lq)[..., None] * z
    f_pos, f_neg = fn(x) * sqrt_w, fn(-x) * sqrt_w
    d_pos, d_neg = dfn(x) * sqrt_w, dfn(-x) * sqrt_w
    a_even = jnp.matmul(f_pos + f_neg, h_even, precision=jax.lax.Precision.HIGHEST)
    a_odd = jnp.matmul(f_pos - f_neg, h_odd, precision=jax.lax.Precision.HIGHEST)
    if a_odd.shape[-1] < a_even.shape[-1]:  # K even: one more even coefficient
        a_odd = jnp.concatenate([a_odd, jnp.zeros_like(a_odd[..., :1])], -1)
    a = jnp.stack([a_even, a_odd], -1).reshape(a_even.shape[:-1] + (-1,))[..., : K + 1]
    f = jnp.concatenate([f_pos, f_neg], -1)
    d = jnp.concatenate([d_pos, d_neg], -1)
    norm2 = jnp.sum(a * a, -1)
    alpha = a / jnp.sqrt(jnp.where(norm2 > 0, norm2, 1.0))[..., None]
    k = jnp.arange(K + 1, dtype=dtype)
    dnorm = jnp.sqrt(jnp.sum(k * alpha * alpha, -1))
    return dict(alpha=alpha, dnorm=dnorm, lm=jnp.log(jnp.sum(f * f, -1)), lmd=jnp.log(jnp.sum(d * d, -1)))


#: Terms per block of the correlations' Horner pass.
_BLOCK = 32


def mehler_correlations(r1: dict, r2: dict | None, rho: jax.Array,
                        reach: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(kappa, delta)``, shaped like ``rho``: the correlations of ``phi(u), phi(v)`` and of ``phi'(u), phi'(v)``.

    ``kappa = sum_k alpha_k beta_k rho^k`` and ``delta = sum_k k alpha_k beta_k rho^(k-1) / (|alpha|_d |beta|_d)``,
    both by one Horner pass over the terms (``r1``, ``r2`` from :func:`row_expansion`, broadcasting
    against ``rho``; ``r2 = None``: the inputs of ``r1`` against themselves, ``rho [n, n]`` with
    ``r1`` given as ``[n, 1, ...]``).

    ``reach``: a bound on ``|rho|`` over the entries whose values are used (``None``: 1). Since
    ``sum_k |alpha_k beta_k| <= 1``, the terms from ``k`` on change ``kappa`` by at most
    ``|rho| reach^(k-1)`` and ``delta`` by at most ``reach^(k-1)`` (relative to their first term):
    the pass starts, in whole blocks of terms, where that is below a sixteenth of the rounding unit,
    and takes every term of the plan where ``reach`` is 1.
    """
    a = r1["alpha"]  # [..., K + 1], broadcasting against rho
    if r2 is None:
        b, dn2 = jnp.swapaxes(a, 0, 1), jnp.swapaxes(r1["dnorm"], 0, 1)
    else:
        b, dn2 = r2["alpha"], r2["dnorm"]
    dtype = rho.dtype
    K = a.shape[-1] - 1
    n_blocks = -(-(K + 1) // _BLOCK)
    pad = n_blocks * _BLOCK - (K + 1)
    if pad:  # zero terms above K
        widths = lambda v: [(0, 0)] * (v.ndim - 1) + [(0, pad)]  # noqa: E731
        a, b = jnp.pad(a, widths(a)), jnp.pad(b, widths(b))
    if reach is None:
        used = jnp.asarray(n_blocks, jnp.int32)
    else:
        tol = float(np.finfo(dtype).eps) / 16.0
        r = jnp.clip(jnp.asarray(reach, dtype), 0.0, 1.0)
        inside = (r > 0) & (r < 1)
        # The fewest terms k with reach^(k - 1) <= tol.
        k_needed = 1.0 + jnp.ceil(math.log(tol) / jnp.log(jnp.where(inside, r, 0.5)))
        k_needed = jnp.where(r >= 1, K + 1.0, jnp.where(r > 0, k_needed, 2.0))
        used = jnp.clip(jnp.ceil(k_needed / _BLOCK), 1, n_blocks).astype(jnp.int32)

    def block(j, carry):
        # acc <- acc rho^B + P(rho), P the block's B terms; dacc, the derivative in rho, alike. P and P'
        # by their even and odd parts in y = rho^2 (four Horner chains of B / 2 terms): a single chain
        # of B dependent steps per term waits on each step. The powers of rho are computed here from
        # rho (read from memory, they would cost more than their products).
        acc, dacc = carry
        y = rho * rho
        step = y ** (_BLOCK // 2)  # rho^B
        step_d = _BLOCK * rho * y ** (_BLOCK // 2 - 1)  # its derivative
        even = odd = d_even = d_odd = None
        for t in range(_BLOCK // 2 - 1, -1, -1):
            c0, c1 = (jax.lax.dynamic_index_in_dim(a, j * _BLOCK + 2 * t + r, a.ndim - 1, keepdims=False)
                      * jax.lax.dynamic_index_in_dim(b, j * _BLOCK + 2 * t + r, b.ndim - 1, keepdims=False)
                      for r in (0, 1))
            # P = E(y) + rho O(y); P' = O'(y) + rho E'(y), with the terms (2t + 1) c_{2t+1} y^t and 2t c_{2t} y^(t-1).
            even = c0 if even is None else even * y + c0
            odd = c1 if odd is None else odd * y + c1
            d_odd = (2 * t + 1) * c1 if d_odd is None else d_odd * y + (2 * t + 1) * c1
            if t > 0:
                d_even = 2 * t * c0 if d_even is None else d_even * y + 2 * t * c0
        dacc = dacc * step + acc * step_d + (d_odd + rho * d_even)
        acc = acc * step + (even + rho * odd)
        return acc, dacc

    def body(i, carry):
        # Blocks from the top down; those at or above the first one used are skipped (a loop of
        # static length: reverse-mode differentiable).
        j = n_blocks - 1 - i
        return jax.lax.cond(j < used, block, lambda j, carry: carry, j, carry)

    zero = jnp.zeros(jnp.broadcast_shapes(a.shape[:-1], b.shape[:-1], rho.shape), dtype)
    # acc = sum_{j >= k} c_j rho^(j - k); dacc its derivative in rho.
    acc, dacc = jax.lax.fori_loop(0, n_blocks, body, (zero, zero))
    dn = r1["dnorm"] * dn2
    delta = jnp.where(dn > 0, dacc / jnp.where(dn > 0, dn, 1.0), 0.0)
    return acc, delta
