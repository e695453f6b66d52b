"""Theorem 3 tools: depth scans against direct computations, near points, the zone."""

import numpy as np
import pytest

from ntkdepth.data import sample_sphere
from ntkdepth.kernels import relu_ntk
from ntkdepth.theory import DepthScan, depth_scan, goldilocks_range, near_points, stopping_time


def test_near_points_lie_on_the_sphere_at_the_requested_angle(rng):
    x = sample_sphere(rng, 6, 4)
    y = near_points(rng, x, 0.01)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(2 * np.arcsin(np.linalg.norm(x - y, axis=1) / 2), 0.01, rtol=1e-10)


def test_depth_scan_matches_a_direct_computation(x64, rng):
    x = sample_sphere(rng, 15, 4)
    xt = near_points(rng, x[:3], 0.1)
    scan = depth_scan(x, xt, [1, 3, 40], times=[0.5, 5.0])
    for k, depth in enumerate([1, 3, 40]):
        # Thetabar from the raw NTK and its diagonal: an independent normalization.
        allx = np.vstack([x, xt])
        theta = np.asarray(relu_ntk(allx, depth=depth))
        d = np.sqrt(np.diag(theta))
        tb = theta / np.outer(d, d)
        lam = np.linalg.eigvalsh(tb[:15, :15])
        assert scan.lambda_min[k] == pytest.approx(lam[0], abs=1e-12)
        for i, t in enumerate([0.5, 5.0]):
            p = np.max(-np.expm1(-t * lam) / lam) if lam[0] > 1e-12 else t
            assert scan.projection_norm[k, i] == pytest.approx(p, rel=1e-9)
        np.testing.assert_allclose(scan.gap[k], np.max(np.abs(tb[15:, :15] - 0.25), axis=1), rtol=1e-12)
    # Depth lifts lambda_min and erodes the gap (Theorem 2).
    assert scan.lambda_min[2] > scan.lambda_min[1] > scan.lambda_min[0]
    assert np.all(scan.gap[2] < scan.gap[0])


def test_projection_norm_is_bounded_by_the_stopping_time(x64, rng):
    x = sample_sphere(rng, 40, 3)  # n > d: singular at depth 1
    scan = depth_scan(x, x[:2], [1, 2, 10, 100], times=[1.0, 10.0])
    assert np.all(scan.projection_norm <= np.array([1.0, 10.0]) * (1 + 1e-12))
    assert scan.projection_norm_inf[0] == np.inf or scan.projection_norm_inf[0] > 1e8


def test_stopping_time_and_its_errors():
    assert stopping_time(0.25, c=2.0, learning_rate=0.5) == pytest.approx(16.0)
    with pytest.raises(ValueError, match="lambda_min must be > 0"):
        stopping_time(0.0)


def test_goldilocks_range_intersects_stable_and_expressive_depths():
    scan = DepthScan(
        depths=np.array([1, 2, 5, 10, 50]),
        lambda_min=np.array([0.0, 0.05, 0.2, 0.4, 0.7]),
        lambda_max=np.ones(5), times=np.array([1.0]), projection_norm=np.ones((5, 1)),
        projection_norm_inf=np.ones(5),
        gap=np.array([[0.7, 0.6], [0.6, 0.5], [0.5, 0.4], [0.3, 0.2], [0.05, 0.01]]),
    )
    zone = goldilocks_range(scan, min_lambda=0.1, min_gap=0.2)
    assert zone["stable_depths"] == [5, 10, 50]
    assert zone["expressive_depths"] == [1, 2, 5, 10]
    assert zone["goldilocks_depths"] == [5, 10] and zone["range"] == (5, 10)
    assert goldilocks_range(scan, min_lambda=0.9, min_gap=0.2)["range"] is None
