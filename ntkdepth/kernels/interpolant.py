"""Piecewise Chebyshev interpolants of functions of the first layer's correlation (docs/activations.md#any-depth-at-gram-matrix-cost).

The variable is ``v = sqrt((1 - |rho_1|) / 2)`` on each side of ``rho_1 = 0``; each side is cut into
eighths of octaves of ``v`` down to ``2^emin`` (then one panel ``[0, 2^emin]``), with a degree-8
interpolant on each panel, so that a function that changes on the scale of ``1 - |rho_1|`` near
``+-1`` is resolved at every scale. A panel is found from the bits of ``v``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEGREE", "N", "SymmetricMesh", "chebyshev_coefficients", "chebyshev_matrix", "chebyshev_points",
           "chebyshev_sum", "clenshaw", "locate",
           "octave_panel", "symmetric_mesh"]

#: Degree of the Chebyshev interpolant on each panel.
DEGREE = 8
#: Chebyshev points (and coefficients) per panel.
N = DEGREE + 1
_SUB_BITS = 3
_SUB = 2**_SUB_BITS  # panels per octave of v
_VMAX = math.sqrt(0.5)  # v at rho_1 = 0


def chebyshev_points(n: int = N) -> np.ndarray:
    """``[n]`` Chebyshev points of the first kind on ``[-1, 1]`` (interior: never the ends)."""
    k = np.arange(n)
    return np.cos((2 * k + 1) * np.pi / (2 * n))


def chebyshev_matrix(n: int = N) -> np.ndarray:
    """``[n, n]``: the Chebyshev coefficients of the interpolant through values at
    :func:`chebyshev_points` ``(n)`` are ``values @ chebyshev_matrix(n).T``."""
    k = np.arange(n)
    j = np.arange(n)[:, None]
    mat = (2.0 / n) * np.cos(j * (2 * k + 1) * np.pi / (2 * n))
    mat[0] /= 2.0
    return mat


class SymmetricMesh(NamedTuple):
    """Panels ``[lo, hi]`` of ``v``: ``n_side`` for ``rho_1 >= 0``, then as many for ``rho_1 < 0``."""

    emin: int
    lo: np.ndarray
    hi: np.ndarray
    n_side: int

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rho_1, 1 - rho_1)`` at the Chebyshev points of every panel, ``[P * N]`` (float64)."""
        x = chebyshev_points()
        v = ((self.lo + self.hi)[:, None] + (self.hi - self.lo)[:, None] * x[None, :]) / 2.0
        positive = (np.arange(len(self.lo)) < self.n_side)[:, None]
        a = 2.0 * v * v  # 1 - |rho_1|
        omr = np.where(positive, a, 2.0 - a)
        rho = np.where(positive, 1.0 - a, a - 1.0)
        return rho.ravel(), omr.ravel()


@lru_cache(maxsize=64)
def symmetric_mesh(emin: int) -> SymmetricMesh:
    """Eighth-octave panels of ``v`` from ``2^emin`` up to the one holding ``v = sqrt(1/2)``, on both sides."""
    lo, hi = [0.0], [2.0**emin]
    for e in range(emin + 1, 1):  # v in [2^(e-1), 2^e)
        base = 2.0 ** (e - 1)
        for k in range(_SUB):
            a = base * (1 + k / _SUB)
            if a < _VMAX:  # the last panel reaches past sqrt(1/2): its width stays a power of two
                lo.append(a)
                hi.append(base * (1 + (k + 1) / _SUB))
    n_side = len(lo)
    return SymmetricMesh(emin, np.array(lo + lo), np.array(hi + hi), n_side)


def chebyshev_coefficients(values: jax.Array, n_panels: int) -> jax.Array:
    """``[m, P * N]`` Chebyshev coefficients of the interpolants through ``values [m, P * N]`` (at
    :meth:`SymmetricMesh.nodes`)."""
    mat = jnp.asarray(chebyshev_matrix().T, values.dtype)
    m = values.shape[0]
    return (values.reshape(m, n_panels, N) @ mat).reshape(m, -1)


def octave_panel(v: jax.Array, emin: int, n_side: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(index, start, 2 / width)`` of the eighth-octave panel holding ``v >= 0``, elementwise.

    The exponent and the top three mantissa bits of ``v`` name its panel; its start is ``v`` with
    the other mantissa bits cleared and ``2 / width`` is a power of two, so that
    ``(v - start) * (2 / width)`` is exact. Below ``2^emin`` lies the one panel ``[0, 2^emin]``
    (index 0); indices stop at ``n_side - 1``.
    """
    info = jnp.finfo(v.dtype)
    int_type = jnp.int64 if info.bits == 64 else jnp.int32
    mant_bits, exp_bias = info.nmant, info.maxexp - 1
    shift = mant_bits - _SUB_BITS
    w = jax.lax.stop_gradient(v)
    bits = jax.lax.bitcast_convert_type(w, int_type)
    key = bits >> shift  # biased exponent * 8 + the top three mantissa bits
    idx = jnp.clip(key - ((exp_bias + emin) * _SUB - 1), 0, n_side - 1)
    start = jax.lax.bitcast_convert_type(bits & ~((1 << shift) - 1), v.dtype)
    two_over = jax.lax.bitcast_convert_type(
        (2 * exp_bias + _SUB_BITS + 1 - (key >> _SUB_BITS)) << mant_bits, v.dtype)
    lowest = idx == 0
    start = jnp.where(lowest, 0.0, start)
    two_over = jnp.where(lowest, 2.0 ** (1 - emin), two_over)
    return idx, start, two_over


def locate(v: jax.Array, positive: jax.Array, emin: int, n_side: int) -> tuple[jax.Array, jax.Array]:
    """Panel offset ``[...]`` (panel index times ``N``) and the local variable ``u in [-1, 1]``, exact
    above the lowest panel (:func:`octave_panel`), on the side of ``rho_1`` that ``positive`` names.
    """
    idx, start, two_over = octave_panel(v, emin, n_side)
    u = jnp.clip((v - start) * two_over - 1.0, -1.0, 1.0)
    idx = jnp.where(positive, idx, idx + n_side)
    return (idx * N).astype(jnp.uint32), u


def _clenshaw(c, n: int, u: jax.Array) -> jax.Array:
    """``sum_{j < n} c(j) T_j(u)`` by Clenshaw's recurrence."""
    two_u = 2.0 * u
    b1 = c(n - 1)
    b2 = jnp.zeros_like(u)
    for j in range(n - 2, 0, -1):
        b1, b2 = c(j) + two_u * b1 - b2, b1
    return c(0) + u * b1 - b2


def clenshaw(coef: jax.Array, base: jax.Array, u: jax.Array) -> jax.Array:
    """The Chebyshev series ``coef[base : base + N]`` at ``u``, elementwise."""
    return _clenshaw(lambda j: coef.at[base + j].get(mode="promise_in_bounds"), N, u)


def chebyshev_sum(coef: jax.Array, t: jax.Array) -> jax.Array:
    """The Chebyshev series ``coef`` (one short vector) at ``t``, elementwise."""
    return _clenshaw(lambda j: coef[j], coef.shape[0], t)
