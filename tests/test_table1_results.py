"""Table 1's results hold arrays aligned with the widths; runs written before they did still redraw.

``tests/data/table1-before-arrays`` is a smoke run whose results keyed every per-width value by
``str(width)``; the two benchmark runs are older still (no curves, no fitted range, one without a
kernel prediction). Each is redrawn from its ``config.json`` and ``results.json`` alone, and its
table must show the numbers its results hold.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ntkdepth.cli import main
from ntkdepth.empirical import DRIFT_MEASURES, drift_against_prediction
from ntkdepth.experiments import discover
from ntkdepth.models import PARAMETERIZATION_NAMES

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "smoke, per-width keys": ROOT / "tests" / "data" / "table1-before-arrays",
    "cpu preset, no curves": ROOT / "benchmarks" / "results" / "cpu-2core" / "table1",
    "paper preset, no kernel prediction": ROOT / "benchmarks" / "results" / "h200-jax0.11.2" / "table1-paper-uncentered",
}


def _old_run(source: Path, folder: Path) -> tuple[dict, list[int]]:
    if not source.is_dir():
        pytest.skip(f"{source} is not in this checkout")
    folder.mkdir()
    for name in ("config.json", "results.json"):
        shutil.copy(source / name, folder / name)
    results = json.loads((source / "results.json").read_text())
    return results, json.loads((source / "config.json").read_text())["config"]["widths"]


@pytest.mark.slow  # draws Table 1's two figures for each run
@pytest.mark.parametrize("name", FOLDERS)
def test_a_run_keyed_by_width_strings_redraws_with_its_numbers(tmp_path, name):
    old, widths = _old_run(FOLDERS[name], tmp_path / "run")
    assert main(["report", str(tmp_path / "run")]) == 0
    md = (tmp_path / "run" / "table1.md").read_text()
    for par, by_measure in old["table"].items():
        for m, label in DRIFT_MEASURES.items():
            cells = " | ".join(f"{by_measure[m][str(w)]['mean']:.4g} ({by_measure[m][str(w)]['sd']:.2g})" for w in widths)
            assert f"| {label.replace('|', chr(92) + '|')} | {cells} |" in md, (par, m)
    summary = (tmp_path / "run" / "summary.md").read_text()
    for par, loss in old["final_loss"].items():
        assert f"{par} {loss[str(widths[-1])]:.4g}" in summary
    assert ("The kernel predicts" in summary) == bool(old.get("kernel_prediction"))
    # A record without center_output predates the setting: those runs trained f_theta itself.
    recorded = json.loads((FOLDERS[name] / "config.json").read_text())["config"]
    assert ("on the centered network" in summary) == recorded.get("center_output", False), name
    assert (tmp_path / "run" / "table1_scaling.png").stat().st_size > 0
    assert (tmp_path / "run" / "table1_steps.png").exists() == ("curves" in old)


def test_results_keyed_by_width_strings_become_arrays_aligned_with_the_widths(tmp_path):
    old, widths = _old_run(FOLDERS["smoke, per-width keys"], tmp_path / "run")
    table1 = discover()["table1"].module
    config = table1.Config(**json.loads((tmp_path / "run" / "config.json").read_text())["config"])
    new = table1._aligned_with_widths(config, old)
    for par, by_measure in old["table"].items():
        for m, by_width in by_measure.items():
            np.testing.assert_array_equal(new["table"][par][m]["mean"], [by_width[str(w)]["mean"] for w in widths])
            np.testing.assert_array_equal(new["table"][par][m]["sd"], [by_width[str(w)]["sd"] for w in widths])
        assert new["final_loss"][par] == [old["final_loss"][par][str(w)] for w in widths]
        for k in ("aggregate", "relative", "loss"):
            np.testing.assert_array_equal(new["curves"][par][k], [old["curves"][par][str(w)][k] for w in widths])
    # Results that already hold arrays pass through as they are.
    assert table1._aligned_with_widths(config, new) is new


def test_the_summary_leads_with_the_papers_rows_and_the_kernels_ratios(tmp_path):
    """The two largest widths' aggregate and per-neuron drift for each parameterization, then the NTK
    network's measured / predicted drift at every width with the power law of its gap."""
    old, widths = _old_run(FOLDERS["cpu preset, no curves"], tmp_path / "run")
    table1 = discover()["table1"].module
    config = table1.Config(**json.loads((tmp_path / "run" / "config.json").read_text())["config"])
    results = table1._aligned_with_widths(config, old)
    summary = table1._summary(config, results)
    rows = "\n".join(table1._paper_table(config, results))
    for par in old["table"]:
        for w in widths[-2:]:
            cell = old["table"][par]["aggregate"][str(w)]
            assert f"{cell['mean']:.4g} ({cell['sd']:.2g})" in rows
        assert f"{PARAMETERIZATION_NAMES[par]}, n = {widths[-1]:,}" in rows
    assert f"{widths[0]:,}" not in rows.split("\n")[0]  # only the two largest widths
    predicted = table1._predicted(config, results["kernel_prediction"])
    ratios = drift_against_prediction({m: results["table"]["ntk"][m]["mean"] for m in predicted}, predicted, widths,
                                      config.fit_min_width)
    agg = old["kernel_prediction"]["aggregate_mean_over_eval_tokens"]
    want = np.array([old["table"]["ntk"]["aggregate"][str(w)]["mean"] for w in widths]) / agg
    np.testing.assert_allclose(ratios["aggregate"]["ratio"], want, rtol=1e-12)
    per_neuron = old["kernel_prediction"]["per_neuron_mean_times_sqrt_n"] / np.sqrt(widths)
    np.testing.assert_allclose(ratios["per_neuron_mean"]["ratio"] * per_neuron,
                               [old["table"]["ntk"]["per_neuron_mean"][str(w)]["mean"] for w in widths], rtol=1e-12)
    fitted = np.array(widths) >= config.fit_min_width
    gap = np.abs(1 - want)[fitted]
    slope = np.polyfit(np.log(np.array(widths)[fitted]), np.log(gap), 1)[0]
    assert ratios["aggregate"]["exponent"] == pytest.approx(slope, rel=1e-9)
    assert f"| aggregate drift | {' | '.join(f'{v:.3f}' for v in want)} | {slope:+.2f} |" in summary
    assert summary.index("As in the paper's Table 1") < summary.index("Every measure and width")
