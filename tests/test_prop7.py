"""Proposition 7: the angle law of uniform points on the sphere, its union bound,
the Monte Carlo check, and the separation of a dataset (min angle, max |cos|)."""

import math

import mpmath
import numpy as np
import pytest

from ntkdepth.data.pairs import closest_pair, max_abs_cosine, min_pairwise_angle, pair_angles
from ntkdepth.theory.separation_bounds import (angle_cdf, angle_density, angle_quantile,
    compare_with_monte_carlo, comparison_statistics, delta_grid, monte_carlo_close_pair,
    union_bound_close_pair, union_bound_near_colinear)

mp = mpmath.mp


def _mp_density(theta, d):
    """The closed form of Cai, Fan & Jiang (2013), in mpmath."""
    return mpmath.gamma(mpmath.mpf(d) / 2) / (
        mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2)
    ) * mpmath.sin(theta) ** (d - 2)


def _mp_cdf_quad(delta, d):
    """P(angle < delta) by mpmath quadrature of the closed-form density."""
    delta = mpmath.mpf(delta)
    half = mpmath.pi / 2
    # Split at pi/2 (the mode) and near it, where the density of large d is concentrated.
    w = min(mpmath.mpf(0.5), 8 / mpmath.sqrt(d))
    inner = [k for k in (half - w, half, half + w) if 0 < k < delta]
    knots = sorted({mpmath.mpf(0), *inner, delta})
    return mpmath.quad(lambda t: _mp_density(t, d), knots)


def _mp_cdf_beta(delta, d):
    """P(angle < delta) through mpmath's regularized incomplete beta function."""
    delta = mpmath.mpf(delta)
    tail = mpmath.betainc(mpmath.mpf(d - 1) / 2, mpmath.mpf(1) / 2, 0, mpmath.sin(delta) ** 2,
                          regularized=True) / 2
    return tail if delta <= mpmath.pi / 2 else 1 - tail


def _gauss_legendre_integral(f, a, b, pieces=64, order=40):
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, pieces + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        total += 0.5 * (hi - lo) * np.sum(w * f(0.5 * (hi - lo) * x + 0.5 * (hi + lo)))
    return total


# --------------------------------------------------------------------------- the angle law


@pytest.mark.parametrize("d", [2, 3, 4, 7, 30, 784, 10_000])
def test_density_integrates_to_one_and_matches_the_closed_form(d):
    assert _gauss_legendre_integral(lambda t: angle_density(t, d), 0.0, math.pi) == pytest.approx(
        1.0, abs=1e-12
    )
    with mp.workdps(30):
        for theta in (0.3, 1.0, math.pi / 2, 2.2):
            ref = _mp_density(mpmath.mpf(theta), d)
            got = float(angle_density(theta, d))
            assert got == pytest.approx(float(ref), rel=1e-11, abs=1e-300)


@pytest.mark.parametrize("d", [2, 3, 5, 10, 100, 2000])
def test_cdf_is_the_integral_of_the_density(d):
    with mp.workdps(30):
        for delta in (0.05, 0.9, math.pi / 2 - 0.01, 2.0, 3.0):
            ref = _mp_cdf_quad(delta, d)
            if ref < 1e-280:
                continue
            assert float(angle_cdf(delta, d)) == pytest.approx(float(ref), rel=1e-10), delta
        assert float(_mp_cdf_quad(math.pi, d)) == pytest.approx(1.0, abs=1e-20)


@pytest.mark.parametrize("d", [2, 3, 4, 11, 100, 784, 10_000])
def test_cdf_matches_mpmath_incomplete_beta(d):
    deltas = [1e-7, 1e-3, 0.1, 0.5, math.pi / 4, 1.2, 1.5, math.pi / 2 - 1e-9, math.pi / 2,
              math.pi / 2 + 1e-9, 1.7, 2.5, math.pi - 1e-4]
    got = angle_cdf(np.array(deltas), d)
    with mp.workdps(30):
        for delta, value in zip(deltas, got):
            ref = _mp_cdf_beta(delta, d)
            if ref < 1e-290:  # below the float range
                assert value < 1e-280
                continue
            assert value == pytest.approx(float(ref), rel=1e-10, abs=0), (delta, value, ref)


def test_cdf_closed_forms_in_low_dimension():
    delta = np.array([1e-8, 1e-4, 0.3, 1.0, math.pi / 2, 2.0, 3.1, math.pi])
    # d = 3 (S^2): P(angle < delta) = (1 - cos delta)/2 = sin^2(delta/2) (Archimedes).
    np.testing.assert_allclose(angle_cdf(delta, 3), np.sin(delta / 2) ** 2, rtol=1e-13)
    # d = 2 (the circle): the angle is uniform on [0, pi].
    np.testing.assert_allclose(angle_cdf(delta, 2), delta / math.pi, rtol=1e-13)
    assert angle_cdf(0.0, 50) == 0.0 and angle_cdf(math.pi, 50) == 1.0


def test_quantile_inverts_the_cdf():
    for d in (3, 20, 784):
        p = np.array([1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9, 0.999])
        delta = angle_quantile(p, d)
        np.testing.assert_allclose(angle_cdf(delta, d), p, rtol=1e-9)
        assert np.all(np.diff(delta) > 0)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: angle_cdf(0.1, 1), "d must be an integer >= 2"),
        (lambda: angle_cdf(-0.1, 3), r"delta must lie in \[0, 3.14159\]"),
        (lambda: angle_density(np.nan, 3), "theta must lie in"),
        (lambda: union_bound_close_pair(0, 3, 0.1), "n must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- union bounds


def test_union_bounds_are_pairs_times_the_pair_probability():
    delta = np.array([1e-3, 0.2, 0.9, math.pi / 2, 2.0])
    for n, d in [(2, 3), (10, 5), (1000, 50)]:
        pairs = n * (n - 1) / 2
        close = union_bound_close_pair(n, d, delta)
        np.testing.assert_allclose(close.raw, pairs * angle_cdf(delta, d), rtol=1e-15)
        np.testing.assert_array_equal(close.clipped, np.minimum(1.0, close.raw))
        line = union_bound_near_colinear(n, d, delta)
        # Below pi/2: twice the one-sided probability; beyond, every pair is near-colinear.
        np.testing.assert_allclose(line.raw[:4], 2 * close.raw[:4], rtol=1e-15)
        assert line.raw[4] == pytest.approx(pairs)
    assert union_bound_close_pair(1, 3, 1.0).raw == 0.0


# --------------------------------------------------------------------------- Monte Carlo


def test_monte_carlo_for_two_points_is_the_angle_law(rng):
    # n = 2: the event is exactly "angle < delta"; the estimate must agree with F_d within 4 s.e.
    for d in (3, 12):
        delta = angle_quantile(np.array([0.02, 0.2, 0.5, 0.8]), d)
        mc = monte_carlo_close_pair(2, d, delta, 20_000, rng)
        exact = angle_cdf(delta, d)
        se = np.sqrt(exact * (1 - exact) / mc.trials)
        assert np.all(np.abs(mc.p_close - exact) <= 4 * se), (d, mc.p_close, exact)
        line = np.minimum(1.0, 2 * exact)
        se_line = np.sqrt(line * (1 - line) / mc.trials) + 1e-12
        assert np.all(np.abs(mc.p_colinear - line) <= 4 * se_line), (d, mc.p_colinear, line)
        # The per-trial angles are the exact pair angles, recomputed accurately.
        assert np.all((mc.min_angle >= 0) & (mc.min_angle <= math.pi))
        folded = np.minimum(mc.min_angle, math.pi - mc.min_angle)
        assert np.all(mc.min_colinear_angle <= folded + 1e-12)


def test_monte_carlo_never_beats_the_union_bound_and_is_close_when_small(rng):
    hits, allowed = 0, 0.0
    for n, d, trials in [(6, 3, 4000), (40, 3, 400), (6, 25, 4000), (40, 25, 400)]:
        pairs = n * (n - 1) / 2
        delta = angle_quantile(np.geomspace(0.005, 3.0, 7) / pairs, d)
        delta = np.minimum(delta, math.pi / 2)
        mc = monte_carlo_close_pair(n, d, delta, trials, rng, max_bytes=1 << 20)
        for p, se, bound in [
            (mc.p_close, mc.se_close, union_bound_close_pair(n, d, delta)),
            (mc.p_colinear, mc.se_colinear, union_bound_near_colinear(n, d, delta)),
        ]:
            assert np.all(p <= bound.clipped + 4 * se), (n, d, p, bound.clipped)
            small = bound.raw <= 0.05
            hits += int(np.sum(p[small] * trials).round())
            allowed += float(np.sum(bound.raw[small] * trials))
        # Monotone in delta, frequencies in [0, 1].
        assert np.all(np.diff(mc.count_close) >= 0) and np.all(np.diff(mc.count_colinear) >= 0)
        assert np.all(mc.count_colinear >= mc.count_close)
    # Where the bound is small, pairs rarely coincide: the bound is nearly the probability.
    ratio = hits / allowed
    assert 0.8 < ratio < 1 + 4 * math.sqrt(hits) / allowed, (ratio, hits)


def test_monte_carlo_is_reproducible_and_batch_independent():
    a = monte_carlo_close_pair(30, 5, [0.1, 0.3], 50, np.random.default_rng(3))
    b = monte_carlo_close_pair(30, 5, [0.1, 0.3], 50, np.random.default_rng(3), max_bytes=1)
    # One trial per batch draws the same normals in the same order.
    np.testing.assert_array_equal(a.min_angle, b.min_angle)
    np.testing.assert_array_equal(a.count_close, b.count_close)


# ------------------------------------------------------------------ separation of a dataset


def _mp_angle(a, b):
    a = [mpmath.mpf(float(v)) for v in a]
    b = [mpmath.mpf(float(v)) for v in b]
    na = mpmath.sqrt(mpmath.fsum(v * v for v in a))
    nb = mpmath.sqrt(mpmath.fsum(v * v for v in b))
    diff = mpmath.sqrt(mpmath.fsum((x / na - y / nb) ** 2 for x, y in zip(a, b)))
    return 2 * mpmath.asin(diff / 2)


def _mp_brute_force(x):
    """(min angle, its pair, max |cos| as cos of the min angle to the common line)."""
    with mp.workdps(40):
        best, pair, line = mpmath.inf, None, mpmath.inf
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                t = _mp_angle(x[i], x[j])
                if t < best:
                    best, pair = t, (i, j)
                line = min(line, t, mpmath.pi - t)
        return float(best), pair, float(mpmath.cos(line)), float(line)


def _rotate_towards(u, v, angle):
    """The unit vector at ``angle`` from unit ``u`` in the plane of ``u`` and ``v``."""
    w = v - (v @ u) * u
    w /= np.linalg.norm(w)
    return math.cos(angle) * u + math.sin(angle) * w


@pytest.mark.parametrize("tiny", [1e-9, 3e-6])
def test_min_pairwise_angle_against_mpmath_brute_force(rng, tiny):
    x = rng.standard_normal((7, 5))
    u = x[2] / np.linalg.norm(x[2])
    x[5] = 3.7 * _rotate_towards(u, x[0], tiny)  # nearly the same direction as row 2, other norm
    x[6] = -0.4 * _rotate_towards(u, x[1], 0.5 * tiny)  # nearer still to antipodal to row 2
    ref, pair, ref_cos, ref_line = _mp_brute_force(x)
    assert ref == pytest.approx(tiny, rel=1e-5)
    assert min_pairwise_angle(x) == pytest.approx(ref, rel=1e-12)
    angle, i, j = closest_pair(x)
    assert (i, j) == pair == (2, 5)
    assert closest_pair(x, colinear=True)[0] == pytest.approx(ref_line, rel=1e-12)
    assert max_abs_cosine(x) == pytest.approx(ref_cos, abs=2e-16)
    assert closest_pair(x, colinear=True)[1:] == (2, 6)
    # arccos of the Gram entry does not resolve such angles (so this test can fail).
    naive = np.arccos(np.clip(u @ (x[5] / np.linalg.norm(x[5])), -1, 1))
    if tiny < 1e-7:
        assert abs(naive - ref) > 0.1 * ref


def test_blocks_find_the_same_pair_as_one_block(rng):
    x = rng.standard_normal((150, 6)) * rng.uniform(0.1, 10, (150, 1))
    x[97] = x[13] + 1e-10 * rng.standard_normal(6)
    whole = closest_pair(x)
    for block in (150, 1000, 1):  # one row per block ... all at once
        assert closest_pair(x, block_entries=block) == whole
    assert whole[1:] == (13, 97)
    brute = min(
        (float(pair_angles(x[i], x[j])), i, j) for i in range(150) for j in range(i + 1, 150)
    )
    assert whole == brute
    with mp.workdps(40):
        assert whole[0] == pytest.approx(float(_mp_angle(x[13], x[97])), rel=1e-10)


def test_min_angle_of_unit_rows_uses_the_chord(rng):
    # Unit rows with a known angle theta: the angle is 2 asin(|u - v| / 2).
    u = rng.standard_normal(4)
    u /= np.linalg.norm(u)
    for theta in (1e-12, 1e-9, 1e-5, 0.5, 3.0, math.pi - 1e-7):
        v = _rotate_towards(u, rng.standard_normal(4), theta)
        with mp.workdps(40):
            ref = float(_mp_angle(u, v))
        assert float(pair_angles(u, v)) == pytest.approx(ref, rel=1e-12)


def test_strict_separation_names_the_identical_or_colinear_rows():
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [4.0, 0.0, 1.0], [2.0, 4.0, 6.0]])
    assert min_pairwise_angle(x) == 0.0  # row 3 = 2 * row 0: the same direction
    with pytest.raises(ValueError, match="rows 0 and 3 point in the same direction"):
        min_pairwise_angle(x, strict=True)
    y = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [-0.5, 1.0, -2.0]])
    assert min_pairwise_angle(y, strict=True) > 0.5
    assert max_abs_cosine(y) == 1.0
    with pytest.raises(ValueError, match=r"rows 1 and 2 are colinear \(opposite directions"):
        max_abs_cosine(y, strict=True)
    with pytest.raises(ValueError, match="rows 0 and 1 point"):
        min_pairwise_angle(np.array([[1.0, 0.0], [1.0, 1e-9]]), strict=True, atol=1e-6)


@pytest.mark.parametrize(
    "x,match",
    [
        ([[1.0, 0.0], [np.inf, 1.0]], "NaN or inf at row 1, column 0"),
        ([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], "row 1 is the zero vector"),
        ([[1.0, 0.0]], "at least 2 rows"),
    ],
)
def test_separation_rejects_bad_data_naming_the_row(x, match):
    with pytest.raises(ValueError, match=match):
        min_pairwise_angle(np.array(x))


def test_delta_grid_puts_the_bound_at_its_targets():
    delta = delta_grid(50, 10, 1e-3, 5.0, 6)
    bound = union_bound_close_pair(50, 10, delta).raw
    targets = np.union1d(np.geomspace(1e-3, 5.0, 6), [0.5, 1.0])
    np.testing.assert_allclose(bound, targets, rtol=1e-9)
    # Few pairs in low dimension: the largest targets lie past pi/2, where the grid stops.
    assert delta_grid(3, 2, 1e-3, 5.0, 6).max() == pytest.approx(math.pi / 2, abs=1e-9)


def test_comparison_counts_hits_and_tests_them_exactly():
    # Ten trials whose smallest angles are known: three below delta = 0.1 (five to colinearity).
    n, d, delta = 4, 3, np.array([0.1])
    min_angle = np.array([0.05, 0.08, 0.09, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    colinear_angle = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.2, 0.3, 0.4, 0.5, 0.6])
    rows = compare_with_monte_carlo(n, d, delta, min_angle, colinear_angle)
    close, colinear = rows
    assert (close["event"], close["mc_count"], close["mc"], close["trials"]) == ("close", 3, 0.3, 10)
    assert colinear["mc_count"] == 5
    b = 6 * (1 - math.cos(0.1)) / 2  # 6 pairs, F_3(delta) = (1 - cos delta) / 2
    assert close["bound"] == pytest.approx(b, rel=1e-12)
    # P(Bin(10, b) >= 3), summed exactly.
    tail = 1 - sum(mpmath.binomial(10, k) * mpmath.mpf(b) ** k * (1 - mpmath.mpf(b)) ** (10 - k) for k in range(3))
    assert close["binom_p_value"] == pytest.approx(float(tail), rel=1e-9)
    assert close["mc_se"] == pytest.approx(math.sqrt(0.3 * 0.7 / 10))
    assert close["exceeds_4se"] == (0.3 > b + 4 * close["mc_se"])
    stats = comparison_statistics(rows)
    assert stats["cells"] == 2 and stats["tight"]["cells"] == 0 and stats["near_one"]["cells"] == 0
    assert stats["exceed_exact"] == sum(r["binom_p_value"] < 3.167e-5 for r in rows)
