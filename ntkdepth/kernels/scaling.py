"""Exact power-of-two rescaling of inputs whose entries XLA would flush to zero.

XLA flushes subnormal numbers to zero, in its inputs and in every operation,
while NumPy keeps them. An input row whose entries are subnormal (or so small
that its squares underflow) would reach the kernels as the zero vector. The
kernels are homogeneous (docs/kernels.md#rescaling-tiny-inputs): without bias
``K(a x, a' x') = a a' K(x, x')`` row by row, with a bias all raw kernels scale
by ``a^2`` when the inputs and ``b_std`` are scaled together. So such rows are
multiplied on the host by powers of two (exact) and the raw kernels by the
inverse factors on output, in logarithms; what cannot be brought into range
that way is refused.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Rescaled", "into_normal_range", "power_of_two", "rescale_tiny_inputs", "times", "times_pow4"]


class Rescaled(NamedTuple):
    """Inputs brought into XLA's normal range, and the factors to undo on output.

    ``log1 [n1]``, ``log2 [n2]``: without bias, ``log`` of each row's factor
    ``1 / 2^k`` (the raw kernels of the rescaled rows are multiplied by
    ``exp(log1_i + log2_j)``). ``exponent``: with a bias, the ``k`` of the
    common factor ``2^k`` of the inputs and ``b_std`` (the raw kernels are
    multiplied by ``4^-k``). Unused entries are ``None``.
    """

    x1: np.ndarray
    x2: np.ndarray
    b_std: float
    log1: np.ndarray | None
    log2: np.ndarray | None
    exponent: int | None


def _row_max(a: np.ndarray) -> np.ndarray:
    return np.max(np.abs(a), axis=1)


def rescale_tiny_inputs(x1, x2, W_std, b_std, *, bias: bool, dtype, norms=None) -> Rescaled | None:
    """``None`` when every input is safely in range, else the rescaled inputs.

    ``x1 [n1, n0]``, ``x2 [n2, n0]``: concrete arrays of ``dtype``. Without
    bias a row is rescaled when its largest entry is below ``tiny / eps`` (so
    that a subnormal entry could weigh more than a rounding error); with a bias
    all inputs and ``b_std`` are rescaled by one power of two when some row's
    entries or ``b_std`` fall below that and matter (the layer loop itself
    scales everything else). Raises ``ValueError`` when the inputs and
    ``b_std`` span more than the dtype can hold in one call.
    """
    info = np.finfo(dtype)
    eps = float(info.eps)
    floor = float(info.tiny) / eps  # below this a flushed entry weighs > 1 ulp
    a1 = np.asarray(x1)
    a2 = a1 if x2 is x1 else np.asarray(x2)
    m1 = _row_max(a1)
    m2 = m1 if a2 is a1 else _row_max(a2)
    if not bias:
        if m1.min() >= floor and m2.min() >= floor:
            return None

        def rows(a, m):
            small = m < floor
            if not small.any():
                return a, None
            e = np.where(small, np.frexp(m.astype(np.float64))[1], 0)  # m = f 2^e, f in [0.5, 1)
            return np.ldexp(a, -e[:, None]).astype(a.dtype), (e * math.log(2.0)).astype(np.float64)

        y1, log1 = rows(a1, m1)
        y2, log2 = (y1, log1) if a2 is a1 else rows(a2, m2)
        n1, n2 = a1.shape[0], a2.shape[0]
        log1 = np.zeros(n1) if log1 is None else log1
        log2 = np.zeros(n2) if log2 is None else log2
        return Rescaled(y1, y2, float(b_std), log1, log2, None)

    b = float(b_std)
    m = np.concatenate([m1, m2]).astype(np.float64)
    s = float(W_std) / math.sqrt(a1.shape[1]) * np.asarray(norms, np.float64)
    q = np.hypot(s, b)  # sqrt(Sigma^1(x, x))
    if (q.min() / q.max()) ** 2 < 4.0 * float(info.tiny):
        # The layer loop brings the largest Sigma^1(x, x) to order 1; the smallest must stay normal.
        i = int(np.argmin(q))
        raise ValueError(
            f"with b_std={b:g} the inputs span more than {np.dtype(dtype).name} holds in one call: "
            f"row {i} of [x1; x2] has Sigma^1(x, x) = {q[i] ** 2:.3g} against {q.max() ** 2:.3g} "
            f"for another; pass dtype='float64' or compute such rows in a separate call"
        )
    if m.min() >= floor and (b >= floor or b == 0):
        return None  # the layer loop scales the rest (docs/kernels.md#biases)
    # Entries that are flushed matter unless the row's whole contribution is
    # below a rounding of b; likewise for b against the smallest row.
    row_matters = s > eps * b
    b_matters = b > eps * s.min()
    if np.all((m >= floor) | ~row_matters) and (b >= floor or not b_matters):
        return None
    k = -math.frexp(max(float(m.max()), b))[1]  # the largest entry or b to [0.5, 1)
    mk, bk = np.ldexp(m, k), math.ldexp(b, k)
    if np.any((mk < floor) & row_matters) or 0 < bk < floor and b_matters:
        i = int(np.argmin(np.where(row_matters, mk, np.inf)))
        raise ValueError(
            f"with b_std={b:g} the inputs span more than {np.dtype(dtype).name} holds in one call: "
            f"row {i} of [x1; x2] has entries of {m[i]:.3g} against {max(m.max(), b):.3g}; pass "
            f"dtype='float64' or compute such rows in a separate call"
        )
    y1 = np.ldexp(a1, k).astype(a1.dtype)
    y2 = y1 if a2 is a1 else np.ldexp(a2, k).astype(a2.dtype)
    return Rescaled(y1, y2, bk, None, None, k)


def power_of_two(e, dtype):
    """``2^e`` exactly, for integers ``e`` (traced or not) among the dtype's normal exponents."""
    info = jnp.finfo(dtype)
    int_type = jnp.int64 if info.bits == 64 else jnp.int32
    biased = jnp.asarray(e).astype(int_type) + (info.maxexp - 1)
    return jax.lax.bitcast_convert_type(biased << info.nmant, dtype)


def times_pow4(value, exponent):
    """``value * 4^exponent``, exact (two multiplications by a power of two).

    ``exponent`` is clipped to the dtype's normal exponents: beyond them the
    result is 0 or ``inf`` whatever the rest of the product.
    """
    info = jnp.finfo(value.dtype)
    p = power_of_two(jnp.clip(exponent, info.minexp, info.maxexp - 1), value.dtype)
    return value * p * p


def times(value, factor):
    """``value * factor``, and 0 where ``value`` is 0 (even if ``factor`` overflowed to inf)."""
    return jnp.where(value == 0, jnp.zeros_like(value), value * factor)


def into_normal_range(x1, x2, W_std, b_std, bias: bool, dtype, norms):
    """``(x1, x2, b_std, rescale, norms)``: inputs XLA will not flush to zero.

    ``rescale`` is ``None`` (nothing changed) or what the first layer undoes on output
    (:func:`ntkdepth.kernels.relu_engine.layer_one`): ``(log1, log2)`` without bias, the exponent
    ``k`` of the common factor ``2^k`` with one. Traced values pass unchanged (their values are not
    known here). ``norms``: the rows' norms (with a bias, ``[n1 + n2]`` float64), scaled along.
    """
    traced = (x1, x2, W_std, b_std) if bias else (x1, x2)
    if any(isinstance(v, jax.core.Tracer) for v in traced):
        return x1, x2, b_std, None, norms
    r = rescale_tiny_inputs(x1, x2, W_std, b_std, bias=bias, dtype=dtype, norms=norms)
    if r is None:
        return x1, x2, b_std, None, norms
    y1 = jnp.asarray(r.x1)
    y2 = y1 if r.x2 is r.x1 else jnp.asarray(r.x2)
    if bias:
        return y1, y2, r.b_std, np.asarray(r.exponent, np.int32), np.ldexp(norms, r.exponent)
    return y1, y2, b_std, (jnp.asarray(r.log1, dtype), jnp.asarray(r.log2, dtype)), norms
