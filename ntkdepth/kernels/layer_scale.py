"""The per-layer scale ``c = W_std^2 / 2`` of the bias-free kernels, its logarithm to a few ulps of itself.

``Sigma^L`` and ``Theta^L`` carry ``c^(L - 1)``; an error ``e`` in ``log c`` becomes ``(L - 1) e`` in
them, so ``log c`` must be accurate relative to itself, also where ``c`` is 1 plus a few ulps
(``W_std = sqrt(2)`` rounded). See docs/kernels.md#rescaling.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["log_half_square"]


def _split(w):
    """``w = hi + lo`` with ``hi`` of half the mantissa (Dekker), so that ``hi * hi`` is exact."""
    bits = jnp.finfo(w.dtype).nmant + 1
    factor = float(2 ** ((bits + 1) // 2) + 1)
    c = factor * w
    hi = c - (c - w)
    return hi, w - hi


@jax.custom_jvp
def log_half_square(w: jax.Array) -> jax.Array:
    """``log(w^2 / 2)`` for ``w > 0``, within a few ulps of itself (elementwise).

    ``w^2 = p + e`` exactly (``p = fl(w^2)``, ``e`` by Dekker's product); where ``p / 2`` lies in
    ``[1/2, 2]`` the difference ``p / 2 - 1`` is exact and ``log1p(p / 2 - 1 + e / 2)`` is as
    accurate as its argument; elsewhere ``|log(w^2 / 2)| > log 2`` and ``2 log w - log 2`` is (also
    where ``w^2`` over- or underflows).
    Its derivative is ``2 / w``.
    """
    w = jnp.asarray(w)
    p = w * w
    hi, lo = _split(w)
    e = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
    half = 0.5 * p
    near = (half >= 0.5) & (half <= 2.0)
    close = jnp.log1p((half - 1.0) + 0.5 * e)
    far = 2.0 * jnp.log(w) - math.log(2.0)
    return jnp.where(near, close, far)


@log_half_square.defjvp
def _log_half_square_jvp(primals, tangents):
    (w,), (w_dot,) = primals, tangents
    return log_half_square(w), 2.0 * w_dot / w
