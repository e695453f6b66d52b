"""Every experiment's smoke preset runs end to end and writes what a person expects."""

import json
import re

import pytest
from datasets import needs_mnist, needs_text8

from ntkdepth.cli import main
from ntkdepth.experiments import discover

# Experiments that read MNIST or text8 are skipped where the dataset is missing.
NEEDS = {"fig5": needs_mnist, "fig6-mnist": needs_mnist, "fig7-mnist": needs_mnist,
         "table2": needs_mnist, "table1": needs_text8}
EXPERIMENTS = [pytest.param(n, marks=NEEDS[n]) if n in NEEDS else n for n in sorted(discover())]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_preset_writes_config_results_figure_and_summary(name, tmp_path):
    out = tmp_path / name
    assert main(["run", name, "--preset", "smoke", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["preset"] == "smoke"
    json.loads((out / "results.json").read_text())
    assert list(out.glob("*.png")), "no figure"
    assert list(out.glob("*.csv")), "no table"
    summary = (out / "summary.md").read_text()
    assert "Finding" in summary
    assert not re.search(r"\bnan\b", summary, re.IGNORECASE), "a NaN reached the summary"
