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
    "ladder_below",
    "mehler_correlations",
    "nodes_for",
    "plan_terms",
    "row_expansion",
]

#: The most Hermite terms a kernel call uses (beyond, the expansion's tail is reported, not met).
MAX_TERMS = 2048
_TERM_STEP = 32  # term counts are rounded up to a multiple of this (fewer compilations)
#: Terms per block of the correlations' Horner pass (as many of even as of odd degree).
_BLOCK = 32


class MehlerPlan(NamedTuple):
    """How many Hermite terms (``terms``, the degree ``K``) and quadrature nodes (``nodes``) a call uses,
    and the relative tail of the expansion they leave (``tail``, the error bound per evaluation).

    ``ladder``: shorter expansions (their term counts, ascending) that a layer takes where its
    variances need fewer terms than the plan's most, and ``tol`` the relative tail each layer's choice
    meets (:func:`row_expansion`; an empty ladder: every layer takes ``terms``)."""

    terms: int
    nodes: int
    tail: float
    ladder: tuple[int, ...] = ()
    tol: float = 0.0


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
    return MehlerPlan(terms, nodes_for(terms), float(worst[terms]), ladder_below(terms), tol)


def ladder_below(terms: int) -> tuple[int, ...]:
    """The shorter expansions a plan of ``terms`` terms offers its layers: degrees 31, 63, 127, 255, ...
    up to half of it (whole blocks of 32 coefficients, doubling); none below 128 terms.

    A layer whose variances need fewer terms (a bounded activation's variances settle below the
    first layer's; SiLU's shrink) computes fewer coefficients at fewer nodes and a shorter series
    (:func:`row_expansion`). Each rung is a branch of the compiled layer: one that would save less
    than half the terms, or a plan short enough that its layer costs little, is not worth compiling.
    """
    rungs, blocks = [], 1
    while terms >= 128 and blocks * _BLOCK - 1 <= terms // 2:
        rungs.append(blocks * _BLOCK - 1)
        blocks *= 2
    return tuple(rungs)


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


def row_expansion(fn: Callable, dfn: Callable, lq: jax.Array, plan: MehlerPlan, odd_part=None) -> dict:
    """Per input: the normalized coefficients and second moments at ``q = exp(lq)`` (``[n]``).

    Returns ``even [n, *]`` and ``odd [n, *]``, the coefficients ``alpha_k = a_k / sqrt(sum_j a_j^2)`` of
    even and of odd ``k`` (``None`` where they all vanish), ``dnorm [n]`` (``sqrt(sum_k k alpha_k^2)``),
    ``lm [n] = log E[phi(sqrt(q) z)^2]`` and ``lmd [n] = log E[phi'(sqrt(q) z)^2]`` (the last two by
    the quadrature itself), and ``terms [n]``, the degree of the expansion used.

    ``odd_part``: what the activation's symmetry gives without computing: ``"all"`` for an odd ``phi``
    (its even coefficients vanish; ``phi`` is evaluated at the positive nodes alone), a number ``s``
    where ``phi(x) - phi(-x) = 2 s x`` (its odd part is linear: ``a_1 = s sqrt(q)``, no other odd
    coefficient; ``odd`` is then ``[n, 1]``), ``None`` for neither.

    With a ladder (:class:`MehlerPlan`) the call takes its shortest rung whose relative tails stay
    below ``plan.tol`` at the smallest, the middle and the largest of its variances, read off the
    full expansion's coefficients at those three (docs/activations.md#hermite-expansion).
    """
    if not plan.ladder:
        return _expansion(fn, dfn, lq, plan.terms, plan.nodes, plan.terms, odd_part)
    finite = jnp.isfinite(lq)
    lo = jnp.min(jnp.where(finite, lq, jnp.inf))
    hi = jnp.max(jnp.where(finite, lq, -jnp.inf))
    probe = jax.lax.stop_gradient(jnp.where(jnp.any(finite), jnp.stack([lo, 0.5 * (lo + hi), hi]), 0.0))
    even, odd = _coefficients(fn, probe, plan.terms, plan.nodes, odd_part)[:2]
    needed = _needed_terms(even, odd, plan.tol)
    index = sum((needed > t).astype(jnp.int32) for t in plan.ladder)  # the first rung with terms >= needed
    sizes = [(t, nodes_for(t)) for t in plan.ladder] + [(plan.terms, plan.nodes)]
    branches = [functools.partial(_expansion, fn, dfn, terms=t, nodes=nodes, pad_to=plan.terms, odd_part=odd_part)
                for t, nodes in sizes]
    return jax.lax.switch(index, branches, lq)


def _needed_terms(even: jax.Array | None, odd: jax.Array | None, tol: float) -> jax.Array:
    """The fewest terms whose relative tails (both series, as :func:`plan_terms`) stay below ``tol`` for
    every row of the coefficients (``[r, *]`` of even and of odd ``k``; the most there are where none
    does, or where a tail is not a number)."""
    parts = [v for v in (even, odd) if v is not None]
    n_even = 0 if even is None else even.shape[-1]
    n_odd = 0 if odd is None else odd.shape[-1]
    K = max(2 * n_even - 2, 2 * n_odd - 1)
    a = jnp.zeros(parts[0].shape[:-1] + (K + 1,), parts[0].dtype)
    if even is not None:
        a = a.at[..., 0::2].set(even[..., : (K + 2) // 2])
    if odd is not None:
        a = a.at[..., 1 : 2 * n_odd : 2].set(odd)
    k = jnp.arange(K + 1, dtype=a.dtype)
    sq = a * a
    worst = jnp.zeros((K + 1,), a.dtype)
    for weighted in (sq, k * sq):
        after = jnp.cumsum(weighted[..., ::-1], -1)[..., ::-1]  # sum_{j >= k}
        total = after[..., :1]
        tail = jnp.concatenate([after[..., 1:], jnp.zeros_like(total)], -1) / jnp.where(total > 0, total, 1.0)
        worst = jnp.maximum(worst, jnp.max(jnp.where(jnp.isnan(tail), jnp.inf, tail), 0))
    ok = worst <= tol
    return jnp.where(jnp.any(ok), jnp.argmax(ok), K)


def _half_rule(terms: int, nodes: int, dtype):
    """The positive half of the Gauss-Hermite rule (:func:`hermite_table`) and its normalized Hermite
    functions of even and of odd degree there."""
    # The nodes come in pairs +-z (:func:`gauss_hermite`: an even number of them, exactly symmetric)
    # and He_k(-z) = (-1)^k He_k(z): the even coefficients are those of phi's even part at the
    # positive nodes, the odd ones of its odd part, two products of a quarter of the one over every
    # node (ascending nodes: the positive half last).
    if nodes % 2:
        raise ValueError(f"a Hermite plan's nodes come in +-z pairs (nodes_for); got {nodes} nodes")
    z, sqrt_w, H = hermite_table(nodes, terms)
    half = nodes // 2
    z, sqrt_w, H = z[half:], sqrt_w[half:], H[half:]
    return tuple(jnp.asarray(v, dtype) for v in (z, sqrt_w, H[:, 0::2], H[:, 1::2]))


def _coefficients(fn: Callable, lq: jax.Array, terms: int, nodes: int, odd_part):
    """The coefficients ``a_k`` at ``q = exp(lq)`` of even and of odd ``k`` (``[..., *]``, not normalized;
    ``None`` where they vanish, ``[..., 1]`` for a linear odd part), and ``x`` (the positive nodes
    scaled by ``sqrt(q)``), the square roots of the weights and ``fn``'s values times them at ``+-x``."""
    z, sqrt_w, h_even, h_odd = _half_rule(terms, nodes, lq.dtype)
    root_q = jnp.exp(0.5 * lq)
    x = root_q[..., None] * z
    f_pos = fn(x) * sqrt_w
    if odd_part == "all":
        f_neg = -f_pos
    elif odd_part is not None:
        f_neg = f_pos - (2.0 * odd_part) * x * sqrt_w
    else:
        f_neg = fn(-x) * sqrt_w

    def product(values, h):
        # [..., k] as the transpose of a product whose result is [k, ...]: the series reads each
        # degree's coefficients as one contiguous row.
        return jnp.moveaxis(jnp.einsum("ak,...a->k...", h, values, precision=jax.lax.Precision.HIGHEST), 0, -1)

    even = None if odd_part == "all" else product(f_pos + f_neg, h_even)
    if odd_part is None or odd_part == "all":
        odd = product(f_pos - f_neg, h_odd) if terms >= 1 else None
    else:
        odd = (odd_part * root_q)[..., None]
    return even, odd, x, sqrt_w, f_pos, f_neg


def _expansion(fn: Callable, dfn: Callable, lq: jax.Array, terms: int, nodes: int, pad_to: int, odd_part) -> dict:
    """:func:`row_expansion` with ``terms`` terms at ``nodes`` nodes, the coefficients padded with zeros
    to those of ``pad_to`` terms."""
    dtype = lq.dtype
    even, odd, x, sqrt_w, f_pos, f_neg = _coefficients(fn, lq, terms, nodes, odd_part)
    d_pos = dfn(x) * sqrt_w
    if odd_part == "all":
        d_neg = d_pos
    elif odd_part is not None:
        d_neg = (2.0 * odd_part) * sqrt_w - d_pos
    else:
        d_neg = dfn(-x) * sqrt_w
    norm2 = sum(jnp.sum(v * v, -1) for v in (even, odd) if v is not None)
    norm = jnp.sqrt(jnp.where(norm2 > 0, norm2, 1.0))[..., None]
    even = None if even is None else even / norm
    odd = None if odd is None else odd / norm
    # sum_k k alpha_k^2 over the degrees k = 2t (even) and 2t + 1 (odd).
    dnorm2 = sum(jnp.sum((2 * jnp.arange(v.shape[-1], dtype=dtype) + r) * v * v, -1)
                 for v, r in ((even, 0), (odd, 1)) if v is not None)

    def padded(v, count):
        return jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, count - v.shape[-1])]) if count > v.shape[-1] else v

    out = dict(dnorm=jnp.sqrt(dnorm2), lm=jnp.log(jnp.sum(f_pos * f_pos + f_neg * f_neg, -1)),
               lmd=jnp.log(jnp.sum(d_pos * d_pos + d_neg * d_neg, -1)), terms=jnp.full(lq.shape, terms, dtype))
    if even is not None:
        out["even"] = padded(even, pad_to // 2 + 1)
    if odd is not None:  # a linear odd part keeps its one term
        out["odd"] = odd if odd_part not in (None, "all") else padded(odd, (pad_to + 1) // 2)
    return out


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
    if r2 is None:
        other = {k: (None if r1.get(k) is None else jnp.swapaxes(r1[k], 0, 1)) for k in ("even", "odd", "dnorm", "terms")}
    else:
        other = r2
    dtype = rho.dtype
    dn1, dn2 = r1["dnorm"], other["dnorm"]
    # Terms first: each degree's coefficients are then contiguous rows, read as vectors by the pass.
    pairs = {}
    linear = None  # a linear odd part: its single term, added after the pass
    for key in ("even", "odd"):
        u, v = r1.get(key), other.get(key)
        if u is None or v is None:
            continue
        if key == "odd" and u.shape[-1] == 1:
            linear = (u, v)
            continue
        pairs[key] = (jnp.moveaxis(u, -1, 0), jnp.moveaxis(v, -1, 0))
    half = _BLOCK // 2
    n_blocks = max([-(-a.shape[0] // half) for a, _ in pairs.values()] + [0])
    for key, (u, v) in pairs.items():  # zero terms above the last
        pad = n_blocks * half - u.shape[0]
        if pad:
            widths = lambda w: [(0, pad)] + [(0, 0)] * (w.ndim - 1)  # noqa: E731
            pairs[key] = (jnp.pad(u, widths(u)), jnp.pad(v, widths(v)))

    def finish(acc, dacc, ends, rho):
        # ends: the per-input numbers (the norms of the derivative series, a linear odd part's term),
        # passed in whole so that the products over pairs are formed where they are used.
        dn1, dn2, linear = ends
        if linear is not None:
            linear = linear[0][..., 0] * linear[1][..., 0]
            acc, dacc = acc + linear * rho, dacc + linear
        dn = dn1 * dn2
        return acc, jnp.where(dn > 0, dacc / jnp.where(dn > 0, dn, 1.0), 0.0)

    ends = (dn1, dn2, linear)
    if n_blocks == 0:  # at most a linear term
        zero = jnp.zeros(jnp.broadcast_shapes(dn1.shape, dn2.shape, rho.shape), dtype)
        return finish(zero, zero, ends, rho)

    if reach is None:
        used = jnp.asarray(n_blocks, jnp.int32)
    else:
        tol = float(np.finfo(dtype).eps) / 16.0
        r = jnp.clip(jnp.asarray(reach, dtype), 0.0, 1.0)
        inside = (r > 0) & (r < 1)
        # The fewest terms k with reach^(k - 1) <= tol.
        k_needed = 1.0 + jnp.ceil(math.log(tol) / jnp.log(jnp.where(inside, r, 0.5)))
        k_needed = jnp.where(r >= 1, n_blocks * _BLOCK, jnp.where(r > 0, k_needed, 2.0))
        used = jnp.clip(jnp.ceil(k_needed / _BLOCK), 1, n_blocks).astype(jnp.int32)
    if "terms" in r1:  # the coefficients above the shorter of the two expansions are zero
        top = jnp.minimum(jnp.max(r1["terms"]), jnp.max(other["terms"]))
        used = jnp.clip(jnp.ceil((top + 1) / _BLOCK).astype(jnp.int32), 1, used)

    def block(j, carry, pairs, rho):
        # acc <- acc rho^B + P(rho), P the block's B terms; dacc, the derivative in rho, alike (the top
        # block: carry None, acc = P). P and P' by their even and odd parts in y = rho^2 (up to four
        # Horner chains of B / 2 terms): a single chain of B dependent steps per term waits on each
        # step. The powers of rho are computed here from rho (read from memory, they would cost more
        # than their products).
        y = rho * rho
        even = odd = d_even = d_odd = None
        # The block's coefficients as one slice each (static where j is): indexed one degree at a time
        # by a computed position, the pass would be slower.
        if isinstance(j, int):
            sliced = {key: (u[j * half:(j + 1) * half], v[j * half:(j + 1) * half]) for key, (u, v) in pairs.items()}
        else:
            sliced = {key: (jax.lax.dynamic_slice_in_dim(u, j * half, half, 0),
                            jax.lax.dynamic_slice_in_dim(v, j * half, half, 0)) for key, (u, v) in pairs.items()}
        for t in range(half - 1, -1, -1):
            c = {key: u[t] * v[t] for key, (u, v) in sliced.items()}
            # P = E(y) + rho O(y); P' = O'(y) + rho E'(y), with the terms (2t + 1) c_{2t+1} y^t and 2t c_{2t} y^(t-1)
            # (t counting the block's degrees of each parity: j B / 2 of them below).
            if "even" in c:
                c0 = c["even"]
                even = c0 if even is None else even * y + c0
                if t > 0:
                    d_even = 2 * t * c0 if d_even is None else d_even * y + 2 * t * c0
            if "odd" in c:
                c1 = c["odd"]
                odd = c1 if odd is None else odd * y + c1
                d_odd = (2 * t + 1) * c1 if d_odd is None else d_odd * y + (2 * t + 1) * c1
        p = even if odd is None else (rho * odd if even is None else even + rho * odd)
        dp = d_odd if d_even is None else (rho * d_even if d_odd is None else d_odd + rho * d_even)
        if carry is None:
            return p, dp
        acc, dacc = carry
        step = y ** half  # rho^B
        step_d = _BLOCK * rho * y ** (half - 1)  # its derivative
        # The block's terms start at degree j B: its derivative counted t from j B / 2 on, which the
        # products with rho^B (and their derivatives) account for.
        return acc * step + p, dacc * step + acc * step_d + dp

    def every_block(pairs, rho, ends):
        """The pass over every block, from the top one down: a loop of static length, which
        reverse-mode differentiation can run backwards."""
        carry = block(n_blocks - 1, None, pairs, rho)
        if n_blocks > 1:
            carry = jax.lax.fori_loop(1, n_blocks, lambda i, c: block(n_blocks - 1 - i, c, pairs, rho), carry)
        return finish(*carry, ends, rho)

    if n_blocks == 1:
        return every_block(pairs, rho, ends)

    def lowest(count):
        """The pass over the lowest ``count`` blocks (every position known to the compiler)."""

        def run(pairs, rho):
            carry = block(count - 1, None, pairs, rho)
            if count > 1:
                carry = jax.lax.fori_loop(1, count, lambda i, c: block(count - 1 - i, c, pairs, rho), carry)
            return carry

        return run

    # One block (correlations well inside (-1, 1), or a short rung) and two are the common cases; else
    # every block. (A loop over a computed number of blocks, or one skipping blocks, costs a multiple
    # of a block's arithmetic at every step: it carries both sums over every pair.)
    counts = sorted({1, min(2, n_blocks), n_blocks})

    @jax.custom_jvp
    def lowest_blocks(pairs, rho, ends, used):
        """The pass over the lowest 1, 2 or all blocks, the fewest that hold the ``used`` ones.
        Differentiated through :func:`every_block`, whose value it equals to rounding (one pass to
        compile for the derivatives)."""
        index = sum((used > c).astype(jnp.int32) for c in counts[:-1])
        carry = jax.lax.switch(index, [lowest(c) for c in counts], pairs, rho)
        return finish(*carry, ends, rho)

    @lowest_blocks.defjvp
    def _lowest_blocks_jvp(primals, tangents):
        return jax.jvp(every_block, primals[:3], tangents[:3])

    return lowest_blocks(pairs, rho, ends, used)
