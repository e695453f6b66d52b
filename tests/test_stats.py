import numpy as np
import pytest

from ntkdepth.stats import fit_power_law, fit_range, mean_sd, power_law_fits, standard_error


def test_power_law_recovers_exponent_and_skips_nonpositive_series():
    x = np.array([10.0, 20.0, 40.0, 80.0])
    fits = power_law_fits(x, {"a": 3.0 * x**-0.5, "b": x - 10.0})
    assert set(fits) == {"a"}
    assert fits["a"]["exponent"] == pytest.approx(-0.5, rel=1e-12)
    assert fits["a"]["prefactor"] == pytest.approx(3.0, rel=1e-12)
    assert power_law_fits([10.0], {"a": [1.0]}) == {}
    assert fit_power_law(x[:2], x[:2] ** 2).as_dict()["stderr"] is None


def test_fit_range_keeps_the_points_at_or_above_the_floor_or_all_of_them():
    x = [64, 256, 1024, 4096]
    assert fit_range(x, 256).tolist() == [False, True, True, True]
    assert fit_range(x, 0).tolist() == [True] * 4
    # One point at or above the floor cannot carry a law: every point is kept.
    assert fit_range(x, 4096).tolist() == [True] * 4 and fit_range(x, 10**6).tolist() == [True] * 4


def test_mean_sd_and_standard_error_against_closed_forms():
    v = [1.0, 2.0, 4.0]
    mean, sd = mean_sd(v)
    assert mean == pytest.approx(7 / 3)
    assert sd == pytest.approx(np.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    assert standard_error(v) == pytest.approx(sd / np.sqrt(3))
    assert mean_sd([5.0]) == (5.0, 0.0) and standard_error([5.0]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        mean_sd([])
