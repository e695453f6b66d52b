"""Hostile use of the command and of run folders: nothing a user owns is touched, every bad input
is one clear line.

A run may delete or move only what runs wrote and listed in their config.json. The folder tests
run a toy experiment (no JAX) in children forked from one helper process: each either succeeds,
fails after its k-th write, or is killed (SIGKILL) after it, for output folders named as ``.``,
``..``, through a symbolic link, or plainly; every file that is not a run's must come out
byte-identical. The issue's own cases run the real fig3.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ntkdepth import storage
from ntkdepth.cli import main
from ntkdepth.runs import RunDir

TOY = '''
"""A run that writes what runs write: a stage, a cache, results, a table, a summary."""
from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.reporting import table

NAME = "toy"
DESCRIPTION = "a toy run"


@dataclass(frozen=True)
class Config:
    a: int = setting(3, help="size", min=1)
    missing: str = setting("", help="a data file that must exist ('' for none)")


def run(config, out):
    if config.missing:
        open(config.missing).close()  # fails before anything is computed
    s = out.stage("s", lambda: {"v": np.arange(config.a)})
    c = out.cache_dir("c", out.settings(exclude=("a",)))
    (c / f"a{config.a}.txt").write_text(str(config.a))
    return {"a": config.a, "sum": int(s["v"].sum()), "tables": {"t.csv": table(["a"], [[config.a]])}}


def report(config, results, out):
    out.write_summary(f"sum {results['sum']}")
    return {"sum": results["sum"]}
'''

# Reads jobs [cwd, argv, fault, k] from stdin, one JSON line each, and runs each in a child
# forked from this process (no JAX backend: the toy needs none): fault "fail" raises after the
# k-th write, "kill" SIGKILLs the child after it. Answers each with the child's exit status
# (-9: killed; 99: the injected failure).
SERVER = '''
import json, os, signal, sys, traceback
from pathlib import Path

import ntkdepth.experiments as experiments
import ntkdepth.runs as runs
from ntkdepth import storage
from ntkdepth.cli import main

root = Path(sys.argv[1])
toy = experiments.Experiment("toy", "a toy run", root / "experiments" / "toy.py", root / "configs")
experiments.discover = lambda: {"toy": toy}
runs.environment = lambda: {}
toy.module


class Injected(Exception):
    pass


def job(cwd, argv, fault, k):
    count = [0]

    def hook(path):
        count[0] += 1
        if count[0] == k:
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise Injected(f"after write {k}")

    storage.write_hooks[:] = [hook] if fault else []
    os.chdir(cwd)
    sys.stdout = open(os.devnull, "w")
    sys.stderr = open(os.environ.get("TOY_LOG", os.devnull), "a")
    try:
        return main(argv)
    except Injected:
        return 99


for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(job(*json.loads(line)))
        except BaseException:
            with open(os.environ.get("TOY_LOG", os.devnull), "a") as fh:
                traceback.print_exc(file=fh)
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    print(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """``toy(jobs)``: the exit statuses of ``jobs`` ([(cwd, argv, fault, k)]) run as above."""
    root = tmp_path_factory.mktemp("toy")
    (root / "experiments").mkdir()
    (root / "experiments" / "toy.py").write_text(TOY)
    (root / "configs" / "toy").mkdir(parents=True)
    (root / "configs" / "toy" / "smoke.toml").write_text("a = 3\n")
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SERVER), str(root)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(jobs):
        statuses = []
        for cwd, argv, fault, k in jobs:
            server.stdin.write(json.dumps([str(cwd), argv, fault, k]) + "\n")
            server.stdin.flush()
            line = server.stdout.readline()
            assert line, "the toy server stopped"
            statuses.append(int(line))
        return statuses

    yield run
    server.stdin.close()
    assert server.wait(timeout=60) == 0


def _tree(folder: Path, skip: Path | None = None) -> dict:
    """Every entry under ``folder`` but ``skip``: bytes of files, targets of links, folders."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            if skip is not None and (p == skip or skip in p.parents):
                continue
            rel = str(p.relative_to(folder))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir() else p.read_bytes()
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
    return out


def _toy(out: str, a: int, *extra: str) -> list[str]:
    return ["run", "toy", "--preset", "smoke", "--out", out, "--set", f"a={a}", *extra]


def _workspace(base: Path, how: str):
    """A user's folder with files of their own, the output folder ``out`` in it, and how the
    command names it: ``(cwd, --out value, workspace, out)``."""
    w = base / how
    (w / "mydata").mkdir(parents=True)
    (w / "mydata" / "d.csv").write_text("1,2\n")
    (w / "notes.txt").write_text("mine")
    (w / ".hidden").write_bytes(b"\x00\x01")
    out = w / "out"
    if how == "dot":
        return out, ".", w, out
    if how == "dotdot":
        return out / "stages", "..", w, out  # run from inside the run's own stages/
    if how == "link":
        (w / "link").symlink_to(out, target_is_directory=True)
        return w, str(w / "link"), w, out
    return w, str(out), w, out


# A toy run replacing another (whose cache it shares): config.json, config.json listing stages/,
# the stage, results.json, config.json listing t.csv, t.csv, summary.md, config.json, the swap.
WRITES = 9


def _outside_the_swap(tree: dict) -> dict:
    return {e: v for e, v in tree.items() if not e.startswith((".out.partial", ".out.previous"))}


@pytest.mark.parametrize("how", ["dot", "dotdot", "link", "plain"])
def test_foreign_files_survive_success_failure_and_kill_for_every_way_of_naming_out(how, toy, tmp_path):
    cwd, name, w, out = _workspace(tmp_path, how)
    assert toy([(w, _toy(str(out), 3), None, 0)]) == [0]
    mine = _tree(w, skip=out)
    assert toy([(cwd, _toy(name, 4), None, 0)]) == [0]  # replaces the run: a swap
    assert _tree(w, skip=out) == mine
    assert json.loads((out / "results.json").read_text())["a"] == 4
    # Each with settings of its own, so that each writes from the start; the last fails in the swap.
    jobs = [(cwd, _toy(name, 100 + k), "fail", k) for k in range(1, WRITES + 1)]
    assert toy(jobs) == [99] * WRITES
    assert _outside_the_swap(_tree(w, skip=out)) == mine
    assert toy([(w, _toy(str(out), 5), None, 0)]) == [0]  # undoes the swap cut short
    assert _tree(w, skip=out) == mine
    for k in range(1, WRITES + 1):
        assert toy([(cwd, _toy(name, 6 + k), "kill", k)]) == [-9]
        assert _outside_the_swap(_tree(w, skip=out)) == mine, k
        # Started again (from the workspace: a kill in the swap leaves no folder to be in).
        assert toy([(w, _toy(str(out), 6 + k), None, 0)]) == [0], k
        assert _tree(w, skip=out) == mine, k  # no partial or previous folder left
        assert json.loads((out / "results.json").read_text())["a"] == 6 + k
        config = json.loads((out / "config.json").read_text())
        assert sorted(p.name for p in out.iterdir()) == config["entries"]


def test_a_toy_run_replacing_another_writes_nine_times_the_last_being_the_swap(toy, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    jobs = [(tmp_path, _toy(str(first), 3), None, 0), (tmp_path, _toy(str(second), 3), None, 0),
            (tmp_path, _toy(str(first), 4), "kill", WRITES), (tmp_path, _toy(str(second), 4), "fail", WRITES + 1)]
    assert toy(jobs) == [0, 0, -9, 0]
    assert not first.exists() and (tmp_path / ".first.previous").is_dir()
    assert json.loads((tmp_path / ".first.partial" / "config.json").read_text())["finished"]


@pytest.mark.parametrize("where", ["inside", "dotdot"])
def test_a_folder_holding_foreign_entries_is_refused_and_left_alone(where, toy, tmp_path):
    w = tmp_path / "w"
    out = w / "out"
    assert toy([(tmp_path, _toy(str(out), 3), None, 0)]) == [0]
    (w / "sub").mkdir()
    if where == "inside":
        (out / "analysis.md").write_text("mine")
        cwd, name = w, str(out)
    else:
        cwd, name = w / "sub", ".."  # the workspace itself: it holds out/ and sub/
    before = _tree(tmp_path)
    assert toy([(cwd, _toy(name, 4), None, 0), (cwd, _toy(name, 3), None, 0)]) == [2, 2]
    assert _tree(tmp_path) == before


def _run(argv, capsys):
    """``(exit status, stderr)`` of the command; an error is one line without a traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    if code:  # after any progress bars
        assert "ntkdepth: error: " in err and "Traceback" not in err, err
        err = err[err.index("ntkdepth: error: "):]
        assert err.count("\n") == 1 and err.endswith("\n"), err
    return code, err


@pytest.fixture(scope="module")
def fig3_run(tmp_path_factory):
    """A finished fig3 smoke run."""
    out = tmp_path_factory.mktemp("fig3") / "run"
    assert main(["run", "fig3", "--preset", "smoke", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_out_dot_with_a_user_folder_is_refused_and_moves_nothing(fig3_run, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "DIR"
    shutil.copytree(fig3_run, folder)
    (folder / "mydata").mkdir()
    (folder / "mydata" / "x.csv").write_text("1\n")
    before = _tree(tmp_path)
    monkeypatch.chdir(folder)
    argv = ["run", "fig3", "--preset", "smoke", "--set", "iterations=80", "--out", "."]
    code, err = _run(argv, capsys)
    assert code == 2 and f"--out . ({folder}) holds 1 entry that no ntkdepth run wrote (mydata/)" in err
    assert "choose an empty or new folder" in err
    assert _run(argv, capsys)[0] == 2  # again: still nothing moved or deleted
    assert _tree(tmp_path) == before
    # Without the user's folder the run replaces the old one in place of `.`.
    shutil.rmtree(folder / "mydata")
    assert _run(argv, capsys)[0] == 0
    assert json.loads((folder / "config.json").read_text())["config"]["iterations"] == 80
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]
    assert Path.cwd() == folder


def test_an_unfinished_run_with_the_users_files_is_refused(fig3_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(fig3_run, out)
    record = json.loads((out / "config.json").read_text())
    for key in ("entries", "outputs"):  # as a run killed before this version listed its entries
        record.pop(key)
    record["finished"] = None
    (out / "config.json").write_text(json.dumps(record))
    for p in out.iterdir():
        if p.is_file() and p.name != "config.json":
            p.unlink()
    (out / "analysis.md").write_text("mine")
    (out / "mydata.csv").write_text("1,2\n")
    (out / "notes.txt").write_text("notes")
    (out / "figs").mkdir()
    (out / "figs" / "a.png").write_bytes(b"png")
    before = _tree(tmp_path)
    code, err = _run(["run", "fig3", "--preset", "smoke", "--set", "iterations=80", "--out", str(out)], capsys)
    assert code == 2
    assert "holds 4 entries that no ntkdepth run wrote (analysis.md, figs/, mydata.csv, notes.txt)" in err
    assert _tree(tmp_path) == before


def test_another_experiments_or_presets_run_is_replaced_only_with_force(fig3_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(fig3_run, out)
    before = _tree(tmp_path)
    for argv in (["run", "fig4", "--preset", "smoke"], ["run", "fig3", "--preset", "cpu"]):
        code, err = _run([*argv, "--out", str(out)], capsys)
        assert code == 2 and "holds a finished run of fig3 (preset smoke), not of" in err
        assert "replacing it needs --force" in err
        assert _tree(tmp_path) == before
    assert _run(["run", "fig4", "--preset", "smoke", "--out", str(out), "--force"], capsys)[0] == 0
    assert json.loads((out / "config.json").read_text())["experiment"] == "fig4"
    assert not (out / "map.csv").exists()  # fig3's outputs went with its run


def test_a_run_that_fails_before_computing_leaves_nothing_behind(fig3_run, toy, tmp_path, capsys):
    new = tmp_path / "a" / "b"
    code, err = _run(["run", "table1", "--preset", "smoke", "--set", f"text8_path='{tmp_path / 'no'}'",
                      "--out", str(new)], capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "a").exists()
    code, err = _run(["run", "fig5", "--preset", "smoke", "--set", f"data_dir='{tmp_path / 'no'}'",
                      "--out", str(new)], capsys)
    assert code == 2 and "no MNIST split" in err and not (tmp_path / "a").exists()
    # Into a finished run of the same settings, failing at its first write (config.json): the
    # folder is as it was; into a new folder, failing before any write: no folder.
    out = tmp_path / "run"
    assert toy([(tmp_path, _toy(str(out), 3), None, 0)]) == [0]
    before = _tree(tmp_path)
    assert toy([(tmp_path, _toy(str(out), 3), "fail", 1),
                   (tmp_path, _toy(str(tmp_path / "c" / "d"), 3, "--set", f"missing='{tmp_path / 'no'}'"),
                    None, 0)]) == [99, 2]
    assert _tree(tmp_path) == before
    # Refused settings create nothing either.
    assert _run(["run", "fig3", "--preset", "smoke", "--set", "iterations=0", "--out", str(new)], capsys)[0] == 2
    assert not (tmp_path / "a").exists()


def test_a_partial_folder_holding_user_files_is_refused(fig3_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(fig3_run, out)
    (tmp_path / ".run.partial" / "mydata").mkdir(parents=True)
    before = _tree(tmp_path)
    code, err = _run(["run", "fig3", "--preset", "smoke", "--set", "iterations=12", "--out", str(out)], capsys)
    assert code == 2 and f"{tmp_path / '.run.partial'} holds 1 entry that no ntkdepth run wrote (mydata/)" in err
    assert _tree(tmp_path) == before


def test_out_names_a_file_a_root_or_a_path_too_long(tmp_path, capsys):
    code, err = _run(["run", "fig3", "--preset", "smoke", "--out", "/"], capsys)
    assert code == 2 and "--out / is the root of the file system" in err
    long = str(tmp_path / ("a" * 5000))
    code, err = _run(["run", "fig3", "--preset", "smoke", "--out", long], capsys)
    assert code == 2 and "is too long for the file system (" in err and "choose a shorter path" in err
    assert len(err) < 600
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    code, err = _run(["run", "fig3", "--preset", "smoke", "--out", str(loop / "x")], capsys)
    assert code == 2 and "--out" in err
    assert not list(tmp_path.glob("a*"))


def test_redrawing_a_run_lists_a_new_output_and_never_overwrites_a_foreign_file(tmp_path):
    from ntkdepth.runs import FinishedRun

    out = tmp_path / "run"
    run = RunDir(out, experiment="x", preset="smoke", config={"a": 1})
    run.write_json("results.json", {})
    run.finish()
    record = json.loads((out / "config.json").read_text())
    folder = FinishedRun(out, record)
    folder.write_text("new.txt", "drawn")
    assert "new.txt" in json.loads((out / "config.json").read_text())["entries"]
    (out / "mine.txt").write_text("mine")
    with pytest.raises(Exception, match="mine.txt was not written by the run"):
        folder.write_text("mine.txt", "drawn")
    assert (out / "mine.txt").read_text() == "mine"


# A full disk: one line naming the file, the bytes needed and free; nothing finished is lost.


def _disk_full(tmp):
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))


def test_a_full_disk_writing_a_stage_is_one_line_and_keeps_the_previous_run(tmp_path, monkeypatch, capsys):
    import ntkdepth.runs as runs

    out = tmp_path / "fig4"
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    before = _tree(tmp_path)

    def full(path, arrays):  # writes part of the file, then finds the disk full
        return storage.atomic_write(path, lambda tmp: (tmp.write_bytes(b"PK"), _disk_full(tmp)), size=4321)

    monkeypatch.setattr(runs, "save_npz", full)
    code, err = _run(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"], capsys)
    stage = tmp_path / ".fig4.partial" / "stages" / "trace.npz"
    assert code == 2
    m = re.fullmatch(r"ntkdepth: error: no space left on the device writing (\S+): it needs 4,321 bytes, "
                     r"([\d,]+) bytes are free there; free some space and run the same command again "
                     r"\(what was finished is kept\)\n", err)
    assert m and m[1] == str(stage)  # the free bytes as measured then (others write to this disk too)
    assert int(m[2].replace(",", "")) == pytest.approx(shutil.disk_usage(tmp_path).free, rel=0.01)
    # The previous run whole, no temporary file, no partial folder (nothing was computed).
    assert _tree(tmp_path) == before
    monkeypatch.undo()
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", "depth=20"]) == 0


def test_a_full_disk_in_a_library_write_names_the_path_and_keeps_the_finished_stage(tmp_path, monkeypatch, capsys):
    out = tmp_path / "fig4"

    def full(self, text):  # e.g. a checkpoint library: a plain OSError
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "summary.md"))

    monkeypatch.setattr(RunDir, "write_summary", full)
    code, err = _run(["run", "fig4", "--preset", "smoke", "--out", str(out)], capsys)
    assert code == 2 and f"no space left on the device writing {out / 'summary.md'}: " in err
    assert "bytes are free there" in err and "needs" not in err
    stage = out / "stages" / "trace.npz"
    finished = stage.stat().st_mtime_ns
    monkeypatch.undo()
    assert main(["run", "fig4", "--preset", "smoke", "--out", str(out)]) == 0
    assert stage.stat().st_mtime_ns == finished  # the stage finished before the disk filled is reused


# Inputs a careless user gives: each one clear line, exit status 2.


def test_report_on_a_missing_path_or_json_of_the_wrong_shape(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert _run(["report", str(missing)], capsys) == (2, f"ntkdepth: error: {missing} does not exist; name the "
                                                         "output folder of a finished run\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text("{}")
    for text in ("{}", "[1, 2]", '{"experiment": 3, "config": {}}'):
        (folder / "config.json").write_text(text)
        code, err = _run(["report", str(folder)], capsys)
        assert code == 2 and f"{folder}/config.json is not the record of a run" in err
    (folder / "config.json").write_text('{"experiment": "fig4", "config": {}}')
    for text in ("[1, 2]", "3"):
        (folder / "results.json").write_text(text)
        code, err = _run(["report", str(folder)], capsys)
        assert code == 2 and "results.json holds a" in err and "not the results of a run" in err
    (folder / "results.json").write_text('{"tables": {}}')
    code, err = _run(["report", str(folder)], capsys)
    assert code == 2 and "results.json does not hold the results of fig4 as this version writes them" in err
    assert "run the experiment into" in err


@pytest.mark.slow
def test_table1_with_width_1_gives_advice_the_command_line_can_follow(tmp_path, capsys):
    from datasets import text8_path

    from ntkdepth.config import parse_overrides
    from ntkdepth.experiments import get

    if text8_path() is None:
        pytest.skip("no text8 file")
    code, err = _run(["run", "table1", "--preset", "smoke", "--set", "widths=[1]", "--out", str(tmp_path / "t")],
                     capsys)
    assert code == 2 and "width 1, seed 0" in err and "Leave width 1 out" in err
    advice = re.findall(r"--set (\S+)", err)
    assert advice == ["widths=[64,256]"]
    config = get("table1").config("smoke", parse_overrides(advice))
    assert config.widths == [64, 256]


@pytest.mark.parametrize("argv,words", [
    (["run", "table1", "--preset", "smoke", "--set", "steps=99999999999999999999999"],
     ["steps: 99999999999999999999999 is beyond the 64-bit integers"]),
    (["run", "table1", "--preset", "smoke", "--set", "widths=64"],
     ["widths: expected a list of int, written like widths=[64,256], got 64"]),
    (["run", "fig44"], ["unknown experiment 'fig44' (did you mean 'fig4'?)"]),
    (["run", "Fig4"], ["unknown experiment 'Fig4' (did you mean 'fig4'?)"]),
    (["run", "fig4", "--preset", "smok"], ["no preset 'smok' (did you mean 'smoke'?)"]),
    (["run", "fig4", "--preset", "smoke", "--set", "widht=3"],
     ["unknown key(s) ['widht']; experiment 'fig4' has: ['W_std'"]),
])
def test_newcomers_mistakes_are_named_with_what_to_write(argv, words, tmp_path, capsys):
    code, err = _run([*argv, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and all(w in err for w in words), err
    assert "Config has" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["9" * 100_000, "a" * 100_000, "[" + "1," * 50_000 + "]", "'" + "x" * 100_000])
def test_a_100000_character_value_is_not_echoed_whole(value, tmp_path, capsys):
    for key in ("depth", "dataset", "nokey" * 20_000):
        code, err = _run(["run", "fig4", "--preset", "smoke", "--set", f"{key}={value}", "--out", str(tmp_path)],
                         capsys)
        assert code == 2 and len(err) < 1500, (key[:10], len(err))
        assert "characters]" in err


def test_a_path_of_5000_characters_is_one_line(tmp_path, capsys):
    long = str(tmp_path / ("t" * 5000))
    code, err = _run(["run", "table1", "--preset", "smoke", "--set", f"text8_path='{long}'",
                      "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "too long for the file system" in err and len(err) < 1000
    code, err = _run(["report", long], capsys)
    assert code == 2 and len(err) < 1000


def _text8_files(tmp_path):
    words = "anarchism originated as a term of abuse first used against early working class radicals " * 40
    plain = tmp_path / "text8"
    plain.write_text(words)
    import gzip
    import zipfile

    (tmp_path / "text8.gz").write_bytes(gzip.compress(plain.read_bytes()))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "two").write_text("hello world")
    with zipfile.ZipFile(tmp_path / "text8.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(plain, "text8")
    data = (tmp_path / "text8.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "folder").mkdir()


@pytest.mark.parametrize("name,words", [
    ("text8.gz", ["is a gzip file", "unpack it first (gunzip)"]),
    ("empty", ["is empty (0 bytes), not a text8 file", "ntkdepth data fetch text8"]),
    ("two", ["vocab_size 50 exceeds the 2 distinct words", "--set vocab_size=2"]),
    ("cut.zip", ["is a truncated or damaged zip", "ntkdepth data fetch text8"]),
    ("folder", ["is a folder, not a text8 file: name the file itself"]),
])
def test_a_text8_path_that_is_not_text8_is_named(name, words, tmp_path, capsys):
    _text8_files(tmp_path)
    out = tmp_path / "out"
    code, err = _run(["run", "table1", "--preset", "smoke", "--set", f"text8_path='{tmp_path / name}'",
                      "--out", str(out)], capsys)
    assert code == 2 and str(tmp_path / name) in err and all(w in err for w in words), err
    assert not out.exists()


def _mnist_folders(tmp_path):
    """Folders ``raw`` and ``gz`` holding a made-up test split, uncompressed and gzipped."""
    from test_data_mnist import write_split

    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, size=(30, 28, 28), dtype=np.uint8)
    for name, gz in (("raw", False), ("gz", True)):
        (tmp_path / name).mkdir()
        write_split(tmp_path / name, "test", images, rng.integers(0, 10, 30, dtype=np.uint8), gz=gz)


def test_a_damaged_mnist_file_is_named(tmp_path, capsys):
    _mnist_folders(tmp_path)
    images_file = tmp_path / "gz" / "t10k-images-idx3-ubyte.gz"
    images_file.write_bytes(images_file.read_bytes()[:100])
    code, err = _run(["run", "fig5", "--preset", "smoke", "--set", f"data_dir='{tmp_path / 'gz'}'",
                      "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and f"{images_file}: corrupt gzip data" in err and not (tmp_path / "out").exists()


def test_a_sweep_on_huge_targets_blames_the_data_and_a_file_as_workdir_is_named(tmp_path):
    import jax.numpy as jnp

    from ntkdepth.models import MLP
    from ntkdepth.training import FullBatchData, NonFiniteDataError, TrainSpec, run_width_sweep

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    spec = TrainSpec(steps=4, learning_rate=0.1, record_steps=(2,))

    def make(w, s):
        return MLP(3, [w], 1, rngs=s)

    def sweep(xs, ys, workdir):
        data = FullBatchData(jnp.asarray(x * xs, jnp.float32), jnp.full((16, 1), ys, jnp.float32))
        return run_width_sweep(make, data, spec, data.x, [8], [0], workdir, progress=False)

    with pytest.raises(NonFiniteDataError, match=r"targets 'y' reach 1e\+30: their squares exceed float32's "
                                                 r"largest number .*rescale the targets") as info:
        sweep(1.0, 1e30, tmp_path / "a")
    assert "Lower the learning rate" not in str(info.value)
    for xs, ys in ((1.0, 1e18), (1e30, 1.0)):  # finite targets, but a loss float32 cannot follow
        with pytest.raises(NonFiniteDataError, match=r"the cause is the data: the loss of the untrained "
                                                     r"network is already .*rescale the inputs or targets"):
            sweep(xs, ys, tmp_path / f"b{xs}")
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    for workdir in (a_file, a_file / "sub"):
        with pytest.raises(NotADirectoryError, match=f"the sweep's folder {workdir} .*a file, not a folder"):
            sweep(1.0, 1.0, workdir)
    assert a_file.read_text() == "mine"


def test_the_command_line_as_a_newcomer_uses_it(capsys):
    from ntkdepth import __version__

    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ntkdepth") and "run" in out and "report" in out and "``" not in out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"ntkdepth {__version__}\n"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    assert "``" not in help_text and "widths=[64,256]" in help_text and "--force" in help_text
    flat = " ".join(help_text.split())
    assert "n8000 (table2)" in flat and "paper-cpu (table1)" in flat


# The data a run read, on record.


def test_mnist_files_that_are_not_the_official_ones_are_recorded_as_such(tmp_path):
    from ntkdepth.data.mnist import mnist_record

    _mnist_folders(tmp_path)
    record = mnist_record(tmp_path / "raw", "test", 30, [5, 5])
    assert not record["official"] and record["draws"] == [5, 5] and record["splits_in_folder"] == ["test"]
    assert "t10k-images-idx3-ubyte is uncompressed, which has no published checksum" in record["kind"]
    assert [Path(f["path"]).name for f in record["files"]] == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    record = mnist_record(tmp_path / "gz", "test", 30, [5])
    assert not record["official"] and "has MD5" in record["kind"] and "not the official 9fb629c4" in record["kind"]
