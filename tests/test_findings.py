"""One script, two datasets: the MNIST experiments are variants, and the summaries' findings follow the numbers."""

import numpy as np
import pytest

from ntkdepth.config import ConfigError, from_mapping
from ntkdepth.experiments import discover, variant
from ntkdepth.reporting import as_numbers, markdown_table, table, table_column


def _module(name):
    return discover()[name].module


@pytest.mark.parametrize("name, base", [("fig5", "fig4"), ("fig6-mnist", "fig6"), ("fig7-mnist", "fig7")])
def test_the_mnist_names_run_their_base_script_with_dataset_mnist(name, base):
    variant_module, base_module = _module(name), _module(base)
    assert variant_module.run is base_module.run
    assert variant_module.Config().dataset == "mnist" and base_module.Config().dataset == "sphere"


def test_a_variant_replaces_defaults_and_keeps_help_and_bounds():
    config, _, _ = variant("fig4", dataset="mnist", n=50)
    assert (config().dataset, config().n, config().depth) == ("mnist", 50, _module("fig4").Config().depth)
    with pytest.raises(ConfigError, match="n: 1 is below the minimum 2"):
        from_mapping(config, {"n": 1})
    with pytest.raises(ConfigError, match="'ball' is not one of"):
        from_mapping(config, {"dataset": "ball"})
    with pytest.raises(ConfigError, match=r"has no setting\(s\) \['widht'\]"):
        variant("fig4", widht=3)


def _fig7_finding(per_n):
    fig7 = _module("fig7")
    config = fig7.Config(ns=list(per_n), max_depth=3)
    curves = list(per_n.values())  # [n, depth]
    results = {"dataset": "sphere", "dim": 5, "depths": [1, 2, 3], "median_correlation_depth1": 0.0,
               "n_greater_than_d": [n for n in per_n if n > 5],
               "lambda_min": {"mean": curves, "min": curves, "max": curves}}
    return fig7._finding(config, results)


def test_fig7_finding_states_what_its_numbers_show():
    good = _fig7_finding({10: [0.1, 0.3, 0.5], 20: [0.05, 0.2, 0.4]})
    assert "increases with depth for every n" in good and "larger n lowers every curve" in good
    falling = _fig7_finding({10: [0.1, 0.3, 0.2], 20: [0.05, 0.2, 0.4]})
    assert "does not increase monotonically" in falling
    crossing = _fig7_finding({10: [0.1, 0.3, 0.5], 20: [0.05, 0.35, 0.4]})
    assert "larger n does not lower every curve" in crossing


def _fig6_finding(norm_t, norm_inf):
    fig6 = _module("fig6")
    config = fig6.Config(ns=[10], times=[1.0])
    results = {"depths": [1, 5, 10], "lambda_min": [list(1 / np.asarray(norm_inf))],
               "norm_P_t": [[[v] for v in norm_t]], "norm_P_inf": [norm_inf]}  # [n, depth(, time)]
    return fig6._finding(config, results)


def test_fig6_finding_states_what_its_numbers_show():
    good = _fig6_finding([1.0, 0.9, 0.8], [50.0, 2.0, 1.4])
    assert "keeps |P_t| at most t" in good and ", falling towards" in good and "Depth stabilizes" in good
    bad = _fig6_finding([1.0, 1.2, 0.8], [1.4, 2.0, 50.0])
    assert "does not keep" in bad and "not falling" in bad and "stabilizes" not in bad


def test_fig4_finding_states_what_its_numbers_show():
    def row(depth, one_minus_rho, dev, same=None, other=None):
        return {"depth": depth, "median_one_minus_rho": one_minus_rho, "one_minus_rho_asymptote": 1e-3,
                "median_sigmadot": 0.99, "median_thetabar": 0.3, "max_abs_thetabar_minus_quarter": dev,
                "median_thetabar_same_digit": same, "median_thetabar_other_digit": other}

    def finding(rows):
        results = {"at_depth": rows, "median_thetabar_peak": {"depth": 1, "value": 0.3}}
        return _module("fig4")._finding(_module("fig4").Config(), results)

    good = finding([row(1, 0.5, 0.3, 0.45, 0.35), row(100, 1e-3, 5e-3, 0.30, 0.29)])
    assert "(within a factor 2" in good and "shrinks from 0.3" in good and "more slowly than rho" in good
    assert "depth shrinks the class structure" in good
    bad = finding([row(1, 0.5, 0.01, 0.45, 0.44), row(100, 5e-3, 0.02, 0.30, 0.1)])
    assert "(not within a factor 2" in bad and "does not shrink from 0.01" in bad
    assert "depth does not shrink the class structure" in bad


def test_results_read_back_from_json_give_their_numbers_back():
    t = table(["n", "onset"], [[1, "inf"], [2, 3.5], [3, "nan"]])
    onset = table_column(t, "onset")
    assert onset[0] == np.inf and onset[1] == 3.5 and np.isnan(onset[2])
    assert as_numbers({"a": ["-inf", "x", 2], "b": {"c": "nan"}})["a"][:2] == [-np.inf, "x"]


def test_a_markdown_table_has_a_rule_under_its_header_and_a_line_for_each_row():
    assert markdown_table(["measure", "n = 64"], [["aggregate", "0.5"], ["kernel", ""]]) == [
        "| measure | n = 64 |", "|---|---|", "| aggregate | 0.5 |", "| kernel |  |"]
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [["x", "y"], ["z"]])


def test_fig2_finding_states_what_its_numbers_show():
    fig2 = _module("fig2")
    config = fig2.Config(depth=1000)
    fit = {"log_a": 0.38, "log_b": 1.0, "log_max_rel": 1e-4, "power_p": 0.9, "power_max_rel": 1e-2,
           "better": "log"}
    law = {"C": 3.0, "q": 0.5, "range_one_minus_rho": [1e-4, 1e-2], "max_rel": 1e-3, "theta_onset": 4.2}
    last = {"depth": 1000, "L2_one_minus_rho_over_9pi2_2": [0.9, 0.95], "thetabar_minus_quarter": [1e-3, 2e-3]}

    def finding(step_ratio):
        fits = [{"fit": {**fit, "step_ratio": step_ratio}, "predicted_b": 1.01}]
        return " ".join(fig2._finding(config, fits, law, last))

    assert "The convergence is sublinear" in finding(1 - 0.9 / 999)
    assert "not visibly sublinear" in finding(0.99)  # a geometric decay


def test_fig3_finding_states_what_its_numbers_show():
    fig3 = _module("fig3")
    checks = {"f(-1)": 0.0, "f'(1)": 1.0, "min of f(rho_(i+1)) - f(rho_i) on the grid": 1e-6,
              "f increasing on the grid": True, "min of f(rho) - rho on [-1, 1) (grid)": 1e-6,
              "f(rho) > rho on [-1, 1) (grid)": True, "max of f'(rho) on [-1, 1) (grid)": 0.99,
              "argmin of f(rho) - rho on [-1, 1) (grid)": 0.999}
    good = fig3._finding(checks)
    assert good.startswith("f is increasing") and "since f'(rho) < 1" in good and "climb to 1" in good
    bad = fig3._finding(checks | {"f increasing on the grid": False, "f(rho) > rho on [-1, 1) (grid)": False,
                                  "min of f(rho) - rho on [-1, 1) (grid)": -1e-3})
    assert bad.startswith("f is not increasing") and "not f(rho) > rho" in bad and "climb" not in bad


def test_fig8_finding_states_what_its_numbers_show():
    fig8 = _module("fig8")
    config = fig8.Config(ns=[10, 30], dim=5)

    def per_n(bounds):  # each measure at n = 10 and 30
        fixed = {"delta": 0.3, "first_stable": 2.0, "last_expressive": 30.0, "goldilocks_first": 2.0,
                 "goldilocks_last": 30.0}
        return {"depth_bound": np.array(bounds), **{k: np.full(2, v) for k, v in fixed.items()}}

    good = fig8._summary(config, per_n([9.0, 15.0]), -0.5)
    assert "the separation shrinks like n^-0.500" in good and "the depth bound grows from 9 " in good
    bad = fig8._summary(config, per_n([15.0, 9.0]), 0.1)
    assert "does not shrink" in bad and "does not grow" in bad
