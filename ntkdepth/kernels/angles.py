"""Cancellation-free angle arithmetic for the ReLU correlation map.

The ReLU arc-cosine kernel maps a correlation ``rho = cos(theta)`` to

    f(rho)  = ( sqrt(1 - rho^2) + (pi - arccos rho) * rho ) / pi      (paper, Definition 5)
    f'(rho) = (pi - arccos rho) / pi

Iterating ``rho <- f(rho)`` drives every correlation to 1 with
``1 - rho_l ~ 9 pi^2 / (2 l^2)`` (Lemma 1), so at depth 1e5 the interesting
quantity ``1 - rho`` is ~4e-9 while one step changes it by ~1e-13: in float64
the naive recursion loses it to rounding. These helpers work with the angle
``theta`` and with ``1 - rho`` directly, using

    1 - f(cos t) = ( (pi - t) * 2 sin^2(t/2) + (t - sin t) ) / pi
    t            = 2 asin( sqrt( (1 - rho) / 2 ) )

with a Taylor series for ``t - sin t`` at small ``t`` (docs/kernels.md,
"Stable angle form"), so
that every step is accurate to a few ulps *relative to 1 - rho*.

The angle map has an infinite derivative at ``1 - rho = 0`` although every
kernel built from it is smooth along the diagonal; :func:`angle_from_omr`
carries a custom JVP that returns the finite one-sided value there, so that
``jax.grad`` of any kernel is finite everywhere.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ARCSINE_CORRECTION",
    "angle_from_omr",
    "angle_of_gap",
    "arcsine",
    "chebyshev_series",
    "angle_from_correlation",
    "one_minus_arccos_kernel",
    "quotient",
    "sine_from_correlation",
    "t_minus_sin_t",
    "t_minus_sin_t_series",
]

_SERIES_CUTOFF = 0.5


def t_minus_sin_t_series(t: jax.Array) -> jax.Array:
    """``t - sin(t)`` by its Taylor series through ``t^17``: relative error below 1e-18 for ``t <= 0.5``."""
    t2 = t * t
    # t^3/3! - t^5/5! + ... evaluated by Horner's rule from the innermost term.
    series = 1.0 / 355687428096000.0  # 1/17!
    for k in (15, 13, 11, 9, 7, 5, 3):
        series = 1.0 / math.factorial(k) - t2 * series
    return series * t2 * t


def t_minus_sin_t(t: jax.Array) -> jax.Array:
    """``t - sin(t)`` without cancellation for small ``t`` (elementwise).

    Below 0.5 the Taylor series (:func:`t_minus_sin_t_series`); above it the
    direct difference is already accurate.
    """
    small = t < _SERIES_CUTOFF
    return jnp.where(small, t_minus_sin_t_series(jnp.where(small, t, 0.0)), t - jnp.sin(t))


# asin(s) = s sum_k c_k s^(2k), c_k = binom(2k, k) / (4^k (2k + 1)), through k = 10.
_ASIN_SERIES = tuple(math.comb(2 * k, k) / (4.0**k * (2 * k + 1)) for k in range(11))


def _half_angle_arcsine(h: jax.Array) -> jax.Array:
    """``asin(sqrt(h))`` for ``h in [0, 1/2]`` with arithmetic alone (no library arcsine).

    Two half-angle steps ``sin^2(a/2) = h / (2 (1 + sqrt(1 - h)))`` bring the
    angle below ``pi/16`` (``h <= 0.039``), where the arcsine series through
    ``s^21`` is exact to below ``1e-18`` relative; then ``a = 4 asin(sqrt(h''))``.
    Every step is free of cancellation, so the result is good to a few ulps.
    """
    for _ in range(2):
        h = h / (2.0 + 2.0 * jnp.sqrt(1.0 - h))
    series = _ASIN_SERIES[-1]
    for c in reversed(_ASIN_SERIES[:-1]):
        series = c + h * series
    return 4.0 * jnp.sqrt(h) * series


def _arcsine_correction(degree: int = 22) -> tuple[float, ...]:
    """Chebyshev coefficients, in ``s = 4 h - 1``, of ``q(h) = (asin(sqrt h) / sqrt h - 1) / h`` on
    ``h in [0, 1/2]``: a least-squares fit (200 first-kind nodes) of the arcsine's Taylor series
    ``asin(z) / z = sum_k binom(2k, k) z^(2k) / (4^k (2k + 1))``, summed to 400 terms (they fall like
    ``2^-k`` there); the coefficients fall like ``5.8^-k``. The fit's error, about ``1e-16`` of ``q``,
    enters ``asin(sqrt h) = sqrt(h) (1 + h q(h))`` scaled by ``h q(h) <= 0.11``."""
    k = np.arange(1, 400)
    log_c = (np.array([math.lgamma(2 * j + 1) - 2 * math.lgamma(j + 1) for j in k]) - k * math.log(4.0)
             - np.log(2 * k + 1))
    nodes = np.cos(np.pi * (np.arange(200) + 0.5) / 200)
    q = np.polynomial.polynomial.polyval((nodes + 1.0) / 4.0, np.exp(log_c))
    return tuple(float(c) for c in np.polynomial.chebyshev.chebfit(nodes, q, degree))


#: :func:`_arcsine_correction`'s coefficients (tests/test_kernels_accuracy.py checks them against 50 digits).
ARCSINE_CORRECTION = _arcsine_correction()
_CORRECTION_LEAST = 1.0 / 6.0  # q(0), its least value on [0, 1/2]


@functools.lru_cache(maxsize=None)
def _monomial(coefficients: tuple[float, ...], dtype_name: str, smallest: float) -> tuple[float, ...]:
    """A Chebyshev series as a polynomial in its variable ``s in [-1, 1]`` (Horner's rule: one multiply-add
    a term); trailing terms whose sum stays below 1% of an ulp of ``dtype`` of ``smallest``, the series'
    least value, are dropped."""
    a = list(np.polynomial.chebyshev.cheb2poly(np.asarray(coefficients, np.float64)))
    floor, tail = 0.01 * float(np.finfo(np.dtype(dtype_name)).eps) * smallest, 0.0
    while len(a) > 2 and tail + abs(a[-1]) <= floor:
        tail += abs(a.pop())
    return tuple(float(v) for v in a)


def chebyshev_series(coefficients: tuple[float, ...], s: jax.Array, smallest: float = 1.0) -> jax.Array:
    """The Chebyshev series ``coefficients`` at ``s in [-1, 1]`` (elementwise), whose least value on the
    interval is ``smallest``, by Estrin's scheme: pairs ``a_k + a_{k+1} s``, then pairs of those with
    ``s^2``, ``s^4``, ...: as many multiply-adds as Horner's rule, but a dependency chain of about
    ``log2`` of the terms, which the processor overlaps."""
    terms = [jnp.full_like(s, v) for v in _monomial(coefficients, jnp.dtype(s.dtype).name, smallest)]
    power = s
    while len(terms) > 1:
        if len(terms) % 2:
            terms.append(None)
        terms = [a if b is None else a + b * power for a, b in zip(terms[::2], terms[1::2])]
        if len(terms) > 1:
            power = power * power
    return terms[0]


def _arcsine_of_root(h: jax.Array) -> jax.Array:
    """``asin(sqrt h)`` for ``h in [0, 1/2]``: ``sqrt(h) (1 + h q(h))`` (:data:`ARCSINE_CORRECTION`)."""
    root = jnp.sqrt(h)
    return root + root * (h * chebyshev_series(ARCSINE_CORRECTION, 4.0 * h - 1.0, _CORRECTION_LEAST))


def angle_of_gap(g: jax.Array) -> jax.Array:
    """``arccos(1 - g)`` for ``g in [0, 2]``, accurate relative to itself as ``g -> 0`` (elementwise).

    With ``h = g / 2 = sin^2(t / 2)``: ``t = 2 asin(sqrt h)`` up to ``h = 1/2``, ``pi - 2 asin(sqrt(1 - h))``
    above, each by :func:`_arcsine_of_root`: one square root and about 20 multiply-adds, no library arc
    function.
    """
    h = jnp.clip(0.5 * g, 0.0, 1.0)
    upper = h > 0.5
    a = _arcsine_of_root(jnp.where(upper, 1.0 - h, h))
    return jnp.where(upper, jnp.pi - 2.0 * a, 2.0 * a)


@jax.custom_jvp
def arcsine(x: jax.Array) -> jax.Array:
    """``asin(x)`` for ``x in [-1, 1]`` by one polynomial and one square root, within 2 ulps (tested).

    XLA's CPU arcsine is one library call per entry (about 11 ns in float64 against 1.4 ns here,
    measured at 10^6 entries); the kernels of erf and sign take one per pair and layer. With ``a = |x|``
    up to ``sqrt(1/2)``, ``asin(a) = a (1 + h q(h))`` with ``h = a^2``; above it ``pi/2 - 2 asin(sqrt h)``
    with ``h = (1 - a) / 2`` (:func:`_arcsine_of_root`), so that ``x`` near ``+-1`` keeps its digits. The
    derivative is ``1 / sqrt((1 - a)(1 + a))`` (infinite at ``+-1``, as the arcsine's).
    """
    a = jnp.abs(x)
    upper = a > math.sqrt(0.5)
    h = jnp.where(upper, 0.5 * (1.0 - a), a * a)
    q = chebyshev_series(ARCSINE_CORRECTION, 4.0 * h - 1.0, _CORRECTION_LEAST)
    root = jnp.where(upper, 2.0 * jnp.sqrt(h), a)
    core = root + root * (h * q)
    return jnp.copysign(jnp.where(upper, 0.5 * jnp.pi - core, core), x)


@arcsine.defjvp
def _arcsine_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    a = jnp.abs(x)
    return arcsine(x), x_dot * jax.lax.rsqrt((1.0 - a) * (1.0 + a))


@jax.custom_jvp
def angle_from_omr(omr: jax.Array) -> jax.Array:
    """The angle ``t in [0, pi]`` with ``1 - cos(t) = omr``, for ``omr in [0, 2]``.

    ``t = 2 asin(sqrt(omr / 2))``, accurate relative to ``t`` even when ``omr``
    is tiny (where ``arccos`` is not), evaluated by square roots, divisions
    and a short series (:func:`_half_angle_arcsine`; ``pi/2`` minus the
    complementary angle for ``omr > 1``): a few ulps, and vectorized where a
    library arcsine is one call per entry (docs/kernels.md#stable-angle-form).
    The derivative ``1 / sin(t)`` is infinite at ``omr = 0``; there the
    JVP returns 0, the value along any path on which ``omr`` stays 0 (for
    instance a kernel's diagonal), which keeps gradients finite.
    """
    half = jnp.clip(omr * 0.5, 0.0, 1.0)  # sin^2(t / 2)
    upper = half > 0.5
    a = _half_angle_arcsine(jnp.where(upper, 1.0 - half, half))
    return 2.0 * jnp.where(upper, 0.5 * jnp.pi - a, a)


@angle_from_omr.defjvp
def _angle_from_omr_jvp(primals, tangents):
    (omr,), (omr_dot,) = primals, tangents
    t = angle_from_omr(omr)
    # dt/d(omr) = 1 / sin(t) = 1 / sqrt(omr (2 - omr)).
    sin_t = jnp.sqrt(jnp.clip(omr * (2.0 - omr), 0.0, None))
    safe = jnp.where(sin_t > 0, sin_t, 1.0)
    return t, jnp.where(sin_t > 0, omr_dot / safe, 0.0)


def angle_from_correlation(rho: jax.Array) -> jax.Array:
    """``arccos(rho)`` computed as an angle from ``1 - |rho|`` (accurate near ``+-1``)."""
    rho = jnp.clip(rho, -1.0, 1.0)
    t_pos = angle_from_omr(1.0 - jnp.abs(rho))
    return jnp.where(rho >= 0, t_pos, jnp.pi - t_pos)


def sine_from_correlation(rho: jax.Array) -> jax.Array:
    """``sin(arccos rho) = sqrt((1 - |rho|)(1 + |rho|))`` (a few ulps; no library sine)."""
    a = 1.0 - jnp.abs(jnp.clip(rho, -1.0, 1.0))
    return jnp.sqrt(a * (2.0 - a))


def one_minus_arccos_kernel(t: jax.Array) -> jax.Array:
    """``1 - J(t)`` where ``J(t) = (sin t + (pi - t) cos t) / pi = f(cos t)``.

    Returns ``((pi - t) * 2 sin^2(t/2) + (t - sin t)) / pi`` — every term is
    non-negative, so there is no cancellation at small ``t``.
    """
    s = jnp.sin(0.5 * t)
    return ((jnp.pi - t) * 2.0 * s * s + t_minus_sin_t(t)) / jnp.pi


@jax.custom_jvp
def quotient(x: jax.Array, y: jax.Array) -> jax.Array:
    """``x / y`` whose derivative never squares ``y``.

    JAX differentiates a division as ``dx / y - x dy / y^2``; ``y^2`` overflows
    (or underflows) where ``y`` is a raw kernel beyond ``1e19`` (or below
    ``1e-19``) in float32 and that term is lost. Here it is ``(dx - (x / y) dy) / y``.
    """
    return x / y


@quotient.defjvp
def _quotient_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    q = x / y
    return q, (dx - q * dy) / y
