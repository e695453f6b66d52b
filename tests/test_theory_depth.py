"""The depth axis (ntkdepth.theory.depth) against raw kernels, 40-digit recursions and closed forms."""

import math

import jax
import numpy as np
import pytest

from ntkdepth.data import sample_sphere
from ntkdepth.grids import trace_depths
from ntkdepth.kernels import correlation_trace, relu_kernel_trace
from ntkdepth.theory.depth import (RHO_DECAY_CONSTANT, ONSET_CONSTANT, ONSET_THETA_CONSTANT,
    continuum_onset, continuum_profile, decay_fit_table, decay_onset_depth, fit_decay,
    fit_decays_past_onset, fit_onset_law, iterations_to_reach, one_minus_rho_asymptote, rho_decay_ratio,
    limit_eigenvalues, limit_matrix, normalize_kernel, predicted_log_law, normalized_ntk_step)
import oracles


# --------------------------------------------------------------------------
# Definition 4 and Proposition 5 against the raw NTK.


def test_normalized_ntk_step_matches_raw_kernel_normalization(x64, rng):
    x = sample_sphere(rng, 6, 5)
    # An antipodal pair with an exact Gram entry (rho_1 = -1 to the last bit; a
    # correlation of -1 + 1e-16 has an angle pi - 1.5e-8, which would show at 1e-9).
    x[0], x[1] = np.eye(5)[0], -np.eye(5)[0]
    depths = [1, 2, 3, 7, 30, 150, 299]
    tr = relu_kernel_trace(x, depth=300, W_std=math.sqrt(2.0), b_std=0.0, get=("ntk", "rho"))
    ntk = np.asarray(tr.ntk)
    # Definition 4 by hand from the raw kernel: Theta / sqrt(Theta(x,x) Theta(x',x')).
    d = np.sqrt(np.einsum("lii->li", ntk))
    raw = ntk / (d[:, :, None] * d[:, None, :])
    assert np.isclose(raw[0, 0, 1], -1.0, atol=1e-12)
    for L in depths:
        step = np.asarray(normalized_ntk_step(raw[L - 1], np.asarray(tr.rho)[L - 1], L))
        np.testing.assert_allclose(step, raw[L], rtol=0, atol=1e-12, err_msg=f"L={L}")
    # The recursion without f' (or without the L weights) is visibly wrong: the check can fail.
    L = 7
    rho_next = np.asarray(tr.rho)[L]  # f(rho_L)
    off = ~np.eye(6, dtype=bool)
    assert np.max(np.abs((L * raw[L - 1] + rho_next) / (L + 1) - raw[L])[off]) > 1e-2
    assert np.max(np.abs((raw[L - 1] + rho_next) / 2 - raw[L])[off]) > 1e-2
    # normalize_kernel agrees with the hand computation, on a stack of depths.
    np.testing.assert_allclose(normalize_kernel(ntk), raw, rtol=0, atol=1e-14)


def test_normalize_kernel_rectangular_against_trace(x64, rng):
    x1, x2 = sample_sphere(rng, 4, 6), sample_sphere(rng, 3, 6)
    tr = relu_kernel_trace(x1, x2, depth=20, layers=[20], get=("ntk", "ntk_normalized"))
    got = normalize_kernel(tr.ntk[0], tr.ntk_diag1[0], tr.ntk_diag2[0])
    np.testing.assert_allclose(got, np.asarray(tr.ntk_normalized[0]), rtol=1e-13)
    # On the sphere with W^2 = 2, Theta^L(x, x) = 2L |x|^2 / n0 (Proposition 1).
    np.testing.assert_allclose(np.asarray(tr.ntk_diag1[0]), 2 * 20 / 6, rtol=1e-13)


@pytest.mark.parametrize(
    "args,message",
    [
        ((np.ones((2, 3)),), "rectangular"),
        ((np.ones((2, 3)), np.ones(2)), "rectangular"),
        ((np.array([[1.0, 0.5], [0.5, 0.0]]),), r"diag1\[1\] = "),
        ((np.ones((3, 3)), np.array([1.0, -2.0, 1.0])), r"diag1\[1\] = -2\.0"),
        ((np.ones((2, 3)), np.ones(2), np.array([1.0, 1.0, np.nan])), r"diag2\[2\]"),
        ((np.ones((2, 3)), np.ones(2), np.array([1.0, np.inf, 1.0])), r"diag2\[1\]"),
        ((np.ones((2, 3)), np.ones(3), np.ones(3)), "last axis 2"),
        ((np.ones(3),), "must be a matrix"),
    ],
)
def test_normalize_kernel_errors(args, message):
    with pytest.raises(ValueError, match=message):
        normalize_kernel(*args)


# --------------------------------------------------------------------------
# Theorem 2 and Lemma 1 at depth 1e4; Corollary 1.

DEEP = 10_000
CONVERGED = [-1.0, -0.5, 0.0, 0.5, 0.9, 0.95]


@pytest.fixture(scope="module")
def deep_trace():
    starts = CONVERGED + [0.99]
    with jax.enable_x64(True):
        tr = correlation_trace(np.array(starts), depth=DEEP, layers=[DEEP])
    return {r: (float(tr.ntk_normalized[0, k]), float(tr.one_minus_rho[0, k]))
            for k, r in enumerate(starts)}


def test_thetabar_and_one_minus_rho_asymptote_at_depth_1e4(deep_trace):
    for r in CONVERGED:
        tb, omr = deep_trace[r]
        assert abs(tb - 0.25) < 1e-3, (r, tb)
        assert abs(omr / float(one_minus_rho_asymptote(DEEP)) - 1) < 0.01, (r, omr)
    # Corollary 1: a pair that starts close (rho_1 = 0.99, onset ~ 31) is still
    # further from both limits at 1e4: 1.82x the 1e-3 bound, 1.45x the 1% tolerance.
    tb, omr = deep_trace[0.99]
    assert 1.5e-3 < abs(tb - 0.25) < 2e-3, tb
    assert 0.01 < 1 - omr / float(one_minus_rho_asymptote(DEEP)) < 0.02, omr
    assert abs(tb - 0.25) > 2 * (deep_trace[0.5][0] - 0.25)


def test_depth_1e4_values_agree_with_40_digit_recursion(deep_trace):
    for r in (-1.0, 0.95, 0.99):
        ref = oracles.correlation_recursion(r, [DEEP])
        tb, omr = deep_trace[r]
        assert abs(tb - ref["ntk_normalized"][0]) < 1e-12
        assert abs(omr / ref["one_minus_rho"][0] - 1) < 1e-9


def test_rho_decay_constant_is_nine_pi_squared_over_two():
    assert RHO_DECAY_CONSTANT == pytest.approx(44.41321980490211, rel=1e-15)
    np.testing.assert_allclose(one_minus_rho_asymptote([1, 10, 1000]),
                               [9 * np.pi**2 / 2, 9 * np.pi**2 / 200, 9 * np.pi**2 / 2e6])


# --------------------------------------------------------------------------
# The limit matrix.


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_limit_matrix_eigenvalues(n):
    m = limit_matrix(n)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m[~np.eye(n, dtype=bool)], 0.25)
    eig = np.linalg.eigvalsh(m)
    np.testing.assert_allclose(eig, limit_eigenvalues(n), atol=1e-12)
    np.testing.assert_allclose(eig[:-1], 0.75, atol=1e-12)
    assert eig[-1] == pytest.approx(0.75 + n / 4)


def test_normalized_ntk_of_five_points_approaches_limit_matrix(x64, rng):
    x = sample_sphere(rng, 5, 8)
    tr = relu_kernel_trace(x, depth=2000, layers=[10, 2000], get=("ntk",))
    shallow, deep = normalize_kernel(tr.ntk)
    assert np.max(np.abs(deep - limit_matrix(5))) < 0.01
    assert np.max(np.abs(shallow - limit_matrix(5))) > 0.02  # not yet at depth 10
    np.testing.assert_allclose(np.linalg.eigvalsh(deep), limit_eigenvalues(5), atol=0.05)


# --------------------------------------------------------------------------
# fit_decay.


def test_fit_decay_recovers_log_law_and_prefers_it():
    L = np.unique(np.round(np.geomspace(100, 1e6, 300)))
    e = (0.375 * np.log(L) + 1.3) / L
    fit = fit_decay(L, -e, window=(1e3, 1e6))  # the sign is ignored
    assert fit.log_a == pytest.approx(0.375, rel=1e-8)
    assert fit.log_b == pytest.approx(1.3, rel=1e-8)
    assert fit.log_max_rel < 1e-9
    assert fit.better == "log" and fit.power_max_rel > 1e-3
    assert 0.85 < fit.power_p < 1.0
    # Local exponent: -d log e / d log L = 1 - a / (a log L + b).
    assert fit.local_exponent == pytest.approx(1 - 0.375 / (0.375 * np.log(1e6) + 1.3), rel=1e-3)
    assert fit.window == (int(L[L >= 1e3][0]), 1_000_000)
    # Default window: the last two decades.
    assert fit_decay(L, e).window[0] >= 1e4


def test_fit_decay_recovers_power_law_and_step_ratio():
    L = np.concatenate([np.geomspace(10, 1e5, 50).round(), [1e5 + 1]])
    e = 2.5 * L**-0.8
    fit = fit_decay(L, e, window=(10, 2e5))
    assert fit.power_c == pytest.approx(2.5, rel=1e-10)
    assert fit.power_p == pytest.approx(0.8, rel=1e-10)
    assert fit.better == "power" and fit.log_max_rel > 1e-2
    # Definition 7 from consecutive depths: e(L+1)/e(L) = (L/(L+1))^0.8.
    assert fit.step_ratio_depth == 100_000
    assert fit.step_ratio == pytest.approx((1e5 / (1e5 + 1)) ** 0.8, abs=1e-13)


def test_fit_decay_errors():
    L = np.arange(1, 11)
    with pytest.raises(ValueError, match="same length"):
        fit_decay(L, np.ones(9))
    with pytest.raises(ValueError, match="increasing"):
        fit_decay(L[::-1], np.ones(10))
    with pytest.raises(ValueError, match="need at least 3"):
        fit_decay(L, np.ones(10), window=(9, 10))
    with pytest.raises(ValueError, match="nonzero"):
        fit_decay(L, np.r_[np.ones(9), 0.0], window=(1, 10))


def test_measured_decay_follows_log_law_with_slope_three_eighths(x64):
    """The rate derived in the module docstring, checked on the recursion to depth 1e5."""
    starts = np.array([-1.0, 0.5, 0.99])
    layers = np.unique(np.round(np.geomspace(1, 1e5, 300)).astype(int))
    tr = correlation_trace(starts, depth=100_000, layers=layers)
    e = np.asarray(tr.ntk_normalized) - 0.25
    pred = predicted_log_law(tr.one_minus_rho, layers)
    for k in range(len(starts)):
        fit = fit_decay(layers, e[:, k], window=(3e3, 1e5))
        assert fit.log_a == pytest.approx(3 / 8, rel=0.01), (starts[k], fit)
        assert fit.log_b == pytest.approx(pred["b"][k], abs=0.03), (starts[k], fit)
        assert fit.better == "log" and fit.log_max_rel < 1e-3
        assert 0.999985 < fit.step_ratio < 1.0  # Definition 7: the ratio tends to 1


# --------------------------------------------------------------------------
# Corollary 1: the onset of the decay.


def _onset_by_hand(rho1, depth):
    with jax.enable_x64(True):
        tb = np.asarray(correlation_trace(np.array([rho1]), depth=depth).ntk_normalized)[:, 0]
    dev = np.abs(tb - 0.25)
    peak = int(np.argmax(dev))
    after = np.nonzero(dev[peak + 1:] <= dev[peak] / 2)[0]
    return peak + 2 + after[0] if after.size else np.inf


def test_decay_onset_depth_matches_its_definition_and_scales():
    omr = np.array([2.0, 1.0, 0.7, 1e-2, 1e-4, 3e-6])
    got = decay_onset_depth(1.0 - omr, dense_until=64, ratio=1.01)  # exercises the refinement
    for r, o in zip(1.0 - omr, got.onset):
        assert o == _onset_by_hand(r, got.max_depth), r
    assert got.onset[0] == 2 and got.peak_depth[0] == 1
    # Near rho_1 = 1: onset ~ 4.2064 / theta_1 ~ 2.9744 (1 - rho_1)^(-1/2).
    theta = 2 * np.arcsin(np.sqrt(omr[-1] / 2))
    assert got.onset[-1] * theta == pytest.approx(ONSET_THETA_CONSTANT, rel=1e-3)
    assert got.onset[-1] * np.sqrt(omr[-1]) == pytest.approx(ONSET_CONSTANT, rel=1e-3)
    assert ONSET_THETA_CONSTANT == pytest.approx(4.20639, rel=1e-5)
    # rho_1 = 1 never decays.
    one = decay_onset_depth([1.0, 0.9], max_depth=300)
    assert np.isinf(one.onset[0]) and one.peak_deviation[0] == pytest.approx(0.75)


def test_fit_onset_law_finds_inverse_square_root():
    omr = np.geomspace(1e-7, 1e-3, 9)
    onset = decay_onset_depth(1.0 - omr).onset
    law = fit_onset_law(omr, onset, max_one_minus_rho=1e-3)
    assert law.q == pytest.approx(0.5, abs=0.005)
    assert law.C == pytest.approx(ONSET_CONSTANT, rel=0.02)
    assert law.max_rel < 0.01
    with pytest.raises(ValueError, match="need at least 3"):
        fit_onset_law(omr, onset, max_one_minus_rho=1e-7)


def test_continuum_profile_matches_recursion_near_one(x64):
    omr = 1e-6
    tr = correlation_trace(np.array([1.0 - omr]), depth=20_000)
    L = np.arange(1, 20_001)
    err = np.abs(np.asarray(tr.ntk_normalized)[:, 0] - continuum_profile(L, omr))
    assert err.max() < 1e-4
    # ... and it is a statement about rho_1 near 1 only.
    tr = correlation_trace(np.array([0.5]), depth=100)
    assert np.max(np.abs(np.asarray(tr.ntk_normalized)[:, 0]
                         - continuum_profile(np.arange(1, 101), 0.5))) > 0.05


def test_fit_decays_past_onset_fits_each_window_and_skips_short_ones():
    L = np.unique(np.round(np.geomspace(1, 1e5, 400)))
    b = np.array([1.3, 4.0])
    dev = (0.375 * np.log(L)[:, None] + b) / L[:, None]  # [depths, 2 pairs]
    fits = fit_decays_past_onset(L, dev, [0.0, 0.9], [3.0, 2000.0], b, fit_decades=2.0, after_onset=20.0)
    # Pair 0: the last two decades (onset x 20 = 60 < 1e3); its law is recovered exactly.
    assert fits[0]["fit"]["window"][0] == int(L[L >= 1e3][0])
    assert fits[0]["fit"]["log_a"] == pytest.approx(0.375, rel=1e-8)
    assert fits[0]["fit"]["log_b"] == pytest.approx(1.3, rel=1e-8)
    # Pair 1: 20 x onset = 4e4 leaves less than half a decade below 1e5.
    assert fits[1]["fit"] is None and "less than half a decade" in fits[1]["skipped"]
    columns, rows = decay_fit_table(fits)
    assert len(rows) == 2 and all(len(r) == len(columns) for r in rows)
    assert dict(zip(columns, rows[0]))["log_a"] == fits[0]["fit"]["log_a"]
    assert dict(zip(columns, rows[1]))["predicted_b"] == 4.0 and rows[1][4] is None


def test_rho_decay_ratio_and_iterations_against_a_plain_loop():
    def f(rho):  # Definition 5, written out
        return (math.sqrt(1 - rho * rho) + (math.pi - math.acos(rho)) * rho) / math.pi

    starts, depth = [-1.0, 0.0, 0.5], 200
    with jax.enable_x64(True):
        trace = correlation_trace(np.array(starts), depth=depth)
    counts = iterations_to_reach(trace.one_minus_rho, 1e-2)
    for j, rho in enumerate(starts):
        steps = 0
        while 1 - rho >= 1e-2:
            rho, steps = f(rho), steps + 1
        assert counts[j] == steps
    assert iterations_to_reach(trace.one_minus_rho, 1e-9).tolist() == [-1, -1, -1]  # not within 200
    L = np.arange(1, depth + 1)
    np.testing.assert_allclose(rho_decay_ratio(L, trace.one_minus_rho),
                               np.asarray(trace.one_minus_rho) / one_minus_rho_asymptote(L)[:, None], rtol=1e-14)


def test_continuum_onset_is_the_constant_over_the_angle():
    x = np.array([1e-8, 1e-4, 0.5, 2.0])
    expected = [ONSET_THETA_CONSTANT / math.acos(1 - v) for v in x[1:]]
    np.testing.assert_allclose(continuum_onset(x)[1:], expected, rtol=1e-12)
    # Near rho_1 = 1 (where acos(1 - x) loses its digits): 2.974 (1 - rho_1)^(-1/2).
    assert continuum_onset(x)[0] == pytest.approx(ONSET_CONSTANT * 1e4, rel=1e-8)


def test_trace_depths_keep_every_decade_and_the_last_two_depths():
    depths = trace_depths(12_345, 20)
    assert {1, 10, 100, 1000, 10_000, 12_344, 12_345} <= set(depths.tolist())
    assert np.all(np.diff(depths) > 0) and depths[-1] == 12_345
    with pytest.raises(ValueError, match="at least 2"):
        trace_depths(1, 5)
