"""Every experiment's smoke preset runs end to end and writes what a person expects."""

import json
import re
import shutil
from pathlib import Path

import pytest
from datasets import needs_mnist, needs_text8, needs_wordsim

from ntkdepth.cli import main
from ntkdepth.data.files import md5sum
from ntkdepth.data.mnist import MNIST_MD5
from ntkdepth.experiments import discover

# Experiments that read MNIST or text8 are skipped where the dataset is missing.
NEEDS = {"fig5": needs_mnist, "fig6-mnist": needs_mnist, "fig7-mnist": needs_mnist,
         "table2": needs_mnist, "table2-networks": needs_mnist, "table1": needs_text8,
         "depth-residual": needs_mnist, "table1-features": [needs_text8, needs_wordsim]}
EXPERIMENTS = [pytest.param(n, marks=NEEDS[n]) if n in NEEDS else n for n in sorted(discover())]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_preset_writes_config_results_figure_and_summary(name, tmp_path):
    out = tmp_path / name
    assert main(["run", name, "--preset", "smoke", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["preset"] == "smoke"
    results = json.loads((out / "results.json").read_text())
    if name in NEEDS:
        _assert_data_is_named(config, results, out)
    else:
        assert "data" not in config, "random points recorded as data files"
    assert list(out.glob("*.png")), "no figure"
    assert list(out.glob("*.csv")), "no table"
    summary = (out / "summary.md").read_text()
    assert "Finding" in summary
    assert not re.search(r"\bnan\b", summary, re.IGNORECASE), "a NaN reached the summary"
    _assert_redraw_reproduces(out, tmp_path)


def _assert_data_is_named(config, results, out):
    """config.json names every file the run read with its size and MD5 (as read from the disk now),
    whether it is the official file, and the summary names them too."""
    records = config["data"]
    for name, record in records.items():
        _assert_record_is_named(record, results["data"] if len(records) == 1 else results["data"][name], out)


def _assert_record_is_named(record, in_results, out):
    files = record.get("files") or [record]  # MNIST: images and labels; text8: one file
    summary = (out / "summary.md").read_text()
    for f in files:
        path = Path(f["path"])
        assert path.is_absolute() and f["bytes"] == path.stat().st_size
        assert f["md5"] == md5sum(path), path
        assert f"`{path}` ({f['bytes']:,} bytes, MD5 {f['md5']})" in summary
    assert isinstance(record["official"], bool)
    assert in_results == record
    if "split" in record:  # MNIST: the split and the images drawn from it
        assert record["split"] in record["splits_in_folder"] and sum(record["draws"]) > 0
        assert f"MNIST {record['split']} split ({record['split_images']:,} images" in summary
        official = all(f["md5"] == MNIST_MD5.get(Path(f["path"]).name) for f in files)
        assert record["official"] == official and ("(MD5 checked)" in summary) == official


def _assert_redraw_reproduces(out, tmp_path):
    """``ntkdepth report`` on a copy stripped of its tables, figures and summary writes them again."""
    copy = tmp_path / "redrawn"
    shutil.copytree(out, copy)
    drawn = [p.name for p in out.iterdir() if p.suffix in (".csv", ".png", ".md")]
    for name in drawn:
        (copy / name).unlink()
    assert main(["report", str(copy)]) == 0
    for name in drawn:
        assert (copy / name).exists(), f"{name} not redrawn"
        if not name.endswith(".png"):
            original = (out / name).read_text().replace(str(out), "FOLDER")
            assert (copy / name).read_text().replace(str(copy), "FOLDER") == original, name
