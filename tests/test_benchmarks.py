"""The benchmarks' quick modes run, and what they compare agrees (timings themselves are not tested)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd=ROOT) -> str:
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_sweep_quick_trains_seeds_together_to_the_sequential_outputs():
    out = _run("benchmarks/bench_sweep.py", "--quick")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| sphere") or
            line.startswith("| text8")]
    assert len(rows) == 2, out  # sphere and text8 at width 64
    for row in rows:
        assert float(row[-1]) < 1e-5, row  # outputs rel. diff, vmapped seeds against one run each


def test_bench_predictor_quick_writes_its_numbers_with_the_environment(tmp_path):
    _run("benchmarks/bench_predictor.py", "--quick", "--out", str(tmp_path / "b.json"))
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["environment"]["backend"] == "cpu" and record["environment"]["cpu_count"] >= 1
    for r in record["predict"]:
        assert r["max_abs_diff_vs_nt_over_max"] < 1e-10
    for r in record["empirical_ntk"]:
        assert r["max_rel_diff_vs_mlp_ntk"] < 1e-5


@pytest.mark.slow
def test_bench_residual_quick_agrees_with_neural_tangents_and_writes_its_numbers(tmp_path):
    _run("benchmarks/bench_residual.py", "--quick", "--only", "every-depth", "--results-dir", str(tmp_path))
    record = json.loads((tmp_path / "bench_residual-quick.json").read_text())
    (row,) = record["rows"]
    assert row["depth"] == "1..10" and row["offdiag_err_vs_nt"] < 1e-10
