"""Width sweeps over a device mesh: the seeds of a width trained together, the seed axis and the
hidden units split over every device of every process
(docs/distributed.md#width-sweeps-on-several-devices-and-hosts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ntkdepth.empirical.drift import STAT_KEYS, feature_record
from ntkdepth.models.functional import FunctionalModel
from ntkdepth.storage import DamagedFileError
from ntkdepth.training.loop import TrainingDiverged, TrainSpec, divergence_error, make_optimizer, step_functions
from ntkdepth.training.memory import WidthTooLargeError, available_memory

__all__ = [
    "SEEDS",
    "HIDDEN",
    "Layout",
    "plan_layout",
    "param_partition_specs",
    "SeedGroup",
    "train_seed_group",
]

SEEDS, HIDDEN = "seeds", "hidden"


@dataclass(frozen=True)
class Layout:
    """How one width runs: ``group`` seeds together on a ``[seed_shards, hidden_shards]`` mesh."""

    group: int
    seed_shards: int
    hidden_shards: int
    bytes_per_device: int = 0
    fits_one_device: bool = True  # one whole network fits on one device

    def mesh(self, devices: Sequence[jax.Device] | None = None) -> Mesh:
        """The mesh over ``devices`` (default ``jax.devices()``), the hidden axis the faster one.

        ``jax.devices()`` lists each process's devices together, so a hidden
        axis no longer than one host's device count stays within a host.
        """
        devices = list(jax.devices() if devices is None else devices)
        n = self.seed_shards * self.hidden_shards
        if len(devices) != n:
            raise ValueError(f"a {self.seed_shards} x {self.hidden_shards} mesh needs {n} devices; "
                             f"got {len(devices)}")
        return Mesh(np.asarray(devices, dtype=object).reshape(self.seed_shards, self.hidden_shards),
                    (SEEDS, HIDDEN))


def plan_layout(
    n_seeds: int,
    width: int,
    bytes_per_network: int,
    *,
    n_devices: int | None = None,
    available: int | None = None,
    fraction: float = 0.8,
) -> Layout:
    """The layout of one width: the most seeds together that fit, every device used.

    For a group of ``g`` seeds on ``D`` devices the seed axis has
    ``s = gcd(g, D)`` shards and the hidden axis ``h = D / s``; each device
    then holds ``g / s`` networks, each split ``h`` ways when ``h`` divides
    ``width`` (else held whole). ``g`` starts at ``n_seeds`` and shrinks until
    that fits in ``fraction`` of ``available`` bytes (default: the first
    device's memory). Raises :class:`~ntkdepth.training.memory.WidthTooLargeError`
    when even one seed split over every device does not fit.
    """
    if n_seeds < 1:
        raise ValueError(f"a width sweep needs at least one seed; got {n_seeds}")
    d = jax.device_count() if n_devices is None else int(n_devices)
    available = available_memory(jax.local_devices()[0]) if available is None else available
    for g in range(n_seeds, 0, -1):
        s = math.gcd(g, d)
        h = d // s
        split = h if width % h == 0 else 1
        per_device = math.ceil(bytes_per_network * (g // s) / split)
        if per_device <= fraction * available:
            return Layout(g, s, h, per_device, bytes_per_network <= fraction * available)
    raise WidthTooLargeError(
        f"width {width} will not fit in memory: one network needs about "
        f"{bytes_per_network / 2**30:.2f} GiB, {per_device / 2**30:.2f} GiB on each of {d} "
        f"device(s) when split along its hidden dimension, and a device has "
        f"{available / 2**30:.2f} GiB available ({fraction:.0%} usable). Use a smaller width or "
        "batch, or more devices (a width divisible by the device count is split over them)."
    )


def _layer_of(path) -> tuple[int | None, str | None]:
    """``(layer index, "kernel" | "bias")`` of a parameter's tree path in an MLP's state."""
    keys = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path]
    for i, k in enumerate(keys[:-1]):
        if k == "layers" and isinstance(keys[i + 1], int):
            name = next((x for x in keys[i + 2:] if x in ("kernel", "bias")), None)
            return keys[i + 1], name
    return None, None


def param_partition_specs(params, hidden_shards: int, *, seed_axis: bool = True):
    """``PartitionSpec`` of every parameter of an :class:`~ntkdepth.models.MLP` state.

    Layer ``l`` of ``L`` (``W^{l+1} [n_l, n_{l+1}]``, 0-based ``l``): even ``l``
    below ``L - 1`` splits its columns (the hidden output units) and its bias;
    odd ``l`` and the output layer split their rows (the hidden input units),
    so a column-split layer feeds a row-split one without gathering its
    activations, and only the row-split layer's outputs are summed over the
    devices. A dimension that
    ``hidden_shards`` does not divide is not split. With ``seed_axis`` every
    spec starts with the ``"seeds"`` axis of the stacked seeds.
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    n_layers = 1 + max((_layer_of(p)[0] or 0) for p, _ in leaves)
    lead = (SEEDS,) if seed_axis else ()

    def spec(path, x):
        layer, name = _layer_of(path)
        shape = x.shape[1:] if seed_axis else x.shape
        dims: list = [None] * len(shape)
        if layer is not None and hidden_shards > 1:
            columns = layer % 2 == 0 and layer < n_layers - 1
            if name == "kernel" and len(shape) == 2:
                axis = 1 if columns else 0
                if shape[axis] % hidden_shards == 0:
                    dims[axis] = HIDDEN
            elif name == "bias" and len(shape) == 1 and columns and shape[0] % hidden_shards == 0:
                dims[0] = HIDDEN
        return P(*lead, *dims)

    return jax.tree_util.tree_map_with_path(spec, params)


class SeedGroup:
    """``g`` networks ``make_model(width, seed)`` of different seeds, trained together on a mesh.

    Compiled once per width and group size; :meth:`init_state` takes the
    group's seeds. The state is the single-network :class:`~ntkdepth.training.Trainer` state
    with a leading seed axis ``[g, ...]`` on every array, advanced by the ``jax.vmap`` of the
    network's ``step_functions``. ``measure`` and ``drift`` return
    host arrays with that leading axis. A seed's network, SGD stream and
    numbers are those of a single-network run of the same seed (to float32
    rounding: the batched products round differently).
    """

    def __init__(self, make_model: Callable[[int, int], nnx.Module], width: int, n_seeds: int,
                 data, spec: TrainSpec, eval_inputs, layout: Layout,
                 devices: Sequence[jax.Device] | None = None):
        self.width, self.n_seeds, self.spec, self.layout = width, int(n_seeds), spec, layout
        if self.n_seeds % layout.seed_shards:
            raise ValueError(f"{n_seeds} seeds cannot be split into {layout.seed_shards} shards")
        self.make_model = make_model
        self.mesh = layout.mesh(devices)
        abstract = nnx.eval_shape(lambda: make_model(width, 0))
        graphdef, abstract_params = nnx.split(abstract)
        self.graphdef = graphdef
        self._features_shape = (len(eval_inputs), abstract.hidden[-1])
        self.data = data
        self.lr_multiplier = (abstract.learning_rate_multiplier()
                              if hasattr(abstract, "learning_rate_multiplier") else 1.0)
        self.step_functions = step_functions(FunctionalModel(graphdef, abstract_params), data, spec,
                                             jnp.asarray(eval_inputs), make_optimizer(spec, self.lr_multiplier))
        stacked = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct((self.n_seeds, *x.shape), x.dtype), abstract_params)
        specs = param_partition_specs(stacked, layout.hidden_shards)
        named = lambda s: NamedSharding(self.mesh, s)  # noqa: E731
        self.param_shardings = jax.tree_util.tree_map(named, specs, is_leaf=lambda x: isinstance(x, P))
        self.by_seed = named(P(SEEDS))
        self.replicated = named(P())
        fns = self.step_functions

        def init_rest(params):
            """The optimizer's state and the centering offsets (``[g, 1, 1]`` zeros without centering)."""
            if spec.center_output:
                offsets = jax.vmap(fns.offsets)(params)
            else:
                offsets = jnp.zeros((self.n_seeds, 1, 1), jax.tree_util.tree_leaves(params)[0].dtype)
            return jax.vmap(fns.init)(params), offsets

        def record(params, offsets, a0):
            loss, f, a = fns.measure(params, offsets)
            return loss, f, a, feature_record(a0, a)

        self._init_rest = jax.jit(init_rest)
        self._record = jax.jit(jax.vmap(record), out_shardings=self.replicated)
        self._gather = jax.jit(lambda p, i: jax.tree_util.tree_map(lambda x: x[i], p),
                               out_shardings=self.replicated)
        self._advance = None  # compiled at the first step, with the state's own shardings

    def init_params(self, seeds: Sequence[int]):
        """The stacked initial parameters ``[g, ...]`` of ``seeds``, laid out on the mesh.

        Every seed gets the same arrays as a single run of it (one vmapped
        initialization of the group). A network that fits on one device
        is initialized there and then distributed; one that does not is
        initialized in place by a compiled function whose outputs are already
        sharded (the same numbers: JAX's random numbers do not depend on where
        they are drawn).
        """
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.n_seeds:
            raise ValueError(f"this group trains {self.n_seeds} seeds; got {len(seeds)}")
        if self.layout.fits_one_device:
            return jax.device_put(self._stacked_initial_params(seeds), self.param_shardings)
        return jax.jit(lambda: self._stacked_initial_params(seeds),
                       out_shardings=self.param_shardings)()

    def _stacked_initial_params(self, seeds: list[int]):
        """``[g, ...]`` initial parameters of ``seeds`` (on the default device, or as traced
        inside ``jit``).

        One vmapped call of ``make_model(width, nnx.Rngs(params=jax.random.key(seed)))``
        (the stream an integer seed gives, so the same numbers) builds them all
        at once, for the cost of about one network. A ``make_model`` that
        needs the seed as a Python integer is called seed by seed instead.
        """
        def one(seed):
            return nnx.split(self.make_model(self.width, nnx.Rngs(params=jax.random.key(seed))))[1]

        if all(0 <= s < 2**31 for s in seeds):
            try:
                return jax.vmap(one)(jnp.asarray(seeds, jnp.int32))
            except Exception:  # noqa: BLE001 - any failure: the seed-by-seed path below
                pass
        states = [nnx.split(self.make_model(self.width, s))[1] for s in seeds]
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)

    def init_state(self, seeds: Sequence[int]) -> dict:
        """The state of ``seeds`` at step 0: ``params``, ``opt_state``, ``key``, ``offsets`` (stacked), ``step``."""
        params = self.init_params(seeds)
        keys = np.stack([np.asarray(jax.random.fold_in(jax.random.PRNGKey(s), 0x5EED))
                         for s in seeds])
        keys = jax.device_put(keys, self.by_seed)
        opt_state, offsets = self._init_rest(params)
        offsets = jax.device_put(offsets, self.by_seed)
        return {"params": params, "opt_state": opt_state, "key": keys, "offsets": offsets, "step": 0,
                "seeds": seeds, "loss0": np.zeros(len(seeds)), "loss_bound": np.full(len(seeds), np.inf)}

    def with_initial_loss(self, state: dict, loss0: np.ndarray) -> dict:
        """``state`` with the initial losses ``[g]`` that set the divergence bounds."""
        factor = self.spec.divergence_factor
        loss0 = np.asarray(loss0, np.float64)
        bound = np.where((loss0 > 0) & (factor is not None), (factor or 0.0) * loss0, np.inf)
        return {**state, "loss0": loss0, "loss_bound": bound}

    def diverged(self, state: dict, i: int, step: int, loss: float):
        """Raises :class:`~ntkdepth.training.TrainingDiverged` for the group's ``i``-th seed, naming width and seed."""
        err = divergence_error(self.spec, self.data, float(state["loss0"][i]), step, loss, self.lr_multiplier)
        if isinstance(err, TrainingDiverged):
            raise TrainingDiverged(f"width {self.width}, seed {state['seeds'][i]}: {err}", err.step,
                                   err.loss) from None
        raise err

    def _compile_advance(self, state):
        shardings = jax.tree_util.tree_map(lambda x: x.sharding,
                                           (state["params"], state["opt_state"], state["key"]))
        donate = (0, 1, 2) if jax.default_backend() != "cpu" else ()
        self._advance = jax.jit(jax.vmap(self.step_functions.advance, in_axes=(0, 0, 0, 0, 0, None)),
                                out_shardings=(*shardings, self.replicated, self.replicated),
                                donate_argnums=donate)

    def run_until(self, state: dict, stop: int) -> dict:
        """``state`` advanced to step ``stop`` in one compiled loop.

        Raises :class:`~ntkdepth.training.TrainingDiverged` (naming the width and the seed) if a
        seed's batch loss on the way is NaN, inf, or above its bound
        (``spec.divergence_factor`` times its initial loss,
        :meth:`with_initial_loss`).
        """
        n = stop - state["step"]
        if n < 0:
            raise ValueError(f"cannot go back from step {state['step']} to {stop}")
        if n:
            if self._advance is None:
                self._compile_advance(state)
            # Above float32's largest number a bound is inf (a loss there is not finite anyway).
            top = np.finfo(np.float32).max
            bound = jax.device_put(np.minimum(state["loss_bound"], top).astype(np.float32), self.by_seed)
            params, opt_state, key, first_bad, bad_loss = self._advance(
                state["params"], state["opt_state"], state["key"], state["offsets"], bound,
                jnp.asarray(n, jnp.int32))
            first_bad = np.asarray(first_bad)
            for i in np.flatnonzero(first_bad >= 0)[:1]:
                self.diverged(state, int(i), state["step"] + int(first_bad[i]) + 1,
                              float(np.asarray(bad_loss)[i]))
            state = {**state, "params": params, "opt_state": opt_state, "key": key, "step": stop}
        return state

    def record(self, state: dict, a0: np.ndarray | None = None):
        """``(loss [g], outputs [g, n_eval, K], features [g, n_eval, width], stats)`` on the host.

        ``stats`` is :func:`~ntkdepth.empirical.feature_record` of every seed against the features
        ``a0 [g, n_eval, width]`` at step 0 (each value ``[g, ...]``); without
        ``a0`` it is measured against zero.
        """
        if a0 is None:
            a0 = np.zeros((self.n_seeds, *self._features_shape), np.float32)
        loss, f, a, stats = self._record(state["params"], state["offsets"], jnp.asarray(a0))
        return (np.asarray(loss), np.asarray(f), np.asarray(a),
                {k: np.asarray(v) for k, v in stats.items()})

    def measure(self, state: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(loss [g], outputs [g, n_eval, K], features [g, n_eval, width])`` on the host."""
        return self.record(state)[:3]

    def model(self, state: dict, i: int) -> nnx.Module:
        """The network of the group's ``i``-th seed at ``state``, gathered onto every process."""
        return nnx.merge(self.graphdef, self._gather(state["params"], i))


def train_seed_group(
    group: SeedGroup,
    seeds: Sequence[int],
    ckpt_dir: Path,
    *,
    keep_features: bool = False,
    checkpoint_every: int | None = None,
    checkpoint_interval_s: float = 30.0,
    bar=None,
    final_measures: Callable | None = None,
):
    """Trains ``seeds`` as one :class:`SeedGroup` to ``spec.steps``; returns one record dict per seed.

    The group is checkpointed with orbax in ``ckpt_dir`` (sharded arrays as
    they are; all processes take part) and resumed from there: the checkpoint
    restores into the group's current layout, whatever the device count that
    wrote it.
    Each returned dict holds ``width``, ``seed``, ``steps``, ``loss [R]``,
    ``outputs [R, n_eval, K]``, ``stats`` (``[R, ...]`` each), ``features``
    (``[R, n_eval, width]`` or None) and ``extra`` (from ``final_measures``).
    """
    import orbax.checkpoint as ocp

    spec, width, seeds = group.spec, group.width, [int(s) for s in seeds]
    records = spec.records
    g, R = len(seeds), len(records)
    state = group.init_state(seeds)
    loss0, f0, a0, _ = group.record(state)
    state = group.with_initial_loss(state, loss0)
    n_eval, K = f0.shape[1], f0.shape[2]
    rec = {
        "loss": np.zeros((R, g), np.float32),
        "outputs": np.zeros((R, g, n_eval, K), np.float32),
        **{k: np.zeros((R, g, n_eval, n_eval) if k == "gram" else (R, g, n_eval), np.float32)
           for k in STAT_KEYS},
        "filled": np.zeros((), np.int32),
    }
    if keep_features:
        rec["features"] = np.zeros((R, g, n_eval, width), np.float32)

    ckpt_dir = Path(ckpt_dir)
    manager = ocp.CheckpointManager(ckpt_dir.resolve(),
                                    options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))

    def snapshot():
        return {"params": state["params"], "opt_state": state["opt_state"], "key": state["key"],
                "offsets": state["offsets"], "a0": a0, "records": rec}

    latest = manager.latest_step()
    if latest is not None:
        try:
            restored = manager.restore(latest, args=ocp.args.StandardRestore(snapshot()))
        except Exception as err:  # orbax and TensorStore raise many kinds
            manager.close()
            raise DamagedFileError(
                ckpt_dir / str(latest), f"the checkpoint cannot be restored: {type(err).__name__}: "
                f"{str(err)[:300]}", f"delete the folder {ckpt_dir} and run again (those runs "
                "restart from step 0)") from None
        state = {**state, "params": restored["params"], "opt_state": restored["opt_state"],
                 "key": restored["key"], "offsets": restored["offsets"], "step": int(latest)}
        a0 = np.asarray(restored["a0"])
        rec = {k: np.asarray(v) for k, v in restored["records"].items()}
        if bar is not None:
            bar.update(int(latest) * g)

    stops = sorted(set(records) | set(
        range(checkpoint_every, spec.steps, checkpoint_every) if checkpoint_every else ()))
    try:
        last_save, gap = time.monotonic(), checkpoint_interval_s
        for stop in stops:
            # Done already: steps before the restored one, and the restored step itself unless
            # it is a record not yet taken.
            if stop < state["step"] or (stop == state["step"] and (
                    stop not in records or records.index(stop) < int(rec["filled"]))):
                continue
            before = state["step"]
            state = group.run_until(state, stop)
            if stop in records:
                r = records.index(stop)
                loss, f, a, stats = group.record(state, a0)
                rec["loss"][r] = loss
                rec["outputs"][r] = f
                for k in STAT_KEYS:
                    rec[k][r] = stats[k]
                if keep_features:
                    rec["features"][r] = a
                rec["filled"] = np.asarray(r + 1, np.int32)
                for i in np.flatnonzero(~np.isfinite(loss) | (loss > state["loss_bound"]))[:1]:
                    group.diverged(state, int(i), stop, float(loss[i]))
            if bar is not None:
                bar.update((stop - before) * g)
            # Step 0 is not worth saving: starting afresh gives it again.
            if (0 < stop < spec.steps and time.monotonic() - last_save >= gap
                    and stop not in manager.all_steps()):
                started = time.monotonic()
                manager.save(stop, args=ocp.args.StandardSave(snapshot()), force=True)
                manager.wait_until_finished()
                last_save = time.monotonic()
                # A large group's save can take as long as the interval itself (8,192 wide, four seeds:
                # 5 to 10 s on a loaded disk): training keeps at least 4/5 of the time.
                if checkpoint_interval_s > 0:
                    gap = max(checkpoint_interval_s, 4.0 * (last_save - started))
    finally:
        manager.close()

    out = []
    for i, s in enumerate(seeds):
        extra = {}
        if final_measures is not None:
            extra = {k: np.asarray(v) for k, v in
                     final_measures(group.make_model(width, s), group.model(state, i)).items()}
        out.append({
            "width": width, "seed": s, "steps": np.asarray(records), "loss": rec["loss"][:, i],
            "outputs": rec["outputs"][:, i], "stats": {k: rec[k][:, i] for k in STAT_KEYS},
            "features": rec["features"][:, i] if keep_features else None, "extra": extra,
        })
    return out
