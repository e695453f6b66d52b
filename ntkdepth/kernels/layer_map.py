"""One layer of the bias-free ReLU recursion as a map of the angle.

See docs/kernels.md#the-layer-map-in-the-angle.

From layer 2 on, every angle ``t_l`` lies in ``[0, pi/2]`` and the next layer
depends on it alone: with ``J(t) = (sin t + (pi - t) cos t) / pi`` (the
correlation ``rho_{l+1}``),

    1 - J(t) = t^2 M(t)
    t_{l+1}  = arccos J(t) = t + t^2 K(t)

``K`` and ``M`` are analytic on ``[0, pi/2]``; their Chebyshev series in
``s = 4 t / pi - 1`` (coefficients below, from a 50-digit evaluation; the test
suite recomputes them) reach float64 rounding with 22 and 15 terms, and are
evaluated by Horner's rule in ``s``. A layer then costs about 40 multiply-adds
and no square root, division or arcsine. The new angle is the old one plus a
correction smaller by ``t / (3 pi)`` (one rounding a layer, not the series'
few), and the factor ``t^2`` keeps ``1 - rho_{l+1}`` accurate relative to
itself as the angle shrinks with depth.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np

__all__ = ["K_COEFFICIENTS", "M_COEFFICIENTS", "next_angle", "one_minus_correlation_map_of_angle"]

#: Chebyshev coefficients of ``K(t) = (arccos(J(t)) - t) / t^2`` on ``t in [0, pi/2]`` (``K(0) = -1/(3 pi)``).
K_COEFFICIENTS = (
    -0.11681549140500933, -0.01268648182517854, -0.0018952870360864566, 8.832043741086412e-05,
    1.3773086057181155e-05, 4.6038089906397425e-06, 1.6145907226189426e-07, 2.0970078989372395e-10,
    -9.701572742556142e-09, -9.33270069563886e-10, -8.446407039401284e-11, 1.7815525916900924e-11,
    3.3684442489696894e-12, 4.876385482942983e-13, -1.2881976694622526e-14, -9.509359110678454e-15,
    -2.093897154684646e-15, -1.1628258759816434e-16, 1.697664705395041e-17, 7.380560436182055e-18,
    8.84931843224655e-19, 2.4466509363784413e-20,
)
#: Chebyshev coefficients of ``M(t) = (1 - J(t)) / t^2`` on ``t in [0, pi/2]``.
M_COEFFICIENTS = (
    0.39233662339336306, -0.11332934498235656, -0.004188323055727628, 0.0014759814997016146,
    -9.110515210431032e-06, -7.357743793535905e-06, 1.0892477418656207e-07, 1.9677604671055717e-08,
    -3.294731006147682e-10, -3.291731608656695e-11, 5.511026837507824e-13, 3.7718114501175394e-14,
    -6.073667429015676e-16, -3.145864417321817e-17, 4.805810492291085e-19,
)

_SMALLEST_VALUE = 0.25  # M >= 0.27 on [0, pi/2]; K's error enters t_{l+1} times t^2


@functools.lru_cache(maxsize=None)
def _monomial(coefficients: tuple[float, ...], dtype_name: str) -> tuple[float, ...]:
    """The series as a polynomial in ``s`` (Horner's rule: one multiply-add a term).

    Its coefficients decay like the Chebyshev ones (the maps are analytic well
    beyond ``[-1, 1]``), so the change of basis loses nothing; trailing terms
    whose sum stays below 1% of an ulp of ``dtype`` are dropped.
    """
    a = list(np.polynomial.chebyshev.cheb2poly(np.asarray(coefficients, np.float64)))
    eps, tail = float(np.finfo(np.dtype(dtype_name)).eps), 0.0
    while len(a) > 2 and tail + abs(a[-1]) <= 0.01 * eps * _SMALLEST_VALUE:
        tail += abs(a.pop())
    return tuple(float(v) for v in a)


def _series(coefficients, t):
    """The series at ``s = 4 t / pi - 1``, in ``t``'s dtype."""
    a = _monomial(coefficients, jnp.dtype(t.dtype).name)
    s = t * (4.0 / math.pi) - 1.0
    acc = jnp.full_like(t, a[-1])
    for v in a[-2::-1]:
        acc = acc * s + v
    return acc


def next_angle(t):
    """``t_{l+1} = arccos J(t_l)`` for angles ``t_l in [0, pi/2]``."""
    return t + t * t * _series(K_COEFFICIENTS, t)


def one_minus_correlation_map_of_angle(t):
    """``1 - J(t) = 1 - rho_{l+1}`` for angles ``t_l in [0, pi/2]``, accurate relative to itself."""
    return t * t * _series(M_COEFFICIENTS, t)
