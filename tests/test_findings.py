"""One script, two datasets: the MNIST experiments are variants, and the summaries' findings follow the numbers."""

import numpy as np
import pytest

from ntkdepth.config import ConfigError, from_mapping
from ntkdepth.experiments import discover, variant
from ntkdepth.reporting import table


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
    rows = [[n, d + 1, v, v, v] for n, curve in per_n.items() for d, v in enumerate(curve)]
    results = {"dataset": "sphere", "dim": 5, "depths": [1, 2, 3], "median_correlation_depth1": 0.0,
               "n_greater_than_d": [n for n in per_n if n > 5],
               "tables": {"lambda_min.csv": table(["n", "depth", "mean", "min", "max"], rows)}}
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
    per_n = {"10": {"lambda_min": list(1 / np.asarray(norm_inf)), "norm_P_t": {"1": norm_t},
                    "norm_P_inf": norm_inf}}
    return fig6._finding(config, {"depths": [1, 5, 10], "per_n": per_n})


def test_fig6_finding_states_what_its_numbers_show():
    good = _fig6_finding([1.0, 0.9, 0.8], [50.0, 2.0, 1.4])
    assert "keeps |P_t| at most t" in good and ", falling towards" in good and "Depth stabilizes" in good
    bad = _fig6_finding([1.0, 1.2, 0.8], [1.4, 2.0, 50.0])
    assert "does not keep" in bad and "not falling" in bad and "stabilizes" not in bad


def test_fig4_finding_states_what_its_numbers_show():
    def row(depth, one_minus_rho, dev, same=None, other=None):
        return {"depth": depth, "median_one_minus_rho": one_minus_rho, "lemma1_one_minus_rho": 1e-3,
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
