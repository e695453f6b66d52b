"""Fault injection: a sweep and a staged experiment killed at each write point, and damaged files.

A process killed (SIGKILL) right after any of its writes, then run again,
must give the numbers of an uninterrupted run; a file truncated on disk must
give those numbers again or an error that names it. The killed processes are
forked from one helper process that has imported JAX once (no backend is
started before the fork), which keeps each kill to about a second.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ntkdepth.training import SweepRun

SETUP = """
import numpy as np
from ntkdepth.models import MLP
from ntkdepth.training import PairData, TrainSpec, run_width_sweep


def sweep(workdir):
    rng = np.random.default_rng(0)
    data = PairData.create(rng.integers(0, 12, size=(500, 2)).astype(np.int32), n_eval=64)
    spec = TrainSpec(steps=12, learning_rate=0.2, batch_size=16, record_steps=(6,), center_output=True)
    make = lambda w, s: MLP(12, [w, w], 12, tokens=True, input_scale=12**0.5, rngs=s)
    return run_width_sweep(make, data, spec, np.arange(5), [8], [0, 1], workdir,
                           checkpoint_interval_s=0, progress=False)


def watch_checkpoints(manager_class, hook):
    # Calls hook(directory) once each checkpoint a manager saves is written.
    save, wait = manager_class.save, manager_class.wait_until_finished

    def saving(self, *args, **kwargs):
        saved = save(self, *args, **kwargs)  # may wait for earlier saves itself
        self._pending_hook = True
        return saved

    def waiting(self):
        wait(self)
        if getattr(self, "_pending_hook", False):
            self._pending_hook = False
            hook(self.directory)

    manager_class.save, manager_class.wait_until_finished = saving, waiting


def fig4(out, seed):
    from ntkdepth.cli import main

    return main(["run", "fig4", "--preset", "smoke", "--out", str(out), "--set", f"seed={seed}"])
"""

# Runs the jobs of a JSON plan [[kind, folder, seed, kill_after], ...] in children forked from this
# process: a job with kill_after > 0 alone in a child that SIGKILLs itself right after its
# kill_after-th write, consecutive jobs without a kill one after the other in one child. A job
# writes its stderr to FOLDER.stderr, its number of writes to FOLDER.count, and the path and
# message of a DamagedFileError to FOLDER.error (status 3). Prints the statuses (-9: killed).
# The children share a persistent compilation cache, so each compiles little.
SERVER = SETUP + """
import json, os, signal, sys
import jax

jax.config.update("jax_compilation_cache_dir", sys.argv[2])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import orbax.checkpoint as ocp
from ntkdepth import storage
from ntkdepth.experiments import discover

discover()


def job(kind, folder, seed, kill_after):
    count = [0]

    def hook(path):
        count[0] += 1
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    storage.write_hooks[:] = [hook]
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    sys.stderr = open(folder + ".stderr", "w")
    try:
        rc = (sweep(folder) and 0) if kind == "sweep" else fig4(folder, seed)
        with open(folder + ".count", "w") as fh:
            fh.write(str(count[0]))
    except storage.DamagedFileError as err:
        with open(folder + ".error", "w") as fh:
            fh.write(json.dumps([str(err.path), str(err)]))
        rc = 3
    sys.stderr.flush()
    return rc


def in_child(jobs):
    # Killing jobs run alone; the others one after the other in one child (compiled once).
    pid = os.fork()
    if pid == 0:
        watch_checkpoints(ocp.CheckpointManager, lambda path: storage.notify_write(path))
        codes = [job(*j) for j in jobs]
        with open(jobs[0][1] + ".codes", "w") as fh:
            fh.write(json.dumps(codes))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return [-os.WTERMSIG(status)]
    return json.loads(open(jobs[0][1] + ".codes").read())


statuses, batch = [], []
for j in json.loads(sys.argv[1]):
    if j[3]:
        statuses += in_child(batch) if batch else []
        batch = []
        statuses += in_child([j])
    else:
        batch.append(j)
statuses += in_child(batch) if batch else []
print(json.dumps(statuses))
"""

def _serve(plan, cache):
    """Runs ``plan`` ([(kind, folder, seed, kill_after)]) in forked children; their exit statuses."""
    code = textwrap.dedent(SERVER)
    jobs = json.dumps([[k, str(f), seed, n] for k, f, seed, n in plan])
    done = subprocess.run([sys.executable, "-c", code, jobs, str(cache)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Uninterrupted runs: a sweep, fig4 with seed 1 (the "old" run) and seed 0; a sweep cut short."""
    base = tmp_path_factory.mktemp("faults")
    cache = base / "jax-cache"
    plan = [("sweep", base / "sweep", 0, 0), ("fig4", base / "old" / "fig4", 1, 0),
            ("fig4", base / "new" / "fig4", 0, 0),
            ("sweep", base / "cut", 0, 1)]  # killed after the seeds' checkpoint at step 6
    assert _serve(plan, cache) == [0, 0, 0, -9]
    return base


def _count(folder):
    return int(folder.with_name(folder.name + ".count").read_text())


def _runs(folder):
    return {p.name.split("-")[0]: SweepRun.load(p) for p in sorted((folder / "runs").glob("*.npz"))}


def _files(folder):
    """Every file under ``folder`` with its bytes, config.json without its times."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "config.json":
                record = json.loads(data)
                data = json.dumps({k: v for k, v in record.items()
                                   if k not in ("started", "finished", "outputs")}).encode()
            out[str(p.relative_to(folder))] = data
    return out


def _numbers(out):
    results = json.loads((out / "results.json").read_text())
    with np.load(out / "stages" / "trace.npz") as z:
        return results, {k: z[k] for k in z.files}


def _same_numbers(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])


def _same_runs(a, b):
    assert a.keys() == b.keys() and len(a) == 2
    for k in a:
        np.testing.assert_array_equal(a[k].loss, b[k].loss)
        np.testing.assert_array_equal(a[k].outputs, b[k].outputs)
        for s in a[k].stats:
            np.testing.assert_array_equal(a[k].stats[s], b[k].stats[s])


def test_killed_at_every_write_then_rerun_gives_the_uninterrupted_numbers(refs, tmp_path):
    n_sweep = _count(refs / "sweep")
    assert n_sweep == 3  # the two seeds trained together: their checkpoint at step 6, two finished runs
    # fig4 into a folder holding another run (seed 1): built beside it, then swapped in; its
    # writes are those of a fresh folder and the swap.
    n_fig4 = _count(refs / "new" / "fig4") + 1
    assert n_fig4 >= 9  # config, stage, two tables, figure, results, summary, config, swap
    old_files, new_files = _files(refs / "old" / "fig4"), _files(refs / "new" / "fig4")

    plan = [("sweep", tmp_path / f"sweep-{n}", 0, n) for n in range(1, n_sweep + 1)]
    for n in range(1, n_fig4 + 1):
        shutil.copytree(refs / "old" / "fig4", tmp_path / f"fig4-{n}" / "fig4")
        plan.append(("fig4", tmp_path / f"fig4-{n}" / "fig4", 0, n))
    assert _serve(plan, refs / "jax-cache") == [-9] * len(plan)

    for kind, folder, _, n in plan:
        if kind == "fig4":
            # Killed anywhere, the folder holds one whole run: the old one or the new one.
            if folder.exists() and _files(folder) != new_files:
                assert _files(folder) == old_files, f"killed after write {n}: two runs mixed"
    assert _serve([(kind, folder, 0, 0) for kind, folder, _, _ in plan], refs / "jax-cache") == [0] * len(plan)
    reference = _runs(refs / "sweep")
    for kind, folder, _, n in plan:
        if kind == "sweep":
            _same_runs(_runs(folder), reference)
            # Runs finished before the kill were reused by the new process (same keys), not redone.
            assert len(list((folder / "runs").glob("*.npz"))) == 2
        else:
            _same_numbers(_numbers(folder), _numbers(refs / "new" / "fig4"))
            assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], n


def _kinds(folder):
    """One file of each kind under ``folder`` (orbax's array data files count as one kind)."""
    seen = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.stat().st_size > 1:
            kind = "data" if p.parent.name == "d" else p.suffix if p.suffix in (".npz", ".png", ".csv") else p.name
            seen.setdefault(kind, p)
    return seen


def test_each_kind_of_file_truncated_gives_the_numbers_or_names_it(refs, tmp_path):
    cases = []
    for source, kind in ((refs / "new" / "fig4", "fig4"), (refs / "sweep", "sweep"), (refs / "cut", "sweep")):
        for what, path in _kinds(source).items():
            folder = tmp_path / f"{len(cases)}" / source.name
            shutil.copytree(source, folder)
            damaged = folder / path.relative_to(source)
            damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
            cases.append((kind, folder, damaged, what))
    kinds = {c[3] for c in cases}
    assert {".npz", "config.json", "results.json", "_METADATA", "_CHECKPOINT_METADATA", "data"} <= kinds
    statuses = _serve([(kind, folder, 0, 0) for kind, folder, _, _ in cases], refs / "jax-cache")
    for (kind, folder, damaged, what), status in zip(cases, statuses):
        if status == 0:  # recomputed or rewritten: the numbers of an uninterrupted run
            if kind == "fig4":
                _same_numbers(_numbers(folder), _numbers(refs / "new" / "fig4"))
            else:
                _same_runs(_runs(folder), _runs(refs / "sweep"))
            continue
        assert status in (2, 3), (what, status)
        if status == 2:  # the command's error message
            err = folder.with_name(folder.name + ".stderr").read_text()
            assert f"{damaged} is damaged or incomplete" in err and "run again" in err, (what, err)
            assert "Traceback" not in err
        else:
            path, message = json.loads(folder.with_name(folder.name + ".error").read_text())
            assert Path(path) == damaged or Path(path) in damaged.parents, (what, message)
            assert "run again" in message
