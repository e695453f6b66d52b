"""The bias-free layer map in the angle against a 50-digit evaluation (docs/kernels.md#the-layer-map-in-the-angle)."""

import jax.numpy as jnp
import numpy as np
import pytest
from mpmath import mp, mpf

from ntkdepth.kernels import layer_map


def _exact():
    """``(J, K, M)`` at 50 digits."""
    pi = mp.pi

    def J(t):
        return (mp.sin(t) + (pi - t) * mp.cos(t)) / pi

    def K(t):
        if t == 0:
            return -1 / (3 * pi)
        with mp.workdps(mp.dps + 60):  # acos(J(t)) - t ~ t^2 / (3 pi) survives the subtraction
            return (mp.acos(J(t)) - t) / t**2

    def M(t):
        return mpf(1) / 2 if t == 0 else (1 - J(t)) / t**2

    return J, K, M


def _chebyshev(f, n):
    """The ``n`` Chebyshev interpolation coefficients of ``f`` on ``t in [0, pi/2]``."""
    pi = mp.pi
    nodes = [mp.cos((2 * i + 1) * pi / (2 * n)) for i in range(n)]
    values = [f((x + 1) * pi / 4) for x in nodes]
    c = [2 * mp.fsum(values[i] * mp.cos(j * (2 * i + 1) * pi / (2 * n)) for i in range(n)) / n
         for j in range(n)]
    c[0] /= 2
    return c


def test_stored_coefficients_are_the_50_digit_ones():
    with mp.workdps(50):
        J, K, M = _exact()
        for f, stored in ((K, layer_map.K_COEFFICIENTS), (M, layer_map.M_COEFFICIENTS)):
            exact = _chebyshev(f, len(stored))
            assert [float(c) for c in exact] == list(stored)
            # The first coefficient left out is below a hundredth of a float64 ulp of the smallest value.
            assert abs(float(_chebyshev(f, len(stored) + 1)[-1])) < 0.01 * 2.2e-16 * 0.25


@pytest.mark.parametrize("dtype, ulps", [("float64", 2.0), ("float32", 3.0)])
def test_maps_within_ulps_of_50_digits(x64, dtype, ulps):
    rng = np.random.default_rng(5)
    t = np.concatenate([rng.uniform(0.0, np.pi / 2, 600), 10.0 ** rng.uniform(-12, 0, 300),
                        [0.0, 1e-150, np.pi / 2]]).astype(dtype)
    tt = jnp.asarray(t)
    got = {"next": np.asarray(layer_map.next_angle(tt), np.float64),
           "1-J": np.asarray(layer_map.one_minus_correlation_map_of_angle(tt), np.float64)}
    eps = float(np.finfo(dtype).eps)
    J, _, _ = _exact()
    worst = {k: 0.0 for k in got}
    for i, ti in enumerate(t.astype(np.float64)):
        # 1 - J(t) ~ t^2 / 2: enough digits that it survives the subtraction.
        with mp.workdps(50 + (int(-2 * np.log10(ti)) if ti > 0 else 0)):
            j = J(mpf(float(ti)))
            for name, exact in (("next", mp.acos(j)), ("1-J", 1 - j)):
                if exact != 0:
                    worst[name] = max(worst[name], float(abs(mpf(got[name][i]) - exact) / exact))
                else:
                    assert got[name][i] == 0.0
    for name, err in worst.items():
        assert err <= ulps * eps, (name, err / eps)
    # The angle shrinks and 1 - J stays positive: the map never leaves [0, pi/2].
    assert np.all(got["next"] <= t.astype(np.float64) + 1e-300) and np.all(got["1-J"] >= 0)
