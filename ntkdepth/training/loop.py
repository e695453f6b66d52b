"""Training one finite network with optax: full-batch gradient descent or SGD, MSE or cross-entropy,
optionally centred, the steps between records in one compiled loop
(docs/predictor.md#training-steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntkdepth.empirical.drift import feature_record
from ntkdepth.grids import log_grid
from ntkdepth.models.functional import FunctionalModel

__all__ = [
    "LOSSES",
    "FullBatchData",
    "PairData",
    "TrainSpec",
    "make_optimizer",
    "loss_fn",
    "StepFunctions",
    "Trainer",
    "divergence_error",
    "record_steps_grid",
    "step_functions",
    "NonFiniteDataError",
    "TrainingDiverged",
]

LOSSES = ("mse", "xent")


class TrainingDiverged(FloatingPointError):
    """A batch loss that became non-finite or rose far above the initial loss."""

    def __init__(self, message: str, step: int, loss: float):
        super().__init__(message)
        self.step, self.loss = step, loss


class NonFiniteDataError(FloatingPointError, ValueError):
    """Training data holding NaN or inf, or values too large for float32 arithmetic: a fault of the
    data, not of the optimizer."""


@dataclass(frozen=True)
class TrainSpec:
    """How to train: ``steps`` optimizer steps, recording at ``record_steps``."""

    steps: int
    learning_rate: float
    loss: str = "mse"
    batch_size: int | None = None  # None: full batch
    momentum: float = 0.0
    record_steps: tuple[int, ...] = ()
    center_output: bool = False
    # Training stops with TrainingDiverged when a batch loss exceeds this many
    # times the initial loss on the evaluation batch (None: only NaN and inf stop it).
    divergence_factor: float | None = 1000.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be positive and finite; got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {self.momentum}")
        f = self.divergence_factor
        if f is not None and not (f > 1):  # also refuses NaN
            raise ValueError(f"divergence_factor must be above 1 (or None); got {f}")
        bad = [s for s in self.record_steps if not 0 <= s <= self.steps]
        if bad:
            raise ValueError(f"record_steps {bad} lie outside [0, steps={self.steps}]")

    @property
    def records(self) -> tuple[int, ...]:
        """The recorded steps, always including 0 and the last step."""
        return tuple(sorted({0, self.steps, *self.record_steps}))


def make_optimizer(spec: TrainSpec, lr_multiplier: float = 1.0) -> optax.GradientTransformation:
    """Plain SGD (gradient descent when full batch), with heavy-ball momentum if asked."""
    lr = spec.learning_rate * lr_multiplier
    return optax.sgd(lr, momentum=spec.momentum or None)


def loss_fn(kind: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``loss(f [B, K], y) -> scalar``: the batch mean.

    ``y`` is ``[B, K]`` targets or ``[B]`` integer classes. For classes the MSE
    target is the one-hot vector, computed as ``|f|^2/2 - f_y + 1/2`` without
    forming the ``[B, K]`` one-hot matrix.
    """
    if kind == "mse":

        def mse(f, y):
            if jnp.issubdtype(y.dtype, jnp.integer):
                fy = jnp.take_along_axis(f, y[:, None], axis=1)[:, 0]
                return jnp.mean(0.5 * jnp.sum(f * f, -1) - fy + 0.5)
            return jnp.mean(0.5 * jnp.sum((f - y) ** 2, -1))

        return mse
    if kind == "xent":

        def xent(f, y):
            if jnp.issubdtype(y.dtype, jnp.integer):
                return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(f, y))
            return jnp.mean(optax.softmax_cross_entropy(f, y))

        return xent
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


class FullBatchData(NamedTuple):
    """Inputs ``x [N, ...]`` and targets ``y [N, K]`` (or integer classes ``[N]``)."""

    x: jax.Array
    y: jax.Array

    def batch(self, key, batch_size: int | None):
        """``(x, y, rows)``: ``rows`` index the training inputs (for centering)."""
        if batch_size is None or batch_size >= self.x.shape[0]:
            return self.x, self.y, jnp.arange(self.x.shape[0])
        idx = jax.random.randint(key, (batch_size,), 0, self.x.shape[0])
        return self.x[idx], self.y[idx], idx

    def eval_batch(self):
        return self.x, self.y, jnp.arange(self.x.shape[0])

    def centering_inputs(self):
        """The inputs whose initial outputs a centered network subtracts, indexed by ``rows``."""
        return self.x


class PairData(NamedTuple):
    """``(input, target class)`` pairs ``[P, 2]`` (skip-gram: center, context), drawn with replacement.

    Drawing with replacement makes the expected batch gradient the gradient
    of the loss over all pairs, so SGD follows that loss's gradient flow in
    expectation.
    """

    pairs: jax.Array
    eval_pairs: jax.Array

    @classmethod
    def create(cls, pairs, n_eval: int = 4096, seed: int = 0) -> PairData:
        pairs = np.asarray(pairs, dtype=np.int32)
        rng = np.random.default_rng(seed)
        sub = pairs[rng.choice(len(pairs), min(n_eval, len(pairs)), replace=False)]
        return cls(jnp.asarray(pairs), jnp.asarray(sub))

    def batch(self, key, batch_size: int | None):
        if batch_size is None:
            raise ValueError("pair data is trained with SGD: give a batch_size")
        idx = jax.random.randint(key, (batch_size,), 0, self.pairs.shape[0])
        b = self.pairs[idx]
        return b[:, 0], b[:, 1], b[:, 0]

    def eval_batch(self):
        return self.eval_pairs[:, 0], self.eval_pairs[:, 1], self.eval_pairs[:, 0]

    def centering_inputs(self):
        """Every token of the vocabulary: ``rows`` are the centers' ids."""
        return jnp.arange(int(np.asarray(self.pairs).max()) + 1, dtype=jnp.int32)


class StepFunctions(NamedTuple):
    """The pure functions of one network's training (:func:`step_functions`).

    ``jax.jit`` them to train one network (:class:`Trainer`), or ``jax.jit`` their
    ``jax.vmap`` to train networks stacked along a leading axis
    (:class:`~ntkdepth.training.parallel.SeedGroup`).

    - ``init(params) -> opt_state``: the optimizer's state at step 0.
    - ``offsets(params) -> [N_c, K]``: the initial outputs a centered network
      subtracts, on the data's centering inputs (``spec.center_output``).
    - ``advance(params, opt_state, key, offsets, bound, n) -> (params, opt_state,
      key, first_bad, bad_loss)``: ``n`` optimizer steps in one ``lax.fori_loop``;
      ``first_bad`` is the first of them whose batch loss is not finite or
      exceeds ``bound`` (-1 if none), ``bad_loss`` that loss.
    - ``measure(params, offsets) -> (loss, outputs [n_eval, K], features
      [n_eval, width])``: the loss on the data's evaluation batch and the network
      on the evaluation inputs.
    """

    init: Callable
    offsets: Callable
    advance: Callable
    measure: Callable


def step_functions(fm: FunctionalModel, data, spec: TrainSpec, eval_inputs: jax.Array,
                   optimizer: optax.GradientTransformation) -> StepFunctions:
    """The pure functions that train ``fm`` on ``data`` with ``optimizer`` as ``spec`` says.

    Raises :class:`NonFiniteDataError` if the data hold NaN or inf (or targets
    whose squares overflow float32).
    """
    _check_finite_data(data)
    loss = loss_fn(spec.loss)
    batch_size, center = spec.batch_size, spec.center_output

    def objective(params, x, y, offset):
        return loss(fm.apply(params, x)[0] - offset, y)

    def step(i, carry):
        params, opt_state, key, table, bound, first_bad, bad_loss = carry
        key, sub = jax.random.split(key)
        x, y, rows = data.batch(sub, batch_size)
        value, grads = jax.value_and_grad(objective)(params, x, y, table[rows] if center else 0.0)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # The first step whose batch loss is not finite or exceeds the bound.
        bad = (~jnp.isfinite(value) | (value > bound)) & (first_bad < 0)
        first_bad = jnp.where(bad, i, first_bad)
        bad_loss = jnp.where(bad, value.astype(bad_loss.dtype), bad_loss)
        return (optax.apply_updates(params, updates), opt_state, key, table, bound, first_bad,
                bad_loss)

    def advance(params, opt_state, key, table, bound, n):
        carry = (params, opt_state, key, table, bound, jnp.int32(-1), jnp.float32(0))
        params, opt_state, key, _, _, first_bad, bad_loss = jax.lax.fori_loop(0, n, step, carry)
        return params, opt_state, key, first_bad, bad_loss

    def measure(params, table):
        f, a = fm.apply(params, eval_inputs)
        xe, ye, rows = data.eval_batch()
        return objective(params, xe, ye, table[rows] if center else 0.0), f, a

    centering_inputs = data.centering_inputs() if center else None

    def offsets(params):
        return fm.apply(params, centering_inputs)[0]

    return StepFunctions(optimizer.init, offsets, advance, measure)


def divergence_error(spec: TrainSpec, data, loss0: float, step: int, loss: float,
                     lr_multiplier: float = 1.0) -> FloatingPointError:
    """The error to raise for the batch loss ``loss`` at ``step`` that is not finite or above its bound.

    :class:`NonFiniteDataError` when the initial loss ``loss0`` is already
    beyond what float32 steps can follow (the data's fault), else
    :class:`TrainingDiverged`, with the learning rate to lower.
    """
    lr = spec.learning_rate * lr_multiplier
    if not loss0 <= _SQUARE_LIMIT:  # inf, NaN, or beyond what float32 steps can follow
        return NonFiniteDataError(
            f"training stopped at step {step} (batch loss {loss:.4g}), but the cause is the data: the loss "
            f"of the untrained network is already {loss0:.4g}, before any step (the data's "
            f"{_data_scale(data)}), too large for float32 arithmetic whatever the learning rate; "
            "rescale the inputs or targets (e.g. to unit scale)")
    what = (f"the batch loss is {loss} at step {step}" if not np.isfinite(loss) else
            f"the batch loss reached {loss:.4g} at step {step}, "
            f"{loss / loss0:.3g} times its initial {loss0:.4g} "
            f"(divergence_factor = {spec.divergence_factor:g})")
    return TrainingDiverged(
        f"training diverged: {what}. Lower the learning rate (now {lr:g}), or raise "
        "divergence_factor (e.g. --set divergence_factor=1e6) if the loss is expected to spike "
        "this far", step, loss)


@dataclass
class Trainer:
    """Compiled training of one functional model (:func:`ntkdepth.models.functional`).

    ``trainer.init_state(key)`` gives the state at step 0,
    ``trainer.run_until(state, stop)`` advances it to step ``stop`` in one
    compiled loop, ``trainer.measure(state)`` measures it and
    ``trainer.drift(a0, at)`` reduces the features' drift. The compiled
    functions are :func:`step_functions`, jitted.
    """

    fm: FunctionalModel
    data: Any
    spec: TrainSpec
    eval_inputs: jax.Array
    lr_multiplier: float = 1.0

    def __post_init__(self):
        self.optimizer = make_optimizer(self.spec, self.lr_multiplier)
        self.step_functions = step_functions(self.fm, self.data, self.spec, self.eval_inputs, self.optimizer)
        self._advance = jax.jit(self.step_functions.advance)
        self._measure = jax.jit(self.step_functions.measure)
        self._offsets = jax.jit(self.step_functions.offsets)
        self._record = jax.jit(feature_record)

    def init_state(self, key: jax.Array, params=None) -> dict:
        """The state at step 0: the model's parameters, or ``params`` of the same structure."""
        params = self.fm.params if params is None else params
        if self.spec.center_output:
            # f_theta(x) - f_theta0(x): the same NTK, and the residual starts at -y.
            table = self._offsets(params)
        else:
            table = jnp.zeros((1, 1), jax.tree_util.tree_leaves(params)[0].dtype)
        factor = self.spec.divergence_factor
        loss0 = float(self._measure(params, table)[0]) if factor is not None else 0.0
        return {
            "params": params,
            "opt_state": self.optimizer.init(params),
            "key": key,
            "offsets": table,
            "step": 0,
            # Batch losses above this bound stop training (TrainingDiverged).
            "loss_bound": factor * loss0 if factor is not None and loss0 > 0 else np.inf,
            "loss0": loss0,
        }

    def run_until(self, state: dict, stop: int) -> dict:
        """``state`` advanced to step ``stop``.

        Raises :class:`TrainingDiverged` if a batch loss on the way is NaN, inf, or
        above ``state["loss_bound"]`` (``spec.divergence_factor`` times the initial loss).
        """
        n = stop - state["step"]
        if n < 0:
            raise ValueError(f"cannot go back from step {state['step']} to {stop}")
        if n:
            bound = jnp.asarray(state.get("loss_bound", np.inf), jnp.float32)
            params, opt_state, key, first_bad, bad_loss = self._advance(
                state["params"], state["opt_state"], state["key"], state["offsets"], bound,
                jnp.asarray(n, jnp.int32),
            )
            if int(first_bad) >= 0:
                raise divergence_error(self.spec, self.data, state["loss0"], state["step"] + int(first_bad) + 1,
                                       float(bad_loss), self.lr_multiplier)
            state = {**state, "params": params, "opt_state": opt_state, "key": key, "step": stop}
        return state

    def measure(self, state: dict):
        """``(loss, outputs [n_eval, K], features [n_eval, width])`` at ``state``.

        The outputs are the network's own, not centered: subtract those at step 0
        for the centered network's.
        """
        return self._measure(state["params"], state["offsets"])

    def drift(self, a0: jax.Array, at: jax.Array) -> dict[str, jax.Array]:
        """:func:`~ntkdepth.empirical.feature_record` of features ``at`` against ``a0`` (``[n_eval, width]`` each)."""
        return self._record(a0, at)


def _check_finite_data(data) -> None:
    """Raises :class:`NonFiniteDataError` if floating-point inputs or targets hold NaN or inf."""
    for name in getattr(type(data), "_fields", ()):
        value = getattr(data, name)
        if not np.issubdtype(getattr(value, "dtype", np.dtype(object)), np.floating):
            continue
        a = np.asarray(value)
        bad = ~np.isfinite(a)
        if bad.any():
            where = np.argwhere(bad)[0].tolist()
            raise NonFiniteDataError(
                f"the training data's {name!r} holds {int(bad.sum())} NaN or inf value(s) "
                f"(first at index {where}): fix or drop those entries of the data; training on "
                "them cannot give finite losses whatever the learning rate"
            )
        largest = float(np.max(np.abs(a))) if a.size else 0.0
        if name == "y" and largest > _SQUARE_LIMIT:
            raise NonFiniteDataError(
                f"the training data's targets 'y' reach {largest:.3g}: their squares exceed float32's largest "
                f"number ({np.finfo(np.float32).max:.3g}), so the loss is inf before any step, whatever "
                "the learning rate; rescale the targets (e.g. to unit scale)"
            )


# Targets beyond this overflow float32 in the squared error.
_SQUARE_LIMIT = float(np.sqrt(np.finfo(np.float32).max))


def _data_scale(data) -> str:
    """The largest magnitude of each floating-point field of ``data``, for messages."""
    parts = []
    for name in getattr(type(data), "_fields", ()):
        value = getattr(data, name)
        if np.issubdtype(getattr(value, "dtype", np.dtype(object)), np.floating) and np.size(value):
            parts.append(f"largest |{name}| {float(np.max(np.abs(np.asarray(value)))):.3g}")
    return ", ".join(parts) or "its values"


def record_steps_grid(steps: int, n: int) -> tuple[int, ...]:
    """``n`` recorded steps, log-spaced from 1 to ``steps``, plus 0."""
    if n <= 1:
        return (0, steps)
    return tuple(sorted({0, *log_grid(steps, n).tolist(), steps}))
