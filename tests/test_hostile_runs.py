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

    storage._write_hooks[:] = [hook] if fault else []
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
