"""Output folders: stages and caches carry their settings, a folder never mixes two runs."""

import json

import numpy as np
import pytest

from ntkdepth.cli import main
from ntkdepth.runs import RunDir
from ntkdepth.storage import DamagedFileError


def _results(out):
    return json.loads((out / "results.json").read_text())


def _arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if not k.startswith("__")}


def _snapshot(out):
    """Every file of a folder (stages and cache included) with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_stages_carry_their_settings_whatever_config_json_says(tmp_path, capsys):
    """A config.json claiming seed 1 over seed 0's stages: the stages are not reused."""
    out, fresh = tmp_path / "fig4", tmp_path / "fresh"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    seed0 = _arrays(out / "stages" / "trace.npz")
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(fresh), "--set", "seed=1"]) == 0
    (out / "config.json").write_bytes((fresh / "config.json").read_bytes())
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "seed=1"]) == 0
    seed1 = _arrays(out / "stages" / "trace.npz")
    assert not np.array_equal(seed1["rho"], seed0["rho"])
    for k, v in _arrays(fresh / "stages" / "trace.npz").items():
        np.testing.assert_array_equal(seed1[k], v)
    assert _results(out) == _results(fresh)
    # Without config.json nothing tells the run's files from others': the folder is refused.
    (out / "config.json").unlink()
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds 6 entries that no ntkdepth run wrote (depth_stats.csv, fig4.png" in err
    assert "stages/" in err and "choose an empty or new folder" in err
    assert _snapshot(out) == before


class Injected(RuntimeError):
    """Stands for any failure in the middle of a run."""


def test_a_failed_rerun_with_new_settings_leaves_the_previous_run_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "fig4"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    # A file the run did not write: the folder is refused, nothing touched.
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"]) == 2
    assert "holds 1 entry that no ntkdepth run wrote (notes.txt)" in capsys.readouterr().err
    assert _snapshot(out) == before
    (out / "notes.txt").unlink()
    before = _snapshot(out)

    def failing(self, text):
        raise Injected("after the results and figures, before the summary")

    monkeypatch.setattr(RunDir, "write_summary", failing)
    with pytest.raises(Injected):
        main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"])
    assert _snapshot(out) == before  # config, results, figures, stages: all of the first run
    monkeypatch.undo()

    # The same settings again: the new run resumes its finished stage, then replaces the old one.
    partial = tmp_path / ".fig4.partial"
    stage_time = (partial / "stages" / "trace.npz").stat().st_mtime_ns
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["depth"] == 20 and config["finished"]
    assert (out / "stages" / "trace.npz").stat().st_mtime_ns == stage_time
    assert np.load(out / "stages" / "trace.npz")["rho"].shape[0] == 20
    assert _results(out)["depth"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig4"]
    printed = capsys.readouterr().out
    assert f"outputs in {out}/" in printed and ".partial" not in printed


def test_a_swap_cut_short_is_completed_or_undone(tmp_path):
    out = tmp_path / "run"
    run = RunDir(out, experiment="x", preset="smoke", config={"a": 1})
    run.write_json("results.json", {"a": 1})
    run.finish()
    # Killed between the two renames of the swap: the previous run is back.
    out.rename(tmp_path / ".run.previous")
    out.mkdir()  # as the command's check that the folder can be written leaves it
    run = RunDir(out, experiment="x", preset="smoke", config={"a": 1})
    assert json.loads((out / "results.json").read_text()) == {"a": 1}
    assert not (tmp_path / ".run.previous").exists()


def test_a_damaged_config_json_is_named_and_nothing_replaced(tmp_path):
    """A run folder's config.json lists what the run wrote: unreadable, the folder is left alone."""
    out = tmp_path / "run"
    RunDir(out, experiment="x", preset="smoke", config={"a": 1}).finish()
    (out / "config.json").write_text('{"experiment": "x", "conf')
    before = _snapshot(out)
    with pytest.raises(DamagedFileError, match=r"config.json is damaged or incomplete .*which entries of .*"
                                               r"a run wrote is unknown.*delete it and run again"):
        RunDir(out, experiment="x", preset="smoke", config={"a": 2})
    assert _snapshot(out) == before
    (out / "config.json").unlink()
    run = RunDir(out, experiment="x", preset="smoke", config={"a": 2})
    stage = run.stage("s", lambda: {"v": np.arange(3)})
    run.finish()
    assert json.loads((out / "config.json").read_text())["config"] == {"a": 2}
    np.testing.assert_array_equal(stage["v"], np.arange(3))


def test_a_damaged_stage_is_named_with_the_remedy(tmp_path, capsys):
    out = tmp_path / "fig4"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    stage = out / "stages" / "trace.npz"
    stage.write_bytes(stage.read_bytes()[:200])
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{stage} is damaged or incomplete" in err and "delete it and run again" in err
    assert "Traceback" not in err
    stage.unlink()
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0


def test_a_cache_folder_checks_its_identity(tmp_path):
    run = RunDir(tmp_path / "run", experiment="x", preset="smoke", config={"a": 1, "widths": [1]})
    identity = run.settings(exclude=("widths",), extra=3)
    assert identity == {"experiment": "x", "a": 1, "extra": 3}
    with pytest.raises(KeyError, match="not in the config"):
        run.settings(exclude=("width",))
    folder = run.cache_dir("sweep", identity)
    assert run.cache_dir("sweep", identity) == folder
    assert run.cache_dir("sweep", {**identity, "a": 2}) != folder
    meta = folder / "identity.json"
    meta.write_text(json.dumps({**identity, "a": 5}))
    with pytest.raises(DamagedFileError, match=f"{meta}.*other settings.*delete the folder"):
        run.cache_dir("sweep", identity)
    meta.write_text("{")
    with pytest.raises(DamagedFileError, match=f"{meta}.*not valid JSON.*delete the folder"):
        run.cache_dir("sweep", identity)


def test_width_vs_kernel_keys_its_runs_by_every_setting(tmp_path):
    """``n_records`` shapes the runs: a rerun with another value equals a fresh run."""
    small = ["--set", "widths=[16]", "--set", "seeds=1", "--set", "n_train=4", "--set", "n_test=2",
             "--set", "time=0.4"]
    out, fresh = tmp_path / "wvk", tmp_path / "fresh"
    assert main(["run", "width-vs-kernel", "--preset", "smoke", "--out", str(out), *small]) == 0
    first = _results(out)
    more = [*small, "--set", "n_records=6"]
    for folder in (out, out, fresh):  # twice: the rerun of the rerun used to crash
        assert main(["run", "width-vs-kernel", "--preset", "smoke", "--out", str(folder), *more]) == 0
    again = _results(out)
    assert len(again["times"]) > len(first["times"])
    assert again == _results(fresh)
