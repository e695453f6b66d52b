"""The first layer's correlations with ``1 - |rho_1|`` accurate relative to itself (docs/kernels.md#the-first-layer).

A Gram matrix knows ``<u, u'>`` to ``~sqrt(n0)`` ulps, which is all of ``1 - rho`` for nearly
identical inputs (and of ``1 + rho`` for nearly antipodal ones). For the pairs where that gap is
ill-conditioned (typically few) it is recomputed from the difference of the inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["GAP_THRESHOLD", "bias_correlation", "direction_gap"]

#: Pairs with ``1 - |cos| <`` this (per dtype) get their gap from the inputs' difference.
GAP_THRESHOLD = {"float64": 2.0**-10, "float32": 2.0**-6}
_EXTRA_CAPACITY = 64  # pairs beyond the n1 + n2 of a diagonal, refined without the dense fallback


def _scaled(a):
    """Rows ``a`` divided by powers of two (exact) that bring each row's largest entry into ``[0.5, 1)``."""
    big = jnp.max(jnp.abs(a), axis=-1)
    _, e = jnp.frexp(jnp.where(big > 0, big, 1.0))
    return a * jnp.ldexp(jnp.ones_like(big), -e)[..., None]


def _pair_gap(a, b, sign):
    """``1 - sign cos(a, b)`` of rows ``a, b`` ``[..., n0]`` from their difference, a few ulps relative.

    With ``b' = sign b``, ``Delta = b' - a`` and ``|b'| - |a| = <Delta, a + b'> / (|a| + |b'|)``,
    ``a / |a| - b' / |b'| = (a <Delta, a + b'> / (|a| (|a| + |b'|)) - Delta) / |b'|`` is a sum of
    terms proportional to ``Delta``, and the gap is half its squared length.
    """
    a, b = _scaled(a), _scaled(b * sign[..., None])
    na = jnp.sqrt(jnp.sum(a * a, axis=-1))
    nb = jnp.sqrt(jnp.sum(b * b, axis=-1))
    delta = b - a
    radial = jnp.sum(delta * (a + b), axis=-1) / (na * (na + nb))
    d = (a * radial[..., None] - delta) / nb[..., None]
    return 0.5 * jnp.sum(d * d, axis=-1)


def direction_gap(x1: jax.Array, x2: jax.Array, cos: jax.Array, *, capacity: int | None = None) -> jax.Array:
    """``[n1, n2]`` the gap ``1 - |cos(x, x')|``, accurate relative to itself for every pair.

    ``x1 [n1, n0]``, ``x2 [n2, n0]``: the inputs (no zero rows); ``cos [n1, n2]``: their Gram matrix
    of unit rows. Where ``1 - |cos|`` is below :data:`GAP_THRESHOLD` the gap comes from the inputs'
    difference (:func:`_pair_gap`); up to ``capacity`` such pairs (default ``n1 + n2 + 64``) are
    gathered and refined alone, more fall back to a pass over every pair. Identical (antipodal)
    rows give exactly 0. Differentiable; jit-compatible (the shapes are static).
    """
    n1, n2 = cos.shape
    dtype = cos.dtype
    tau = GAP_THRESHOLD[jnp.dtype(dtype).name]
    gap = jnp.clip(1.0 - jnp.abs(cos), 0.0, 1.0)
    sign = jnp.where(cos >= 0, 1.0, -1.0).astype(dtype)
    near = gap < tau
    capacity = n1 + n2 + _EXTRA_CAPACITY if capacity is None else int(capacity)
    if n1 * n2 <= capacity:
        every = _pair_gap(x1[:, None, :], x2[None, :, :], sign)
        return jnp.where(near, every, gap)

    def sparse(gap):
        flat = jnp.nonzero(near.ravel(), size=capacity, fill_value=n1 * n2)[0]
        i, j = flat // n2, flat % n2
        valid = flat < n1 * n2
        ii, jj = jnp.where(valid, i, 0), jnp.where(valid, j, 0)
        refined = _pair_gap(x1[ii], x2[jj], sign[ii, jj])
        return gap.ravel().at[flat].set(refined, mode="drop").reshape(n1, n2)

    def dense(gap):
        def row(args):
            a, s, g, m = args
            return jnp.where(m, _pair_gap(jnp.broadcast_to(a, x2.shape), x2, s), g)

        return jax.lax.map(row, (x1, sign, gap, near))

    return jax.lax.cond(jnp.sum(near) <= capacity, sparse, dense, gap)


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
