"""Width sweeps over a device mesh against one network at a time on one device.

The mesh runs happen in subprocesses with ``--xla_force_host_platform_device_count``
(the flag must be set before JAX starts): four simulated CPU devices in one
process, and two processes of two devices joined by ``jax.distributed`` on
localhost. Their numbers are compared here with a reference computed in this
process, one seed at a time on one device with the plain
:class:`~ntkdepth.training.Trainer` (no vmap, no sharding).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

STEPS, RECORDS = 12, (3, 6, 9)
WIDTHS, SEEDS = (8, 16), (0, 1, 2, 3)
ROOT = Path(__file__).resolve().parents[1]
# Subprocesses that start JAX and compile the sweep: tens of seconds on 2 cores.
pytestmark = pytest.mark.slow


def _setup(every_step: bool = False):
    import jax.numpy as jnp

    from ntkdepth.models import MLP
    from ntkdepth.training import PairData, TrainSpec

    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 12, size=(500, 2)).astype(np.int32)
    data = PairData.create(pairs, n_eval=64)
    spec = TrainSpec(steps=STEPS, learning_rate=0.2, batch_size=16, center_output=True,
                     record_steps=tuple(range(1, STEPS)) if every_step else RECORDS)

    def make_model(width, seed):
        return MLP(12, [width, width], 12, tokens=True, input_scale=12**0.5, rngs=seed)

    return make_model, data, spec, jnp.arange(5)


def _sweep(make_model, data, spec, ev, widths, seeds, workdir, checkpoint_interval_s=0.0, **kw):
    """``{(width, seed): run}`` from :func:`run_width_sweep`, on every device there is."""
    from ntkdepth.training import run_width_sweep

    return run_width_sweep(make_model, data, spec, ev, widths, seeds, workdir, progress=False,
                           checkpoint_interval_s=checkpoint_interval_s, **kw)


def _flat(runs) -> dict[str, np.ndarray]:
    arrays = {}
    for (w, s), r in runs.items():
        arrays[f"{w}_{s}_loss"] = r.loss
        arrays[f"{w}_{s}_outputs"] = r.outputs
        for k, v in r.stats.items():
            arrays[f"{w}_{s}_stat_{k}"] = v
    return arrays


@functools.lru_cache(maxsize=None)
def _trainer(width, every_step):
    from ntkdepth.models import functional
    from ntkdepth.training import Trainer

    make_model, data, spec, ev = _setup(every_step)
    return Trainer(functional(make_model(width, 0)), data, spec, ev), make_model, spec


def _reference(width, seed, every_step=False):
    """One network on one device with the plain trainer: ``loss [R]``, ``outputs``, ``stats``."""
    import jax

    from ntkdepth.models import functional

    trainer, make_model, spec = _trainer(width, every_step)
    params = functional(make_model(width, seed)).params
    state = trainer.init_state(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED), params)
    _, _, a0 = trainer.measure(state)
    loss, outputs, stats = [], [], []
    for stop in spec.records:
        state = trainer.run_until(state, stop)
        l, f, a = trainer.measure(state)
        loss.append(float(l))
        outputs.append(np.asarray(f))
        stats.append({k: np.asarray(v) for k, v in trainer.drift(a0, a).items()})
    return {"loss": np.array(loss), "outputs": np.stack(outputs),
            "stats": {k: np.stack([s[k] for s in stats]) for k in stats[0]}}


def _assert_same(arrays, prefix, ref):
    np.testing.assert_allclose(arrays[f"{prefix}_loss"], ref["loss"], rtol=2e-5)
    np.testing.assert_allclose(arrays[f"{prefix}_outputs"], ref["outputs"], rtol=2e-4, atol=2e-6)
    for k, v in ref["stats"].items():
        np.testing.assert_allclose(arrays[f"{prefix}_stat_{k}"], v, rtol=2e-4, atol=2e-6, err_msg=k)


# ----------------------------------------------------------------------------- worker processes


class _Interrupted(Exception):
    pass


def _worker_mesh(out: Path) -> None:
    import shutil

    import jax

    from ntkdepth.training.parallel import HIDDEN, SeedGroup

    assert jax.device_count() == 4, jax.devices()
    info = {}
    make_model, data, spec, ev = _setup()
    # Four seeds over the seed axis; then two seeds: a 2 x 2 mesh, the hidden axis split in two.
    runs = _sweep(make_model, data, spec, ev, WIDTHS, SEEDS, out / "four")
    runs2 = _sweep(make_model, data, spec, ev, [16], [0, 1], out / "two")
    np.savez(out / "sweep.npz", **_flat(runs), **{f"two_{k}": v for k, v in _flat(runs2).items()})

    # One seed, every device on the hidden axis, the loss at every step.
    mm, d, spec_every, ev = _setup(every_step=True)
    hidden = _sweep(mm, d, spec_every, ev, [16], [0], out / "hidden")
    np.savez(out / "hidden.npz", loss=hidden[(16, 0)].loss)
    from ntkdepth.training.parallel import Layout

    group = SeedGroup(mm, 16, 1, d, spec_every, ev, Layout(1, 1, 4))
    params = group.init_params([0])
    info["hidden_shards"] = {
        str(i): [list(params["layers"][i]["kernel"].sharding.spec),
                 list(params["layers"][i]["kernel"].addressable_shards[0].data.shape)]
        for i in range(3)
    }
    info["hidden_axis"] = HIDDEN
    from ntkdepth.training.parallel import plan_layout

    info["plan_one_seed"] = [
        getattr(plan_layout(1, 16, 10**6), k) for k in ("group", "seed_shards", "hidden_shards")]

    # Interrupted after the checkpoint at step 6 of the 2 x 2 group, then resumed.
    original = SeedGroup.run_until

    def interrupting(self, state, stop):
        if stop == 9:
            raise _Interrupted
        return original(self, state, stop)

    SeedGroup.run_until = interrupting
    try:
        _sweep(make_model, data, spec, ev, [16], [0, 1], out / "cut")
    except _Interrupted:
        info["interrupted"] = True
    SeedGroup.run_until = original
    info["checkpoints"] = sorted(p.name.split("-")[0] for p in (out / "cut" / "checkpoints").iterdir())
    info["runs_before_resume"] = len(list((out / "cut" / "runs").glob("*.npz")))
    shutil.copytree(out / "cut", out / "cut-copy")
    resumed = _sweep(make_model, data, spec, ev, [16], [0, 1], out / "cut")
    np.savez(out / "resumed.npz", **_flat(resumed))
    (out / "info.json").write_text(json.dumps(info))


def _worker_multihost(out: Path, process_id: int, port: int) -> None:
    import jax

    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    make_model, data, spec, ev = _setup()
    # Checkpointed at every record: sharded states, every process writing its shards.
    from ntkdepth.training import SweepRun

    saved = []
    original = SweepRun.save
    SweepRun.save = lambda self, path, *a, **k: (saved.append(Path(path).name), original(self, path, *a, **k))
    # Each process names its own folder; the sweep works in process 0's.
    runs = _sweep(make_model, data, spec, ev, [8], [0, 1], out / f"sweep{process_id}")
    np.savez(out / f"process{process_id}.npz", **_flat(runs))
    (out / f"process{process_id}.json").write_text(json.dumps({
        "saved": saved, "runs": sorted(p.name for p in (out / "sweep0" / "runs").glob("*.npz")),
        "own_folder": (out / f"sweep{process_id}").exists()}))
    jax.distributed.shutdown()


def _run_workers(args_list, tmp_path, devices, timeout=240):
    # The workers compile the same functions more than once: JAX's persistent cache shares them
    # (the test run's own where it has one, tests/conftest.py).
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, __file__, *map(str, args)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for args in args_list]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"mesh worker timed out after {timeout} s")
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-4000:]
    return outs


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mesh")
    _run_workers([("mesh", tmp)], tmp, devices=4)
    return tmp


def test_a_sweep_on_four_devices_gives_the_single_device_numbers(mesh_run):
    with np.load(mesh_run / "sweep.npz") as z:
        arrays = dict(z)
    for w in WIDTHS:
        for s in SEEDS:
            _assert_same(arrays, f"{w}_{s}", _reference(w, s))
    for s in (0, 1):
        _assert_same(arrays, f"two_16_{s}", _reference(16, s))


def test_a_network_split_along_its_hidden_dimension_trains_to_the_same_loss_curve(mesh_run):
    info = json.loads((mesh_run / "info.json").read_text())
    h = info["hidden_axis"]
    assert info["plan_one_seed"] == [1, 1, 4]  # what the sweep chose for one seed on four devices
    # W^1 [12, 16] by columns, W^2 [16, 16] by rows, W^3 [16, 12] by rows: a quarter on each device.
    assert info["hidden_shards"] == {"0": [["seeds", None, h], [1, 12, 4]],
                                     "1": [["seeds", h, None], [1, 4, 16]],
                                     "2": [["seeds", h, None], [1, 4, 12]]}
    with np.load(mesh_run / "hidden.npz") as z:
        loss = z["loss"]
    ref = _reference(16, 0, every_step=True)["loss"]
    assert len(loss) == STEPS + 1 and np.ptp(ref) > 1e-2  # a curve that moves
    np.testing.assert_allclose(loss, ref, rtol=2e-5)


def test_a_sweep_resumed_from_a_sharded_checkpoint_equals_an_uninterrupted_one(mesh_run):
    info = json.loads((mesh_run / "info.json").read_text())
    assert info["interrupted"] and info["checkpoints"] == ["w16_s0_1"]
    assert info["runs_before_resume"] == 0
    with np.load(mesh_run / "resumed.npz") as r, np.load(mesh_run / "sweep.npz") as full:
        for k in r.files:
            np.testing.assert_allclose(r[k], full[f"two_{k}"], rtol=1e-6, atol=1e-8, err_msg=k)


def test_a_checkpoint_written_on_four_devices_resumes_on_one(mesh_run):
    """Orbax restores the 2 x 2-sharded state into this process's single device."""
    make_model, data, spec, ev = _setup()
    resumed = _sweep(make_model, data, spec, ev, [16], [0, 1], mesh_run / "cut-copy")
    for s in (0, 1):
        _assert_same(_flat(resumed), f"16_{s}", _reference(16, s))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_joined_by_jax_distributed_give_the_single_device_numbers(tmp_path):
    import jax

    if not hasattr(jax, "distributed") or jax.__version_info__ < (0, 4, 30):
        pytest.skip(f"jax {jax.__version__} has no multi-process CPU runtime")
    port = _free_port()
    _run_workers([("multihost", tmp_path, i, port) for i in (0, 1)], tmp_path, devices=2)
    for i in (0, 1):
        with np.load(tmp_path / f"process{i}.npz") as z:
            arrays = dict(z)
        for s in (0, 1):
            _assert_same(arrays, f"8_{s}", _reference(8, s))
    # The finished runs are written once, by process 0, into its folder; process 1's is not made.
    first, second = (json.loads((tmp_path / f"process{i}.json").read_text()) for i in (0, 1))
    assert len(first["saved"]) == 2 and second["saved"] == []
    assert sorted(first["saved"]) == first["runs"] == second["runs"]
    assert first["own_folder"] and not second["own_folder"]


def test_the_command_on_two_processes_writes_its_outputs_once(tmp_path):
    """``ntkdepth run --distributed`` on two processes of two CPU devices: one output folder."""
    port = _free_port()
    out = tmp_path / "table1"
    base = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "ntkdepth", "run", "table1", "--preset", "smoke", "--out", str(out),
            "--set", "widths=[16, 32]", "--set", "seeds=2", "--set", "steps=8",
            "--set", "parameterizations=['ntk']", "--distributed"]
    procs = []
    for i in (0, 1):
        (tmp_path / f"tmp{i}").mkdir()
        env = {**base, "JAX_PROCESS_ID": str(i), "TMPDIR": str(tmp_path / f"tmp{i}")}
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-3000:]
    assert (out / "summary.md").exists() and (out / "table1.csv").exists()
    # Process 0 wrote every run once (2 widths x 2 seeds); the group checkpoints are gone, and
    # process 1's copies of the outputs went to its own scratch folder.
    assert len(list(out.glob("cache/*/runs/*.npz"))) == 4
    assert not list(out.glob("cache/*/checkpoints/*"))
    (scratch,) = (tmp_path / "tmp1").glob("ntkdepth-process-*")
    assert (scratch / "summary.md").exists() and not list(scratch.glob("cache/*/runs/*.npz"))
    assert not list((tmp_path / "tmp0").iterdir())


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    if kind == "mesh":
        _worker_mesh(out)
    else:
        _worker_multihost(out, int(sys.argv[3]), int(sys.argv[4]))
