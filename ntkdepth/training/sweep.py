"""Width sweeps: one network trained at many widths and seeds (paper, section 5), resumed where it
stopped, refused before training where a width will not fit (docs/distributed.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ntkdepth.models import MLP
from ntkdepth.storage import DamagedFileError, array_digest, load_npz, save_npz, settings_hash
from ntkdepth.training.distributed import barrier, is_writer, same_on_every_process
from ntkdepth.training.loop import TrainSpec
from ntkdepth.training.memory import estimate_memory
from ntkdepth.training.parallel import SeedGroup, plan_layout, train_seed_group

__all__ = [
    "SweepRun",
    "run_key",
    "run_file",
    "run_settings",
    "run_width_sweep",
    "sweep_settings",
    "group_checkpoint_dir",
]

@dataclass
class SweepRun:
    """One ``(width, seed)`` run: records ``[R, ...]`` at ``steps [R]``."""

    width: int
    seed: int
    steps: np.ndarray
    loss: np.ndarray
    outputs: np.ndarray  # [R, n_eval, K]
    stats: dict[str, np.ndarray]  # ntkdepth.empirical.drift.STAT_KEYS -> [R, n_eval] ([R, n_eval, n_eval] for gram)
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


def run_file(workdir: Path, width: int, seed: int, key: str) -> Path:
    """The finished run ``(width, seed)`` with settings ``key`` (its checkpoints:
    :func:`group_checkpoint_dir`)."""
    return Path(workdir) / "runs" / f"w{width}_s{seed}-{key}.npz"


def run_width_sweep(
    make_model: Callable[[int, int], MLP],
    data,
    spec: TrainSpec,
    eval_inputs,
    widths: Sequence[int],
    seeds: Sequence[int] | Mapping[int, Sequence[int]],
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
    are the inputs whose outputs and features are recorded. ``seeds`` are the
    seeds of every width, or a mapping from each width to its own seeds (fewer
    where a width is costly). The SGD stream of
    a run depends only on its seed. The seeds of a width train together on
    every device (:func:`~ntkdepth.training.parallel.plan_layout` lays them
    out; every width is planned against the devices' memory before the first
    run starts). A checkpoint is written at a
    recorded step (or every ``checkpoint_every`` steps) once at least
    ``checkpoint_interval_s`` seconds (and four times the last save's own
    duration) have passed since the last one, so fast runs and large groups
    are not slowed down by writing their parameters.

    ``make_model(width, seed)`` passes ``seed`` on as the network's ``rngs``:
    to build a group's networks in one vmapped call it is also given
    ``nnx.Rngs(params=jax.random.key(seed))``, the stream an integer seed
    makes (a ``make_model`` that needs the integer itself is called seed by
    seed).

    ``final_measures(initial_model, trained_model)`` (optional) measures
    anything else on a finished run, e.g. its empirical NTK before and after
    training; its arrays are stored with the run (``SweepRun.extra``).

    ``settings`` (JSON-able) names whatever else shapes a run that the sweep
    cannot see in its arguments, e.g. what ``final_measures`` computes: it
    enters every run's key (``run_key``). A stored run or checkpoint is
    reused only under the same key.
    """
    from tqdm import tqdm

    # Every process works in process 0's folder (shared between hosts).
    workdir = Path(same_on_every_process(str(Path(workdir).resolve())))
    for p in [workdir, *workdir.parents]:
        if p.exists() and not p.is_dir():
            where = "is" if p == workdir else f"lies under {p}, which is"
            raise NotADirectoryError(f"the sweep's folder {workdir} {where} a file, not a folder; name a folder "
                                     "(it is created where missing)")
    if is_writer():
        (workdir / "runs").mkdir(parents=True, exist_ok=True)
    eval_inputs = jnp.asarray(eval_inputs)
    n_eval = eval_inputs.shape[0]
    batch = spec.batch_size or (data.x.shape[0] if hasattr(data, "x") else 1)

    seeds_of = {w: list(seeds[w] if isinstance(seeds, Mapping) else seeds) for w in widths}
    # Refuse what will not fit, even split over every device, before training anything.
    estimates = {}
    for w in sorted(set(widths)):
        # The model's shape only: nothing is allocated for a width that may not fit.
        abstract = nnx.eval_shape(lambda w=w: make_model(w, 0))
        estimates[w] = estimate_memory(abstract.in_dim, abstract.hidden, abstract.out_dim,
                                       batch_size=batch, n_eval=n_eval, momentum=spec.momentum > 0)
        plan_layout(len(seeds_of[w]), w, estimates[w].bytes, fraction=memory_fraction)

    shared = sweep_settings(data, spec, eval_inputs, keep_features=keep_features,
                            final_measures=final_measures, settings=settings)
    jobs = [(w, s) for w in widths for s in seeds_of[w]]
    done: dict[tuple[int, int], SweepRun] = {}
    todo = []
    keys = {}
    for w, s in jobs:
        this = run_settings(shared, make_model, w, s)
        keys[(w, s)] = (run_key(this), this)
    # Which runs are finished: process 0's view, so that every process trains the same groups.
    found = same_on_every_process(np.array(
        [run_file(workdir, w, s, keys[(w, s)][0]).exists() for w, s in jobs], bool))
    for (w, s), exists in zip(jobs, found):
        if exists:
            done[(w, s)] = SweepRun.load(run_file(workdir, w, s, keys[(w, s)][0]), keys[(w, s)][0])
        else:
            todo.append((w, s))
    bar = tqdm(total=len(todo) * spec.steps, desc="width sweep", unit="step", disable=not progress)
    try:
        for w in dict.fromkeys(w for w, _ in todo):
            # The seeds of a width in groups trained together on every device (parallel.py).
            pending = [s for v, s in todo if v == w]
            layout = plan_layout(len(pending), w, estimates[w].bytes, fraction=memory_fraction)
            groups: dict = {}  # compiled once per layout
            for i in range(0, len(pending), layout.group):
                chunk = pending[i:i + layout.group]
                lay = layout if len(chunk) == layout.group else plan_layout(
                    len(chunk), w, estimates[w].bytes, fraction=memory_fraction)
                if lay not in groups:
                    groups.clear()
                    groups[lay] = SeedGroup(make_model, w, lay.group, data, spec, eval_inputs, lay)
                bar.set_postfix(width=w, seeds=",".join(map(str, chunk)),
                                mesh=f"{lay.seed_shards}x{lay.hidden_shards}")
                run_keys = [keys[(w, s)][0] for s in chunk]
                ckpt_dir = group_checkpoint_dir(workdir, w, chunk, run_keys)
                results = train_seed_group(
                    groups[lay], chunk, ckpt_dir, keep_features=keep_features,
                    checkpoint_every=checkpoint_every, checkpoint_interval_s=checkpoint_interval_s,
                    bar=bar, final_measures=final_measures)
                for r in results:
                    s = r["seed"]
                    key, this = keys[(w, s)]
                    feats = r["features"]
                    run = SweepRun(w, s, r["steps"], r["loss"], r["outputs"], r["stats"],
                                   None if feats is None else feats[0], feats, r["extra"])
                    if is_writer():  # the outputs are written once
                        run.save(run_file(workdir, w, s, key), key, this)
                    done[(w, s)] = run
                    if on_run_done:
                        on_run_done(run)
                barrier(f"width sweep: {ckpt_dir.name} done")
                if is_writer():
                    shutil.rmtree(ckpt_dir, ignore_errors=True)
    finally:
        bar.close()
    return {k: done[k] for k in jobs}


def group_checkpoint_dir(workdir: Path, width: int, seeds: Sequence[int], run_keys: Sequence[str]) -> Path:
    """The checkpoint folder of the seeds of ``width`` trained together, named by their runs' keys."""
    key = run_keys[0] if len(run_keys) == 1 else settings_hash(list(run_keys))
    return Path(workdir) / "checkpoints" / f"w{width}_s{'_'.join(str(s) for s in seeds)}-{key}"
