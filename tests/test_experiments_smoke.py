"""Every experiment's smoke preset runs end to end and writes what a person expects."""

import json
import re

import pytest

from ntkdepth.cli import main
from ntkdepth.experiments import discover

EXPERIMENTS = sorted(discover())


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
