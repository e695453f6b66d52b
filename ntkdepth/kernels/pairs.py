"""The first layer's correlations with ``1 - |rho_1|`` accurate relative to itself (docs/kernels.md#the-first-layer).

A Gram matrix knows ``<u, u'>`` to ``~sqrt(n0)`` ulps, which is all of ``1 - rho`` for nearly
identical inputs (and of ``1 + rho`` for nearly antipodal ones). For the pairs where that gap is
ill-conditioned (typically few) it is recomputed from the difference of the inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ntkdepth.kernels.scaling import power_of_two

__all__ = ["GAP_THRESHOLD", "bias_correlation", "direction_gap", "with_gap"]

#: Pairs with ``1 - |cos| <`` this (per dtype) get their gap from the inputs' difference.
GAP_THRESHOLD = {"float64": 2.0**-10, "float32": 2.0**-6}
_EXTRA_CAPACITY = 64  # close pairs beyond each row's first, refined without the pass over every row
_EVERY_PAIR_ELEMENTS = 2**18  # below n1 n2 n0 this, every pair is recomputed from the inputs


def _scaled(a):
    """Rows ``a`` times powers of two (exact) that bring each row's largest entry into ``[0.5, 1)``."""
    big = jnp.max(jnp.abs(a), axis=-1)
    _, e = jnp.frexp(jnp.where(big > 0, big, 1.0))
    half = -e // 2  # two factors: 2^-e alone leaves the normal range for subnormal rows
    return a * (power_of_two(half, a.dtype) * power_of_two(-e - half, a.dtype))[..., None]


def _pair_gap(a, b, sign):
    """``1 - sign cos(a, b)`` of rows ``a, b`` ``[..., n0]`` (scaled by :func:`_scaled`) from their
    difference, a few ulps relative.

    With ``b' = sign b``, ``Delta = b' - a`` and ``|b'| - |a| = <Delta, a + b'> / (|a| + |b'|)``,
    ``a / |a| - b' / |b'| = (a <Delta, a + b'> / (|a| (|a| + |b'|)) - Delta) / |b'|`` is a sum of
    terms proportional to ``Delta``, and the gap is half its squared length.
    """
    b = b * sign[..., None]
    na = jnp.sqrt(jnp.sum(a * a, axis=-1))
    nb = jnp.sqrt(jnp.sum(b * b, axis=-1))
    delta = b - a
    radial = jnp.sum(delta * (a + b), axis=-1) / (na * (na + nb))
    d = (a * radial[..., None] - delta) / nb[..., None]
    return 0.5 * jnp.sum(d * d, axis=-1)


def direction_gap(x1: jax.Array, x2: jax.Array, cos: jax.Array, *, capacity: int | None = None,
                  symmetric: bool = False) -> jax.Array:
    """``[n1, n2]`` the gap ``1 - |cos(x, x')|``, accurate relative to itself for every pair.

    ``x1 [n1, n0]``, ``x2 [n2, n0]``: the inputs (no zero rows); ``cos [n1, n2]``: their Gram matrix
    of unit rows (clipped to ``[-1, 1]`` here). Where ``1 - |cos|`` is below :data:`GAP_THRESHOLD`
    (a close pair) the gap comes from the inputs' difference (:func:`_pair_gap`). A small kernel
    (``n1 n2 n0`` up to ``2^18``, ``capacity`` not given) recomputes every pair. Otherwise each row's first close
    pair (a kernel's diagonal) is found by one reduction over the Gram matrix and refined; the
    close pairs beyond those, up to ``capacity`` (default ``n1 + n2 + 64``), are listed row by
    row and refined together; more fall back to a pass over every pair of the inputs. Identical
    (antipodal) rows give exactly 0. Differentiable; jit-compatible (the shapes are static).

    ``symmetric``: ``x2`` is ``x1`` (a kernel of one set of inputs). The diagonal's gap is then 0, and
    where no other pair is close (one min over the Gram matrix) nothing else is refined: the search
    and the refinement cost several elementwise passes (20 ms of a 100 ms kernel at 1,000 inputs).
    """
    return with_gap(x1, x2, cos, lambda c, gap: gap, capacity=capacity, symmetric=symmetric)


def with_gap(x1, x2, cos, finish, *, capacity: int | None = None, symmetric: bool = False):
    """``finish(cos, direction_gap(x1, x2, cos, ...))``, with ``finish``'s elementwise work in the same
    compiled passes as the gap's.

    For a kernel of one set of inputs without close pairs beyond the diagonal, the gap ``1 - |cos|``
    (0 on the diagonal) is not written out: ``finish`` (the first layer's correlation) reads the Gram
    matrix once, where a gap passed between the two would be written and read again.
    """
    n1, n2 = cos.shape
    dtype = cos.dtype
    tau = GAP_THRESHOLD[jnp.dtype(dtype).name]
    if capacity is None and n1 * n2 * x1.shape[-1] <= _EVERY_PAIR_ELEMENTS:
        cos = jnp.clip(cos, -1.0, 1.0)
        gap = _plain(cos)
        return finish(cos, jnp.where(gap < tau, _pair_gap(_scaled(x1)[:, None, :], _scaled(x2)[None, :, :],
                                                         _signs(cos)), gap))
    if symmetric and capacity is None:
        def diagonal():
            return jnp.arange(n1)[:, None] == jnp.arange(n2)[None, :]

        # The branches clip the Gram matrix themselves: clipped before the cond, it would be written out.
        def fast(c):
            c = jnp.clip(c, -1.0, 1.0)
            return finish(c, jnp.where(diagonal(), 0.0, _plain(c)).astype(dtype))

        def searched(c):
            c = jnp.clip(c, -1.0, 1.0)
            return finish(c, _search(x1, x2, c, n1 + n2 + _EXTRA_CAPACITY))

        # The closest pair off the diagonal, by one min over the Gram matrix (a count would be written
        # out as integers first).
        closest = jnp.min(jnp.where(diagonal(), 1.0, _plain(jax.lax.stop_gradient(cos))))
        return jax.lax.cond(closest >= tau, fast, searched, cos)
    cos = jnp.clip(cos, -1.0, 1.0)
    return finish(cos, _search(x1, x2, cos, n1 + n2 + _EXTRA_CAPACITY if capacity is None else int(capacity)))


def _plain(c):
    """The gap ``1 - |cos|`` as the Gram matrix gives it."""
    return jnp.clip(1.0 - jnp.abs(c), 0.0, 1.0)


def _signs(c):
    """``+-1``: the side of 0 each ``cos`` lies on, in its dtype."""
    return jnp.where(c >= 0, 1.0, -1.0).astype(c.dtype)


def _search(x1, x2, cos, capacity: int):
    """:func:`direction_gap` of a larger kernel: each row's first close pair, then the listed ones."""
    n1, n2 = cos.shape
    dtype = cos.dtype
    tau = GAP_THRESHOLD[jnp.dtype(dtype).name]
    s1, s2 = _scaled(x1), _scaled(x2)

    # The search works on integers alone: nothing to differentiate until the pairs are refined.
    close = jax.lax.stop_gradient(_plain(cos) < tau)
    col = jnp.arange(n2, dtype=jnp.int32)
    rows = jnp.arange(n1, dtype=jnp.int32)
    # Each row's number of close pairs and the first of them (n2: none), in one pass.
    count, first = jax.lax.reduce(
        (close.astype(jnp.int32), jnp.where(close, col, n2)), (jnp.int32(0), jnp.int32(n2)),
        lambda a, b: (a[0] + b[0], jnp.minimum(a[1], b[1])), (1,))
    crowded = count > 1
    row = jnp.min(jnp.where(crowded, rows, n1))  # the first row with more than one
    if capacity > 0:
        def more(state):
            i, _, k, _, _ = state
            return (i < n1) & (k < capacity)

        def step(state):
            # The next close pair of row i after column j; else on to the next crowded row.
            i, j, k, list_i, list_j = state
            c_i = jax.lax.stop_gradient(jax.lax.dynamic_index_in_dim(cos, i, keepdims=False))
            after = (_plain(c_i) < tau) & (col > jnp.maximum(j, first[i]))
            j_next = jnp.min(jnp.where(after, col, n2))
            found = j_next < n2
            list_i = jnp.where(found, list_i.at[k].set(i), list_i)
            list_j = jnp.where(found, list_j.at[k].set(j_next), list_j)
            next_row = jnp.min(jnp.where(crowded & (rows > i), rows, n1))
            return (jnp.where(found, i, next_row), jnp.where(found, j_next, -1), k + found.astype(jnp.int32),
                    list_i, list_j)

        start = (row, jnp.int32(-1), jnp.int32(0), jnp.zeros(capacity, jnp.int32),
                 jnp.full(capacity, n2, jnp.int32))
        row, _, k, list_i, list_j = jax.lax.while_loop(more, step, start)

    def refine(gap, i, j, when=None):
        """``gap`` with the pairs ``(i, j)`` refined (``j = n2``: no pair)."""
        valid = j < n2
        j_safe = jnp.where(valid, j, 0)

        def values(_):
            return _pair_gap(s1[i], s2[j_safe], _signs(cos[i, j_safe]))

        v = values(None) if when is None else jax.lax.cond(when, values, lambda _: jnp.zeros(i.shape, dtype), None)
        return gap.at[i, jnp.where(valid, j, n2)].set(v, mode="drop")

    # Both branches build the gap from the Gram matrix (a cond returning its operand copies it).
    def listed(c):
        gap = refine(_plain(c), rows, first)
        return refine(gap, list_i, list_j, when=k > 0) if capacity > 0 else gap

    def every_row(c):
        def one(args):
            a, c_i, g = args
            return jnp.where(g < tau, _pair_gap(jnp.broadcast_to(a, s2.shape), s2, _signs(c_i)), g)

        return jax.lax.map(one, (s1, c, _plain(c)))

    return jax.lax.cond(row < n1, every_row, listed, cos)


def bias_correlation(cos, gap, s1, s2, b):
    """``(rho_1, 1 - |rho_1|)`` with a bias, the gap accurate relative to itself.

    ``rho_1 = (s s' cos + b^2) / (h h')`` with ``s = W_std |x| / sqrt(n0)`` (``[n1]``, ``[n2]``),
    ``h = hypot(s, b)``; ``cos``, ``gap``: the inputs' Gram matrix and :func:`direction_gap`. With
    ``Q = h h'``, ``P = s s'``:

        1 - rho = (b^2 (s - s')^2 / (Q + P + b^2) + P (1 - cos)) / Q
        1 + rho = ((b^2 (s^2 + s'^2) + b^4) / (Q + P) + b^2 + P (1 + cos)) / Q

    sums of non-negative terms (``1 - cos`` or ``1 + cos`` is ``gap`` on its side of 0). The
    norms' difference ``s - s'`` comes from the norms, so ``1 - rho`` also carries an absolute
    ``~eps |s - s'| b^2 / Q``.
    """
    h1, h2 = jnp.hypot(s1, b), jnp.hypot(s2, b)
    big_q = h1[:, None] * h2[None, :]
    p = s1[:, None] * s2[None, :]
    b2 = b * b
    rho = cos * ((s1 / h1)[:, None] * (s2 / h2)[None, :]) + (b / h1)[:, None] * (b / h2)[None, :]
    ds = s1[:, None] - s2[None, :]
    upper = (b2 * ds * ds / (big_q + p + b2) + p * jnp.where(cos >= 0, gap, 1.0 - cos)) / big_q
    ssum = (s1 * s1)[:, None] + (s2 * s2)[None, :]
    lower = ((b2 * ssum + b2 * b2) / (big_q + p) + b2 + p * jnp.where(cos < 0, gap, 1.0 + cos)) / big_q
    far = jnp.clip(jnp.minimum(upper, lower), 0.0, 1.0)
    rho = jnp.clip(rho, -1.0, 1.0)
    # Near +-1 the gap is the more accurate of the two.
    rho = jnp.where(far < 0.5, jnp.where(rho >= 0, 1.0 - far, far - 1.0), rho)
    return rho, far
