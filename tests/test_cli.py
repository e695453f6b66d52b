"""The ntkdepth command: listing, presets, validation, outputs, and resuming."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ntkdepth.cli import main
from ntkdepth.config import ConfigError, from_mapping, parse_overrides
from ntkdepth.experiments import discover


def test_list_shows_fig4_with_its_presets(capsys):
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("fig4"))
    assert "[smoke, cpu, paper]" in line


def test_every_preset_of_every_experiment_validates():
    for exp in discover().values():
        # The three standard presets first; further ones (e.g. table2's n8000) after them.
        assert exp.presets[:3] == ["smoke", "cpu", "paper"], exp.name
        for preset in exp.presets:
            exp.config(preset)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "nope"], "unknown experiment 'nope'; experiments: ["),
        (["run", "fig4", "--preset", "huge"], "no preset 'huge'; presets: ['smoke', 'cpu', 'paper']"),
        (["run", "fig4", "--preset", "smoke", "--set", "dept=3"], "unknown key(s) ['dept']"),
        (["run", "fig4", "--preset", "smoke", "--set", "depth=abc"], "depth: expected an integer"),
        (["run", "fig4", "--preset", "smoke", "--set", "n=1"], "n: 1 is below the minimum 2"),
        (["run", "fig4", "--preset", "smoke", "--set", "dataset='ball'"], "is not one of"),
        (["run", "fig4", "--preset", "smoke", "--set", "depth"], "--set expects key=value"),
        (["run", "table1", "--preset", "smoke", "--set", "parameterizations=['meanfield']"],
         "'meanfield' is not one of ['ntk', 'mup', 'standard']"),
        (["run", "table1", "--preset", "smoke", "--set", "widths=[64, 0]"], "widths: 0 is below the minimum 1"),
        (["run", "table1", "--preset", "smoke", "--set", "text8_path='/nonexistent/text8'"],
         "/nonexistent/text8 does not exist"),
    ],
)
def test_bad_requests_are_clear_errors(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_width_that_does_not_fit_is_refused_before_training(capsys, tmp_path):
    # A small corpus of its own: the check must not depend on where text8 is.
    rng = np.random.default_rng(0)
    vocab = [a + b for a in "abcdefghij" for b in "abcdefghij"]
    corpus = tmp_path / "text8"
    corpus.write_text(" ".join(rng.choice(vocab, size=5000)))
    argv = ["run", "table1", "--preset", "smoke", "--set", "widths=[64, 400000]",
            "--set", f"text8_path='{corpus}'", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "width 400000 will not fit in memory" in capsys.readouterr().err


def test_out_must_be_a_writable_folder(capsys, tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    base = ["run", "fig4", "--preset", "smoke", "--out"]
    assert main(base + [str(a_file)]) == 2
    assert f"--out {a_file} is a file, not a folder" in capsys.readouterr().err
    assert main(base + [str(a_file / "sub")]) == 2
    assert f"lies under {a_file}, which is a file" in capsys.readouterr().err
    assert a_file.read_text() == "not a folder"
    if os.geteuid() == 0:  # root writes through permissions: a read-only file system instead
        if not os.path.isdir("/sys"):
            pytest.skip("no read-only /sys to write to")
        read_only = "/sys/ntkdepth-out"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        read_only = str(locked / "out")
    assert main(base + [read_only]) == 2
    assert f"--out {read_only} cannot be written" in capsys.readouterr().err


def test_python_dash_m_ntkdepth_is_the_command():
    out = subprocess.run(
        [sys.executable, "-m", "ntkdepth", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert any(l.startswith("fig4 ") and "[smoke, cpu, paper]" in l for l in out.splitlines()), out
    bad = subprocess.run([sys.executable, "-m", "ntkdepth", "run", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown experiment 'nope'" in bad.stderr


_IMPORTED = "sorted(m for m in sys.modules if m.startswith('ntkdepth_experiment_'))"


def test_run_imports_only_the_experiment_asked_for_and_list_none():
    code = (
        "import sys\n"
        "from ntkdepth.cli import main\n"
        "assert main(['list']) == 0\n"
        f"print({_IMPORTED})\n"
        "assert main(['run', 'fig3', '--preset', 'smoke', '--set', 'nokey=1']) == 2\n"
        f"print({_IMPORTED})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["[]", "['ntkdepth_experiment_fig3']"], out.stdout


def test_names_read_without_running_match_the_scripts():
    for name, exp in discover().items():
        assert exp.module.NAME == name and exp.module.DESCRIPTION == exp.description


def test_unknown_key_error_lists_the_known_keys():
    schema = discover()["fig4"].module.Config
    with pytest.raises(ConfigError, match=r"has: \[.*'depth'.*'n'"):
        from_mapping(schema, {"widht": 3})


def test_overrides_are_read_as_toml_values():
    assert parse_overrides(["a=3", "b=[1, 2]", "c=abc", "d=true", "e=1e-3"]) == {
        "a": 3, "b": [1, 2], "c": "abc", "d": True, "e": 1e-3,
    }


def _f(rho):
    return (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho) / np.pi


def test_fig4_smoke_writes_its_outputs_with_the_right_numbers(tmp_path):
    out = tmp_path / "fig4"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    for name in ("config.json", "results.json", "depth_stats.csv", "pairs.csv", "fig4.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "smoke" and config["config"]["depth"] == 50
    with open(out / "pairs.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_pair = {}
    for r in rows:
        by_pair.setdefault((r["group"], r["i"], r["j"]), {})[int(r["depth"])] = r
    for trace in by_pair.values():
        rho1 = float(trace[1]["rho"])
        # Depth 2 in closed form (Definition 5 and Proposition 5 with L = 1).
        assert math.isclose(float(trace[2]["rho"]), _f(rho1), rel_tol=1e-12, abs_tol=1e-14)
        fprime = (np.pi - np.arccos(rho1)) / np.pi
        assert math.isclose(float(trace[2]["sigmadot"]), fprime, rel_tol=1e-12)
        assert math.isclose(float(trace[2]["thetabar"]), (fprime * rho1 + _f(rho1)) / 2, rel_tol=1e-12, abs_tol=1e-14)
        # Lemma 1 and Theorem 2 directions at depth 50.
        assert float(trace[50]["rho"]) > 0.98
        assert abs(float(trace[50]["thetabar"]) - 0.25) < 0.1
    results = json.loads((out / "results.json").read_text())
    assert results["pairs_inside"] == 6 and results["pairs_with_x_star"] == 4
    assert "Finding:" in (out / "summary.md").read_text()


def test_a_rerun_reuses_finished_stages_and_a_new_config_does_not(tmp_path, capsys):
    out = tmp_path / "fig4"
    main(["run", "fig4", "--preset", "smoke", "--out", str(out)])
    stage = out / "stages" / "trace.npz"
    first = stage.stat().st_mtime_ns
    main(["run", "fig4", "--preset", "smoke", "--out", str(out)])
    assert stage.stat().st_mtime_ns == first
    main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"])
    assert stage.stat().st_mtime_ns != first
    assert np.load(stage)["rho"].shape[0] == 20


def test_results_json_is_strict_json_even_with_inf_and_nan(tmp_path):
    from ntkdepth.runs import RunDir

    run = RunDir(tmp_path, experiment="x", preset="smoke", config={"a": 1})
    run.write_json("r.json", {"inf": np.inf, "arr": np.array([1.0, np.nan]), "flag": np.bool_(True)})
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}")) == {
        "inf": "inf", "arr": [1.0, "nan"], "flag": True,
    }


def test_report_names_a_folder_that_is_not_a_finished_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path} has no config.json: not the folder of a finished run" in capsys.readouterr().err


def test_a_script_without_report_is_named_with_the_protocol(tmp_path):
    from ntkdepth.config import ConfigError
    from ntkdepth.experiments import Experiment

    script = tmp_path / "half.py"
    script.write_text('NAME = "half"\nDESCRIPTION = "d"\nclass Config: pass\ndef run(config, out): return {}\n')
    with pytest.raises(ConfigError, match=r"half.py defines no report: an experiment script defines"):
        Experiment("half", "d", script, tmp_path).module


def test_report_draws_what_results_json_says(tmp_path):
    out = tmp_path / "fig4"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    results["at_depth"][-1]["median_one_minus_rho"] = 0.123456  # not what was computed
    (out / "results.json").write_text(json.dumps(results))
    (out / "summary.md").unlink()
    assert main(["report", str(out)]) == 0
    assert "| 1.235e-01 |" in (out / "summary.md").read_text()
