"""Width sweeps: the same network trained at many widths and seeds, resumable (paper, section 5).

:func:`run_width_sweep` trains one network per ``(width, seed)`` and records,
at chosen steps, the loss, the outputs on fixed evaluation inputs and the
drift of the last hidden layer from initialization (:func:`feature_record`).
It is built for long runs:

- a finished ``(width, seed)`` run is stored in ``workdir/runs/`` and never
  recomputed for the same settings: its file is named by :func:`run_key`, a
  hash of everything that shapes the run (the :class:`TrainSpec`, the data
  and evaluation inputs, the network's structure and static settings, its
  width and seed, and the caller's ``settings``), and carries that hash and
  the settings inside, checked when it is read. Other settings get other
  files; adding a width trains only that width;
- a run in progress is checkpointed with orbax in ``workdir/checkpoints/`` at
  every recorded step (and every ``checkpoint_every`` steps), in a folder
  named by the same key, so an interrupted sweep resumes from the last
  checkpoint of the same settings;
- a training loss that diverges stops the sweep with
  :class:`~ntkdepth.training.loop.TrainingDiverged`, naming the width, seed,
  step and loss;
- a width whose estimated memory exceeds what the device has is refused
  before anything is trained (:func:`check_memory`);
- a progress bar counts steps over the whole sweep.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ntkdepth.models import MLP, functional
from ntkdepth.storage import DamagedFileError, array_digest, load_npz, save_npz, settings_hash
from ntkdepth.training.loop import Trainer, TrainingDiverged, TrainSpec

__all__ = [
    "MemoryEstimate",
    "SweepRun",
    "WidthTooLargeError",
    "available_memory",
    "check_memory",
    "estimate_memory",
    "run_key",
    "run_paths",
    "run_settings",
    "run_width_sweep",
    "sweep_settings",
]

STAT_KEYS = ("aggregate", "per_neuron_mean", "per_neuron_max", "relative", "gram", "norm")


class WidthTooLargeError(MemoryError, ValueError):
    """A network that will not fit in the device's memory."""


@dataclass(frozen=True)
class MemoryEstimate:
    n_params: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.n_params:,} parameters, about {self.bytes / 2**30:.2f} GiB"


def estimate_memory(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    batch_size: int,
    n_eval: int,
    momentum: bool = False,
    bytes_per_number: int = 4,
) -> MemoryEstimate:
    """What training one network holds at once: parameters, gradients, optimizer state, activations."""
    dims = [in_dim, *hidden, out_dim]
    n_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    # Parameters, their gradients and the updated copy; a momentum buffer.
    copies = 3 + int(momentum)
    rows = batch_size + 2 * n_eval
    activations = 3 * rows * sum(dims[1:])  # pre-activations, activations, their cotangents
    total = bytes_per_number * (copies * n_params + activations + n_eval * 2 * hidden[-1])
    return MemoryEstimate(n_params, int(total))


def available_memory(device: jax.Device | None = None) -> int:
    """Bytes the device can hold: the accelerator's limit, or the host's available memory."""
    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # CPU devices do not report memory statistics everywhere.
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(estimate: MemoryEstimate, what: str, *, fraction: float = 0.8, available: int | None = None):
    """Raises :class:`WidthTooLargeError` if ``estimate`` exceeds ``fraction`` of the memory available."""
    available = available_memory() if available is None else available
    if estimate.bytes > fraction * available:
        raise WidthTooLargeError(
            f"{what} will not fit in memory: it needs {estimate}, and the device has "
            f"{available / 2**30:.2f} GiB available ({fraction:.0%} usable). Use a smaller width "
            "or batch, or a device with more memory."
        )


@dataclass
class SweepRun:
    """One ``(width, seed)`` run: records ``[R, ...]`` at ``steps [R]``."""

    width: int
    seed: int
    steps: np.ndarray
    loss: np.ndarray
    outputs: np.ndarray  # [R, n_eval, K]
    stats: dict[str, np.ndarray]  # STAT_KEYS -> [R, n_eval] ([R, n_eval, n_eval] for gram)
    features0: np.ndarray | None = None  # [n_eval, width] if kept
    features: np.ndarray | None = None  # [R, n_eval, width] if kept
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # from ``final_measures``

    def save(self, path: Path, key: str | None = None, settings: dict | None = None) -> None:
        """Writes the run to ``path`` (whole or not at all), with its key and settings if given."""
        arrays = {"width": self.width, "seed": self.seed, "steps": self.steps, "loss": self.loss,
                  "outputs": self.outputs, **{f"stat_{k}": v for k, v in self.stats.items()}}
        if self.features is not None:
            arrays["features"] = self.features
        arrays.update({f"extra_{k}": np.asarray(v) for k, v in self.extra.items()})
        if key is not None:
            arrays["run_key"] = np.asarray(key)
            arrays["run_settings"] = np.asarray(json.dumps(settings or {}, sort_keys=True))
        save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path, key: str | None = None) -> SweepRun:
        """The run stored in ``path``; with ``key``, checks that it is the run of those settings."""
        z = load_npz(path)
        try:
            if key is not None and str(z.get("run_key", "")) != key:
                raise DamagedFileError(
                    path, f"it holds the run of settings {str(z.get('run_key', 'unknown'))!r}, "
                    f"not {key!r} as its name says")
            stats = {k[5:]: z[k] for k in z if k.startswith("stat_")}
            feats = z.get("features")
            extra = {k[6:]: z[k] for k in z if k.startswith("extra_")}
            return cls(int(z["width"]), int(z["seed"]), z["steps"], z["loss"], z["outputs"], stats,
                       None if feats is None else feats[0], feats, extra)
        except KeyError as err:
            raise DamagedFileError(path, f"no array {err}") from None


def sweep_settings(data, spec: TrainSpec, eval_inputs, *, keep_features: bool = False,
                   final_measures=None, settings: dict | None = None) -> dict:
    """What shapes every run of a sweep, as JSON: the spec, digests of the data, the caller's settings.

    The data and evaluation inputs enter through digests of their bytes, so
    other data gives other keys even where the caller's settings do not say so.
    """
    data_fields = getattr(type(data), "_fields", None) or ("x", "y")
    return {
        "spec": dataclasses.asdict(spec),
        "data": {"type": type(data).__name__,
                 **{name: array_digest(getattr(data, name)) for name in data_fields}},
        "eval_inputs": array_digest(eval_inputs),
        "keep_features": bool(keep_features),
        "final_measures": None if final_measures is None else
        f"{getattr(final_measures, '__module__', '')}.{getattr(final_measures, '__qualname__', '')}",
        "settings": settings or {},
    }


def _model_description(make_model, width: int, seed: int) -> str:
    """A digest of the network ``make_model(width, seed)`` builds: its structure, static settings, shapes."""
    abstract = nnx.eval_shape(lambda: make_model(width, seed))
    graphdef, state = nnx.split(abstract)
    shapes = jax.tree_util.tree_map(lambda v: f"{v.dtype}{tuple(v.shape)}", nnx.to_pure_dict(state))
    return settings_hash({"graph": repr(graphdef), "shapes": shapes, "class": type(abstract).__name__})


def run_settings(settings: dict, make_model, width: int, seed: int) -> dict:
    """The settings of one run: the sweep's (:func:`sweep_settings`), the network, width and seed."""
    return {**settings, "width": int(width), "seed": int(seed),
            "model": _model_description(make_model, width, seed)}


def run_key(settings: dict) -> str:
    """The hash that names a run's file and checkpoint folder (of :func:`run_settings`)."""
    return settings_hash(settings)


def run_paths(workdir: Path, width: int, seed: int, key: str) -> tuple[Path, Path]:
    """``(finished run .npz, checkpoint folder)`` of the run ``(width, seed)`` with settings ``key``."""
    name = f"w{width}_s{seed}-{key}"
    return Path(workdir) / "runs" / f"{name}.npz", Path(workdir) / "checkpoints" / name


def _empty_records(n_records: int, n_eval: int, n_out: int, width: int, keep_features: bool) -> dict:
    rec = {
        "loss": np.zeros(n_records, np.float32),
        "outputs": np.zeros((n_records, n_eval, n_out), np.float32),
        **{k: np.zeros((n_records, n_eval, n_eval) if k == "gram" else (n_records, n_eval), np.float32)
           for k in STAT_KEYS},
        "filled": np.zeros((), np.int32),
    }
    if keep_features:
        rec["features"] = np.zeros((n_records, n_eval, width), np.float32)
    return rec


def run_width_sweep(
    make_model: Callable[[int, int], MLP],
    data,
    spec: TrainSpec,
    eval_inputs,
    widths: Sequence[int],
    seeds: Sequence[int],
    workdir: str | Path,
    *,
    keep_features: bool = False,
    checkpoint_every: int | None = None,
    checkpoint_interval_s: float = 30.0,
    progress: bool = True,
    memory_fraction: float = 0.8,
    on_run_done: Callable[[SweepRun], None] | None = None,
    final_measures: Callable[[MLP, MLP], dict[str, np.ndarray]] | None = None,
    settings: dict | None = None,
) -> dict[tuple[int, int], SweepRun]:
    """Trains ``make_model(width, seed)`` for every width and seed; returns the runs by ``(width, seed)``.

    ``data`` is a :class:`FullBatchData` or :class:`PairData`; ``eval_inputs``
    are the inputs whose outputs and features are recorded. The SGD stream of
    a run depends only on its seed. Every width is checked against the
    device's memory before the first run starts. A checkpoint is written at a
    recorded step (or every ``checkpoint_every`` steps) once at least
    ``checkpoint_interval_s`` seconds have passed since the last one, so fast
    runs are not slowed down by writing their parameters.

    ``final_measures(initial_model, trained_model)`` (optional) measures
    anything else on a finished run, e.g. its empirical NTK before and after
    training; its arrays are stored with the run (``SweepRun.extra``).

    ``settings`` (JSON-able) names whatever else shapes a run that the sweep
    cannot see in its arguments, e.g. what ``final_measures`` computes: it
    enters every run's key (:func:`run_key`). A stored run or checkpoint is
    reused only under the same key.
    """
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    workdir = Path(workdir).resolve()
    (workdir / "runs").mkdir(parents=True, exist_ok=True)
    eval_inputs = jnp.asarray(eval_inputs)
    n_eval = eval_inputs.shape[0]
    records = spec.records
    batch = spec.batch_size or (data.x.shape[0] if hasattr(data, "x") else 1)

    # Refuse what will not fit before training anything.
    for w in sorted(set(widths)):
        # The model's shape only: nothing is allocated for a width that may not fit.
        abstract = nnx.eval_shape(lambda w=w: make_model(w, 0))
        est = estimate_memory(abstract.in_dim, abstract.hidden, abstract.out_dim, batch_size=batch,
                              n_eval=n_eval, momentum=spec.momentum > 0)
        check_memory(est, f"width {w}", fraction=memory_fraction)

    shared = sweep_settings(data, spec, eval_inputs, keep_features=keep_features,
                            final_measures=final_measures, settings=settings)
    jobs = [(w, s) for w in widths for s in seeds]
    done: dict[tuple[int, int], SweepRun] = {}
    todo = []
    keys = {}
    for w, s in jobs:
        this = run_settings(shared, make_model, w, s)
        keys[(w, s)] = (run_key(this), this)
        path, _ = run_paths(workdir, w, s, keys[(w, s)][0])
        if path.exists():
            done[(w, s)] = SweepRun.load(path, keys[(w, s)][0])
        else:
            todo.append((w, s))
    bar = tqdm(total=len(todo) * spec.steps, desc="width sweep", unit="step", disable=not progress)
    trainers: dict = {}  # one compiled trainer per network structure, shared by the seeds
    try:
        for w, s in todo:
            bar.set_postfix(width=w, seed=s)
            key, this = keys[(w, s)]
            path, ckpt_dir = run_paths(workdir, w, s, key)
            try:
                run = _train_one(make_model, data, spec, eval_inputs, w, s, ckpt_dir, records,
                                 keep_features, checkpoint_every, checkpoint_interval_s, bar, ocp,
                                 final_measures, trainers)
            except TrainingDiverged as err:
                raise TrainingDiverged(f"width {w}, seed {s}: {err}", err.step, err.loss) from None
            run.save(path, key, this)
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            done[(w, s)] = run
            if on_run_done:
                on_run_done(run)
    finally:
        bar.close()
    return {k: done[k] for k in jobs}


def _train_one(make_model, data, spec, eval_inputs, width, seed, ckpt_dir, records, keep_features,
               checkpoint_every, checkpoint_interval_s, bar, ocp, final_measures=None,
               trainers=None) -> SweepRun:
    model = make_model(width, seed)
    fm = functional(model)
    trainers = {} if trainers is None else trainers
    trainer = trainers.get(fm.graphdef)
    if trainer is None:
        trainer = Trainer(fm, data, spec, eval_inputs, lr_multiplier=model.learning_rate_multiplier())
        trainers.clear()  # keep one: a trainer holds its network's compiled steps
        trainers[fm.graphdef] = trainer
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)
    state = trainer.init_state(key, fm.params)
    _, f0, a0 = trainer.measure(state)
    rec = _empty_records(len(records), eval_inputs.shape[0], f0.shape[-1], a0.shape[-1], keep_features)

    manager = ocp.CheckpointManager(
        ckpt_dir, options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    )
    latest = manager.latest_step()
    if latest is not None:
        target = {"params": state["params"], "opt_state": state["opt_state"], "key": state["key"],
                  "offsets": state["offsets"], "a0": np.asarray(a0), "records": rec}
        try:
            restored = manager.restore(latest, args=ocp.args.StandardRestore(target))
        except Exception as err:  # orbax and TensorStore raise many kinds
            manager.close()
            raise DamagedFileError(
                ckpt_dir / str(latest), f"the checkpoint cannot be restored: {type(err).__name__}: "
                f"{str(err)[:300]}", f"delete the folder {ckpt_dir} and run again (that run "
                "restarts from step 0)") from None
        state = {**state, "params": restored["params"], "opt_state": restored["opt_state"],
                 "key": restored["key"], "offsets": restored["offsets"], "step": int(latest)}
        a0 = jnp.asarray(restored["a0"])
        rec = {k: np.asarray(v) for k, v in restored["records"].items()}
        bar.update(int(latest))

    stops = sorted(set(records) | set(
        range(checkpoint_every, spec.steps, checkpoint_every) if checkpoint_every else ()
    ))
    try:
        last_save = time.monotonic()
        for stop in stops:
            # Done already: steps before the restored one, and the restored step itself unless
            # it is a record not yet taken.
            if stop < state["step"] or (stop == state["step"] and (
                    stop not in records or records.index(stop) < int(rec["filled"]))):
                continue
            before = state["step"]
            state = trainer.run_until(state, stop)
            if stop in records:
                r = records.index(stop)
                loss, f, a = trainer.measure(state)
                stats = trainer.drift(a0, a)
                rec["loss"][r] = float(loss)
                rec["outputs"][r] = np.asarray(f)
                for k in STAT_KEYS:
                    rec[k][r] = np.asarray(stats[k])
                if keep_features:
                    rec["features"][r] = np.asarray(a)
                rec["filled"] = np.asarray(r + 1, np.int32)
                if not np.isfinite(rec["loss"][r]) or rec["loss"][r] > state["loss_bound"]:
                    trainer._diverged(state, stop, float(rec["loss"][r]))
            bar.update(stop - before)
            if (0 < stop < spec.steps and time.monotonic() - last_save >= checkpoint_interval_s
                    and stop not in manager.all_steps()):
                last_save = time.monotonic()
                manager.save(stop, args=ocp.args.StandardSave(
                    {"params": state["params"], "opt_state": state["opt_state"], "key": state["key"],
                     "offsets": state["offsets"], "a0": np.asarray(a0), "records": rec}), force=True)
                manager.wait_until_finished()
    finally:
        manager.close()
    stats = {k: rec[k] for k in STAT_KEYS}
    extra = {}
    if final_measures is not None:
        extra = {k: np.asarray(v) for k, v in
                 final_measures(make_model(width, seed), fm.model(state["params"])).items()}
    return SweepRun(width, seed, np.asarray(records), rec["loss"], rec["outputs"], stats,
                    rec["features"][0] if keep_features else None,
                    rec.get("features") if keep_features else None, extra)
