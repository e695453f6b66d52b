"""The width experiments' summaries state what their numbers show (Table 1, width-vs-kernel)."""

from ntkdepth.empirical import DRIFT_MEASURES
from ntkdepth.experiments import discover


def _module(name):
    return discover()[name].module


def _table1_summary(ntk_exponents, mup_exponent):
    table1 = _module("table1")
    config = table1.Config(widths=[64, 256])
    cells = {"mean": [0.1, 0.1], "sd": [0.01, 0.01]}  # at each of the widths
    fit = lambda e: {"exponent": e, "prefactor": 1.0, "stderr": None, "widths": [64, 256]}
    results = {
        "vocabulary": {"pairs": 1000},
        "table": {par: {m: cells for m in DRIFT_MEASURES} for par in ("ntk", "mup")},
        "exponents": {"ntk": {m: fit(ntk_exponents.get(m, -0.5)) for m in DRIFT_MEASURES},
                      "mup": {m: fit(mup_exponent) for m in DRIFT_MEASURES}},
        "kernel_prediction": {"aggregate_mean_over_eval_tokens": 0.1, "per_neuron_mean_times_sqrt_n": 0.8,
                              "at_width": {"per_neuron_mean": [0.1, 0.05], "per_neuron_max": [0.5, 0.3]}},
        "final_loss": {"ntk": [0.6, 0.5], "mup": [0.45, 0.4]},
    }
    return table1._summary(config, results)


def test_table1_finding_states_what_its_exponents_show():
    lazy = _table1_summary({"aggregate": 0.05, "per_neuron_mean": -0.45}, 0.25)
    assert "the layer as a whole stays put while each unit's drift shrinks" in lazy
    assert "unlike the NTK network, its units move more, not less, as it widens." in lazy
    early = _table1_summary({"aggregate": -1.5, "per_neuron_mean": -1.9}, -1.4)
    assert "these widths are not yet in the asymptotic regime" in early
    assert "at these widths its units still move less as it widens." in early
    assert "move more, not less" not in early


def _width_vs_kernel_summary(drift, intercept, ntk_change):
    wvk = _module("width-vs-kernel")
    config = wvk.Config(widths=[256, 1024])
    errors = {k: {"mean": [0.2, 0.1], "sd": [0.01, 0.01]} for k in wvk.ERRORS}  # at each of the widths
    errors["ntk_change"] = {"mean": [0.2, ntk_change], "sd": [0.01, 0.0]}
    results = {
        "relative_errors": errors,
        "exponents": {k: {"exponent": -0.5, "prefactor": 1.0, "stderr": None} for k in wvk.ERRORS},
        "aggregate_drift": {"mean": drift, "sd": [0.1, 0.1]},
        "drift_extrapolation": {"intercept": intercept, "slope_in_inverse_sqrt_width": 1.0},
        "drift_kernel_prediction": {"predicted_mean": [1.0, 1.0], "measured_over_predicted": [1.0, 1.0]},
    }
    return wvk._summary(config, results)


def test_width_vs_kernel_drift_finding_states_what_its_numbers_show():
    lazy = _width_vs_kernel_summary([1.3, 1.2], 1.1, 0.004)
    assert "extrapolates to 1.1 at infinite width: it does not vanish, although the NTK barely moves." in lazy
    moving = _width_vs_kernel_summary([1.3, 1.2], 1.1, 0.2)
    assert "it does not vanish, and the NTK moves by 20.00%." in moving
    vanishing = _width_vs_kernel_summary([0.5, 0.2], 0.01, 0.004)
    assert "these widths do not show a drift that stays at infinite width." in vanishing
    assert "does not vanish" not in vanishing


def _features_summary(change_spearman, change_add, baseline_spearman=0.39):
    feats = _module("table1-features")
    config = feats.Config(widths=[256, 1024])
    cell = lambda v: {"mean": [0.0, v], "sd": [0.01, 0.01]}  # noqa: E731 (at each of the widths)
    scores = {par: {rep: {"spearman": cell(change_spearman if rep == "change" else 0.01),
                          "add": cell(change_add if rep == "change" else 0.0), "mul": cell(0.0)}
                    for rep in feats.REPRESENTATIONS} for par in ("ntk", "mup")}
    record = {"path": "/data/x", "bytes": 10, "md5": "0" * 32, "kind": "a file"}
    results = {
        "scores": scores, "agreement": {"ntk": cell(0.6)}, "mean_cosine": {"ntk": cell(0.3)},
        "drift": {"ntk": [0.2, 0.2], "mup": [0.2, 0.5]}, "time": 50.0, "chance": 1 / 2997,
        "seeds_by_width": [2, 2], "coverage": {"pairs": 102, "pairs_total": 353, "questions": 873,
                                               "questions_total": 19544, "vocabulary": 3000},
        "data": {"text8": {**record, "pairs": 1000, "words_used": 500}, "word_pairs": record, "analogies": record},
        "baseline": {"spearman": baseline_spearman, "add": 0.14, "mul": 0.13},
        "kernel": {"spearman": -0.04, "add": 0.01, "mul": 0.01, "mean_cosine": 0.4},
    }
    return feats._summary(config, results)


def test_table1_features_finding_states_what_its_scores_show():
    # 102 pairs: unrelated rankings stay within 2 / sqrt(101) = 0.20; 873 questions at chance 1/2997
    # expect 0.29 hits, and p = 0.01 needs 3.
    none = _features_summary(0.05, 1 / 873)
    assert none.count("no similarity signal beyond the noise of unrelated rankings") == 2
    assert none.count("analogies at chance (fewer than the 3 hits that p = 0.01 needs)") == 2
    assert "which the features' change does not pick up at these widths." in none
    some = _features_summary(0.35, 10 / 873)
    assert some.count("a similarity signal beyond the noise of unrelated rankings") == 2
    assert some.count("analogies above chance (at least 3 hits needed at p = 0.01)") == 2
    assert "and the features' change picks up part of it." in some
    assert "the change is mostly one direction" not in some  # the kernel's mean cosine is 0.4
