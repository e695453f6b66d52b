"""The inverse stereographic projection R^d -> S^d (Definition 6; docs/separation.md)."""

import mpmath
import numpy as np
import pytest

from ntkdepth.data import inverse_stereographic

mp = mpmath.mp


def _mp_formula(x):
    """The explicit formula x -> (2x/(1+|x|^2), (|x|^2-1)/(|x|^2+1)) in 40-digit arithmetic."""
    with mp.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in x]
        r2 = mpmath.fsum(v * v for v in xs)
        return [float(2 * v / (1 + r2)) for v in xs] + [float((r2 - 1) / (r2 + 1))]


def _test_points(rng):
    base = rng.standard_normal((4, 3))
    return np.concatenate([
        base,
        2 * base[:1], -base[:1], 0.5 * base[1:2],  # colinear with row 0 / row 1
        np.zeros((1, 3)),
        rng.standard_normal((3, 3)) * np.array([[1e-200], [1e-8], [1e8]]),
        np.array([[1e200, -1e200, 3e199], [2e200, -2e200, 6e199]]),
        np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]),
    ])


def test_images_lie_on_the_sphere(rng):
    x = _test_points(rng)
    y = inverse_stereographic(x)
    assert y.shape == (x.shape[0], 4)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=0, atol=1e-14)
    scales = np.exp(rng.uniform(-30, 30, (200, 1)))
    z = inverse_stereographic(rng.standard_normal((200, 5)) * scales)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=0, atol=1e-14)


def test_matches_the_explicit_formula(rng):
    x = np.concatenate([rng.standard_normal((20, 4)) * rng.uniform(0.01, 100, (20, 1)),
                        np.array([[0.6, 0.8, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0]])])
    y = inverse_stereographic(x)
    for xi, yi in zip(x, y):
        np.testing.assert_allclose(yi, _mp_formula(xi), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(y[-2], [0.6, 0.8, 0.0, 0.0, 0.0], atol=1e-16)  # |x| = 1: the equator
    np.testing.assert_allclose(y[-1], [6 / 26, 8 / 26, 0, 0, 24 / 26], rtol=1e-15)


def test_stereographic_projection_from_the_north_pole_inverts_it(rng):
    x = rng.standard_normal((30, 3)) * rng.uniform(0.1, 10, (30, 1))
    y = inverse_stereographic(x)
    np.testing.assert_allclose(y[:, :-1] / (1 - y[:, -1:]), x, rtol=1e-12)


def test_is_injective_on_colinear_and_extreme_points(rng):
    x = _test_points(rng)
    y = inverse_stereographic(x)
    # Distinct points stay distinct (x vs 2x, x vs -x, 0 vs 1e-200 e_1, 1e200 v vs 2e200 v
    # included): compared entry by entry, since distances of 1e-200 underflow when squared.
    differ = np.any(y[:, None, :] != y[None, :, :], axis=2)
    assert np.all(differ | np.eye(len(x), dtype=bool))
    dist = np.linalg.norm(y[:, None, :] - y[None, :, :], axis=2)
    # x and 2x, x and -x: apart by what the formula says (not merely by rounding).
    for i, j in [(0, 4), (0, 5), (1, 6), (13, 14)]:
        expect = np.linalg.norm(np.subtract(_mp_formula(x[i]), _mp_formula(x[j])))
        assert dist[i, j] == pytest.approx(expect, rel=1e-12)
    assert dist[0, 5] > 0.1 and dist[0, 4] > 0.01


def test_zero_and_huge_points_are_finite():
    y = inverse_stereographic(np.array([
        [0.0, 0.0], [1e200, 0.0], [-1e200, 1e200], [1.7e308, -1.7e308],
        [1e-200, 0.0], [5e-324, 0.0],
    ]))
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0], [0.0, 0.0, -1.0])  # the south pole
    np.testing.assert_allclose(y[1], [2e-200, 0.0, 1.0], rtol=1e-15)  # 2x/|x|^2 -> north pole
    np.testing.assert_allclose(y[2], [-1e-200, 1e-200, 1.0], rtol=1e-15)
    assert y[3, 2] == 1.0 and y[3, 0] > 0 and y[3, 1] < 0  # no overflow at the top of the range
    np.testing.assert_allclose(y[4], [2e-200, 0.0, -1.0], rtol=1e-15)
    assert y[5, 0] > 0 and y[5, 2] == -1.0


def test_single_point_and_bad_input():
    single = inverse_stereographic(np.array([3.0, 4.0]))
    np.testing.assert_allclose(single, [6 / 26, 8 / 26, 24 / 26])
    with pytest.raises(ValueError, match="NaN or inf at row 2, column 1"):
        inverse_stereographic(np.array([[1.0, 2.0], [0.0, 0.0], [3.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN or inf at row 0, column 0"):
        inverse_stereographic(np.array([np.inf, 1.0]))
    with pytest.raises(ValueError, match="expected a"):
        inverse_stereographic(np.zeros((2, 2, 2)))
