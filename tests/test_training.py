"""Training loops, the width sweep's checkpoints and resumption, and memory refusal."""

import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.models import MLP, functional
from ntkdepth.theory import GradientFlowPredictor
from ntkdepth.training import (
    FullBatchData,
    PairData,
    Trainer,
    TrainSpec,
    WidthTooLargeError,
    available_memory,
    check_memory,
    estimate_memory,
    loss_fn,
    make_optimizer,
    run_width_sweep,
    step_functions,
)
from ntkdepth.training import sweep as sweep_module
from ntkdepth.training.parallel import SeedGroup


def test_mse_on_classes_equals_mse_on_one_hot_targets(rng):
    f = jnp.asarray(rng.normal(size=(5, 7)), jnp.float32)
    y = jnp.array([0, 6, 3, 3, 1])
    mse = loss_fn("mse")
    np.testing.assert_allclose(mse(f, y), mse(f, jax.nn.one_hot(y, 7)), rtol=1e-6)
    np.testing.assert_allclose(
        mse(f, y), np.mean(0.5 * np.sum((np.asarray(f) - np.eye(7)[np.asarray(y)]) ** 2, -1)), rtol=1e-6
    )
    xent = loss_fn("xent")
    np.testing.assert_allclose(
        xent(f, y), np.mean(optax.softmax_cross_entropy(f, jax.nn.one_hot(y, 7))), rtol=1e-6
    )


def test_one_step_is_gradient_descent_on_the_batch_loss(x64, rng):
    """A full-batch step moves a weight by -lr * dL/dw, dL/dw by central differences."""
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.normal(size=(6, 2)))
    net = MLP(3, [5, 4], 2, b_std=0.2, rngs=0, param_dtype=jnp.float64)
    fm = functional(net)
    spec = TrainSpec(steps=1, learning_rate=0.3)
    trainer = Trainer(fm, FullBatchData(x, y), spec, x)
    state = trainer.run_until(trainer.init_state(jax.random.PRNGKey(0)), 1)
    w0 = np.asarray(fm.params["layers"][1]["kernel"][...])
    w1 = np.asarray(state["params"]["layers"][1]["kernel"][...])

    def loss_with(entry, eps):
        params = jax.tree_util.tree_map(lambda v: v, fm.params)
        w = np.array(w0)
        w[entry] += eps
        params["layers"][1]["kernel"] = params["layers"][1]["kernel"].replace(jnp.asarray(w))
        f = fm.output(params, x)
        return float(np.mean(0.5 * np.sum((np.asarray(f) - np.asarray(y)) ** 2, -1)))

    for entry in [(0, 0), (2, 3), (4, 1)]:
        grad = (loss_with(entry, 1e-6) - loss_with(entry, -1e-6)) / 2e-6
        assert w1[entry] - w0[entry] == pytest.approx(-0.3 * grad, rel=1e-6, abs=1e-12)


def test_step_functions_vmapped_over_stacked_networks_are_gradient_descent_on_each(x64, rng):
    """The pure step functions, vmapped over two networks, take each one's steps of -lr * grad L."""
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.normal(size=(6, 2)))
    fms = [functional(MLP(3, [5], 2, b_std=0.1, rngs=s, param_dtype=jnp.float64)) for s in (0, 1)]
    spec = TrainSpec(steps=3, learning_rate=0.2)
    fns = step_functions(fms[0], FullBatchData(x, y), spec, x, make_optimizer(spec))
    params = jax.tree_util.tree_map(lambda *p: jnp.stack(p), *(fm.params for fm in fms))
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 1)])
    offsets, bound = jnp.zeros((2, 1, 1)), jnp.full(2, jnp.inf)
    advance = jax.jit(jax.vmap(fns.advance, in_axes=(0, 0, 0, 0, 0, None)))
    moved, _, _, first_bad, _ = advance(params, jax.vmap(fns.init)(params), keys, offsets, bound, 3)
    assert np.all(np.asarray(first_bad) == -1)

    def loss(p):  # the batch-mean squared error, written out
        return 0.5 * jnp.mean(jnp.sum((fms[0].output(p, x) - y) ** 2, -1))

    for i, fm in enumerate(fms):
        p = fm.params
        for _ in range(3):
            p = jax.tree_util.tree_map(lambda v, g: v - 0.2 * g, p, jax.grad(loss)(p))
        for want, got in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(moved)):
            np.testing.assert_allclose(np.asarray(got)[i], np.asarray(want), rtol=1e-12, atol=1e-14)
        value, f, _ = jax.vmap(fns.measure)(moved, offsets)
        assert float(value[i]) == pytest.approx(float(loss(p)), rel=1e-12)
        np.testing.assert_allclose(np.asarray(f)[i], np.asarray(fm.output(p, x)), rtol=1e-12)


def test_a_wide_network_follows_the_gradient_flow_predictor(x64, rng):
    """Width 4096, full-batch GD for t = 2: outputs within 3% of Proposition 3 from Theta^3 and f_0."""
    n, d = 8, 5
    x = rng.normal(size=(n, d))
    x *= np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.normal(size=(n, 1))
    net = MLP(d, [4096, 4096], 1, W_std=2**0.5, rngs=1, param_dtype=jnp.float64)
    fm = functional(net)
    lr, steps = 0.05 * n, 40  # batch mean loss: time t = lr * steps / n = 2
    trainer = Trainer(fm, FullBatchData(jnp.asarray(x), jnp.asarray(y)), TrainSpec(steps, lr), jnp.asarray(x))
    state = trainer.init_state(jax.random.PRNGKey(0))
    f0 = np.asarray(trainer.measure(state)[1])
    ft = np.asarray(trainer.measure(trainer.run_until(state, steps))[1])
    theta = np.asarray(relu_kernel_trace(x, depth=3).ntk[-1])
    pred = GradientFlowPredictor(theta, y).predict_train(2.0, f0_train=f0)
    change, err = ft - f0, ft - np.asarray(pred)
    assert np.linalg.norm(err) < 0.03 * np.linalg.norm(change), (ft, pred)


def test_centered_training_is_gradient_descent_on_f_minus_f0(x64, rng):
    """The centered loss starts at |y|^2/2 and its steps are those of targets y + f_0(x)."""
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.normal(size=(6, 2)))
    net = MLP(3, [16, 16], 2, rngs=0, param_dtype=jnp.float64)
    fm = functional(net)
    centered = Trainer(fm, FullBatchData(x, y), TrainSpec(5, 0.3, center_output=True), x)
    state = centered.init_state(jax.random.PRNGKey(0))
    loss0, f0, _ = centered.measure(state)
    assert float(loss0) == pytest.approx(float(np.mean(0.5 * np.sum(np.asarray(y) ** 2, -1))), rel=1e-12)
    shifted = Trainer(fm, FullBatchData(x, y + f0), TrainSpec(5, 0.3), x)
    a = centered.run_until(state, 5)["params"]
    b = shifted.run_until(shifted.init_state(jax.random.PRNGKey(0)), 5)["params"]
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_pair_data_draws_batches_from_the_pairs():
    pairs = np.array([[0, 1], [2, 3], [4, 5]], np.int32)
    data = PairData.create(pairs, n_eval=2)
    x, y, rows = data.batch(jax.random.PRNGKey(0), 1000)
    assert set(np.asarray(x).tolist()) == {0, 2, 4}
    np.testing.assert_array_equal(rows, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x) + 1)
    assert data.eval_batch()[0].shape == (2,)
    with pytest.raises(ValueError, match="batch_size"):
        data.batch(jax.random.PRNGKey(0), None)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=0), "steps"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(loss="hinge"), "unknown loss"),
        (dict(record_steps=(5, 200)), "outside"),
        (dict(momentum=1.0), "momentum"),
    ],
)
def test_bad_training_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainSpec(**(dict(steps=100, learning_rate=0.1) | kwargs))


class Interrupted(Exception):
    """Stands for a kill signal in the middle of a run."""


def _tiny_sweep_setup():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 12, size=(500, 2)).astype(np.int32)
    data = PairData.create(pairs, n_eval=64)
    spec = TrainSpec(steps=12, learning_rate=0.2, batch_size=16, record_steps=(3, 6, 9),
                     center_output=True)

    def make_model(width, seed):
        return MLP(12, [width, width], 12, tokens=True, input_scale=12**0.5, rngs=seed)

    return make_model, data, spec, jnp.arange(5)


def test_a_seed_group_draws_each_seeds_initial_network_in_one_vmapped_call():
    from flax import nnx

    from ntkdepth.training.parallel import Layout

    make_model, data, spec, ev = _tiny_sweep_setup()
    seeds = [3, 0, 11]
    expected = [jax.tree_util.tree_leaves(nnx.split(make_model(8, s))[1]) for s in seeds]
    calls = []

    def counted(width, seed):
        calls.append(seed)
        return make_model(width, seed)

    def needs_an_int(width, seed):  # a make_model that cannot take the vmapped seed
        return make_model(width, int(seed))

    for build, n_calls in ((counted, 1), (needs_an_int, None)):
        group = SeedGroup(build, 8, len(seeds), data, spec, ev, Layout(len(seeds), 1, 1))
        calls.clear()
        leaves = jax.tree_util.tree_leaves(group.init_params(seeds))
        for k in range(len(seeds)):
            for got, want in zip(leaves, expected[k]):
                np.testing.assert_array_equal(np.asarray(got)[k], np.asarray(want))
        if n_calls is not None:
            assert len(calls) == n_calls  # traced once for all seeds


def test_checkpoints_wait_for_four_times_the_last_saves_duration(tmp_path, monkeypatch):
    """A save that takes long (a wide group on a loaded disk) spaces the next ones out, so that
    training keeps at least 4/5 of the time; a quick save keeps the configured interval. A clock that
    moves 5 s a stop and ``cost`` s a save stands in for the real one."""
    import types

    import orbax.checkpoint as ocp

    from ntkdepth.training import parallel

    make_model, data, spec, ev = _tiny_sweep_setup()
    clock, saved = [0.0], []
    monkeypatch.setattr(parallel, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    run_until, save = SeedGroup.run_until, ocp.CheckpointManager.save

    def training(self, state, stop):
        clock[0] += 5.0
        return run_until(self, state, stop)

    monkeypatch.setattr(SeedGroup, "run_until", training)
    for cost, expected in ((0.0, list(range(1, 12))), (10.0, [1, 9])):
        def saving(self, step, *args, cost=cost, **kwargs):
            saved.append(step)
            clock[0] += cost
            return save(self, step, *args, **kwargs)

        monkeypatch.setattr(ocp.CheckpointManager, "save", saving)
        saved.clear()
        run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path / f"cost{cost}", checkpoint_every=1,
                        checkpoint_interval_s=1.0, progress=False)
        # A save of 10 s: the next one 40 s later (stop 9, 8 stops of 5 s after the first save).
        assert saved == expected, (cost, saved)


def test_an_interrupted_sweep_resumes_and_gives_the_same_numbers(tmp_path, monkeypatch):
    make_model, data, spec, ev = _tiny_sweep_setup()
    full = run_width_sweep(make_model, data, spec, ev, [8, 16], [0, 1], tmp_path / "full",
                           checkpoint_interval_s=0, progress=False)

    # Interrupt width 16 (its seeds 0 and 1 trained together) after their checkpoint at step 6.
    original = SeedGroup.run_until
    calls, armed = [], [True]

    def interrupting(self, state, stop):
        calls.append((self.width, stop))
        if armed[0] and calls[-1] == (16, 9):
            armed[0] = False
            raise Interrupted
        return original(self, state, stop)

    monkeypatch.setattr(SeedGroup, "run_until", interrupting)
    with pytest.raises(Interrupted):
        run_width_sweep(make_model, data, spec, ev, [8, 16], [0, 1], tmp_path / "cut",
                        checkpoint_interval_s=0, progress=False)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cut" / "runs").glob("*.npz")) == [
        "w8_s0", "w8_s1"]
    assert list((tmp_path / "cut" / "checkpoints").glob("w16_s0_1-*"))

    calls.clear()
    resumed = run_width_sweep(make_model, data, spec, ev, [8, 16], [0, 1], tmp_path / "cut",
                              checkpoint_interval_s=0, progress=False)
    # Finished runs are loaded; the interrupted group continues from its checkpoint at step 6.
    assert calls == [(16, 9), (16, 12)]
    for key in full:
        np.testing.assert_allclose(resumed[key].loss, full[key].loss, rtol=1e-6)
        for k, v in full[key].stats.items():
            np.testing.assert_allclose(resumed[key].stats[k], v, rtol=1e-5, atol=1e-7)
    assert not list((tmp_path / "cut" / "checkpoints").glob("w16_s0_1-*"))


def test_sweep_records_zero_drift_at_step_zero_and_growing_drift_after(tmp_path):
    make_model, data, spec, ev = _tiny_sweep_setup()
    run = run_width_sweep(make_model, data, spec, ev, [32], [0], tmp_path, progress=False)[(32, 0)]
    np.testing.assert_array_equal(run.steps, [0, 3, 6, 9, 12])
    assert np.all(run.stats["aggregate"][0] == 0)
    assert np.all(run.stats["aggregate"][-1] > 0)
    assert run.loss[-1] < run.loss[0]


def test_a_width_that_does_not_fit_is_refused_with_the_estimate(tmp_path):
    est = estimate_memory(500, [100_000, 100_000], 500, batch_size=256, n_eval=64)
    assert est.n_params > 10**10
    with pytest.raises(WidthTooLargeError, match=r"width 100000 will not fit .* GiB"):
        check_memory(est, "width 100000", available=64 * 2**30)
    make_model, data, spec, ev = _tiny_sweep_setup()
    with pytest.raises(WidthTooLargeError, match="width 300000"):
        run_width_sweep(make_model, data, spec, ev, [8, 300_000], [0], tmp_path, progress=False)
    assert not list((tmp_path / "runs").glob("*.npz")), "trained before refusing"


def test_memory_estimate_counts_parameters():
    est = estimate_memory(3, [4, 5], 2, batch_size=1, n_eval=1)
    assert est.n_params == (3 * 4 + 4) + (4 * 5 + 5) + (5 * 2 + 2)
    assert available_memory() > 2**20


def _trained(calls):
    """Records the widths that train (one entry per group of seeds started)."""
    original = SeedGroup.init_state

    def recording(self, seeds):
        calls.append(self.width)
        return original(self, seeds)

    return recording


def test_a_sweep_with_other_settings_in_the_same_workdir_trains_afresh(tmp_path, monkeypatch):
    import dataclasses

    make_model, data, spec, ev = _tiny_sweep_setup()
    first = run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path, progress=False)[(8, 0)]
    for change in (dict(learning_rate=0.05), dict(steps=15), dict(center_output=False),
                   dict(record_steps=(3, 9))):
        other = dataclasses.replace(spec, **change)
        fresh = run_width_sweep(make_model, data, other, ev, [8], [0], tmp_path / f"fresh{change}",
                                progress=False)[(8, 0)]
        again = run_width_sweep(make_model, data, other, ev, [8], [0], tmp_path, progress=False)[(8, 0)]
        np.testing.assert_array_equal(again.loss, fresh.loss)
        assert again.loss.shape != first.loss.shape or not np.array_equal(again.loss, first.loss), change
    # Other networks, data or evaluation inputs are other runs too.
    wide_std = lambda w, s: MLP(12, [w, w], 12, tokens=True, input_scale=12**0.5, W_std=1.0, rngs=s)
    other_pairs = PairData.create(np.asarray(data.pairs)[::-1], n_eval=64)
    for args in [(wide_std, data, spec, ev), (make_model, other_pairs, spec, ev),
                 (make_model, data, spec, ev[:4])]:
        again = run_width_sweep(*args, [8], [0], tmp_path, progress=False)[(8, 0)]
        fresh = run_width_sweep(*args, [8], [0], tmp_path / "fresh", progress=False)[(8, 0)]
        shutil.rmtree(tmp_path / "fresh")
        np.testing.assert_array_equal(again.loss, fresh.loss)
        assert again.outputs.shape != first.outputs.shape or not np.array_equal(again.outputs,
                                                                                first.outputs)
    # The first settings still find their run, and a new width trains only that width.
    calls = []
    monkeypatch.setattr(SeedGroup, "init_state", _trained(calls))
    both = run_width_sweep(make_model, data, spec, ev, [8, 16], [0], tmp_path, progress=False)
    assert calls == [16]
    np.testing.assert_array_equal(both[(8, 0)].loss, first.loss)


def test_checkpoint_every_sweeps_resume_after_an_interruption(tmp_path, monkeypatch):
    make_model, data, spec, ev = _tiny_sweep_setup()
    spec = TrainSpec(steps=12, learning_rate=0.2, batch_size=16, record_steps=(6,), center_output=True)
    full = run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path / "full", checkpoint_every=4,
                           checkpoint_interval_s=0, progress=False)[(8, 0)]
    original = SeedGroup.run_until

    def interrupting(self, state, stop):
        if stop == 8:  # after the checkpoint at step 4 (not a recorded step)
            raise Interrupted
        return original(self, state, stop)

    for _ in range(2):  # interrupted at the same place twice: resumes from step 4 each time
        monkeypatch.setattr(SeedGroup, "run_until", interrupting)
        with pytest.raises(Interrupted):
            run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path / "cut", checkpoint_every=4,
                            checkpoint_interval_s=0, progress=False)
    monkeypatch.setattr(SeedGroup, "run_until", original)
    resumed = run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path / "cut", checkpoint_every=4,
                              checkpoint_interval_s=0, progress=False)[(8, 0)]
    np.testing.assert_allclose(resumed.loss, full.loss, rtol=1e-6)
    np.testing.assert_allclose(resumed.outputs, full.outputs, rtol=1e-5, atol=1e-7)


def test_damaged_runs_and_checkpoints_are_named_with_the_remedy(tmp_path, monkeypatch):
    from ntkdepth.storage import DamagedFileError

    make_model, data, spec, ev = _tiny_sweep_setup()
    first = run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path, progress=False)
    (path,) = (tmp_path / "runs").glob("w8_s0-*.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedFileError, match=rf"{path}.*delete it and run again"):
        run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path, progress=False)
    path.unlink()
    np.testing.assert_array_equal(
        run_width_sweep(make_model, data, spec, ev, [8], [0], tmp_path, progress=False)[(8, 0)].loss,
        first[(8, 0)].loss)
    # A run file under another run's name (copied by hand) is refused, not reused.
    shutil.copy(path, path.with_name(path.name.replace("w8_s0", "w8_s1").replace(
        path.stem.split("-")[1], "0" * 16)))
    np.save(tmp_path / "x.npy", 0)
    key16 = run_width_sweep.__globals__["run_key"]
    this = sweep_module.run_settings(
        sweep_module.sweep_settings(data, spec, ev), make_model, 8, 1)
    target = sweep_module.run_file(tmp_path, 8, 1, key16(this))
    shutil.copy(path, target)
    with pytest.raises(DamagedFileError, match="holds the run of settings"):
        run_width_sweep(make_model, data, spec, ev, [8], [1], tmp_path, progress=False)

    # A damaged checkpoint: its folder is named, with what deleting it costs.
    original = SeedGroup.run_until

    def interrupting(self, state, stop):
        if stop == 9:
            raise Interrupted
        return original(self, state, stop)

    monkeypatch.setattr(SeedGroup, "run_until", interrupting)
    with pytest.raises(Interrupted):
        run_width_sweep(make_model, data, spec, ev, [16], [0], tmp_path, checkpoint_interval_s=0,
                        progress=False)
    monkeypatch.setattr(SeedGroup, "run_until", original)
    (ckpt,) = (tmp_path / "checkpoints").glob("w16_s0-*")
    damaged = 0
    for f in sorted(ckpt.rglob("*")):
        if f.is_file() and f.parent.name == "d":  # the arrays' data
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
            damaged += 1
    assert damaged
    with pytest.raises(DamagedFileError, match=rf"{ckpt}.*delete the folder"):
        run_width_sweep(make_model, data, spec, ev, [16], [0], tmp_path, progress=False)


def test_diverging_training_stops_with_width_seed_step_and_loss(tmp_path):
    from ntkdepth.training import TrainingDiverged

    make_model, data, spec, ev = _tiny_sweep_setup()
    # At this learning rate the loss goes from 0.5 to about 1e19 and back to 13 (dead units):
    # finite all along, and reported as data without the check.
    bad = TrainSpec(steps=12, learning_rate=30.0, batch_size=16, record_steps=(3, 6, 9),
                    center_output=True)
    with pytest.raises(TrainingDiverged, match=r"width 8, seed 1: training diverged: the batch loss "
                       r"reached .* at step \d+, .* times its initial 0.5 .*Lower the learning rate") as info:
        run_width_sweep(make_model, data, bad, ev, [8], [1], tmp_path, progress=False)
    assert 1 <= info.value.step <= 3 and np.isfinite(info.value.loss) and info.value.loss > 1000 * 0.5
    assert not list((tmp_path / "runs").glob("*.npz")), "a diverged run was stored"
    # The bound is the user's: with the check off the same run "succeeds".
    loose = TrainSpec(**{**bad.__dict__, "divergence_factor": None})
    run = run_width_sweep(make_model, data, loose, ev, [8], [1], tmp_path, progress=False)[(8, 1)]
    assert np.isfinite(run.loss).all() and run.loss.max() > 1000 * run.loss[0] and run.loss[-1] > 10
    for factor in (0.5, float("nan")):
        with pytest.raises(ValueError, match="divergence_factor"):
            TrainSpec(steps=3, learning_rate=0.1, divergence_factor=factor)
    # Non-finite losses stop training with the check off too.
    inf = TrainSpec(**{**loose.__dict__, "learning_rate": 1e4})
    with pytest.raises(TrainingDiverged, match="the batch loss is (inf|nan) at step"):
        run_width_sweep(make_model, data, inf, ev, [8], [1], tmp_path, progress=False)


def test_non_finite_targets_are_a_data_error_before_training(rng):
    from ntkdepth.training import NonFiniteDataError

    x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    y = np.asarray(rng.normal(size=(6, 2)), np.float32)
    y[4, 1] = np.nan
    fm = functional(MLP(3, [5], 2, rngs=0))
    with pytest.raises(NonFiniteDataError, match=r"'y' holds 1 NaN or inf .*\[4, 1\].*whatever the learning rate"):
        Trainer(fm, FullBatchData(x, jnp.asarray(y)), TrainSpec(steps=3, learning_rate=0.1), x)


def test_the_command_reports_diverged_training_as_an_error(tmp_path, capsys):
    from ntkdepth.cli import main

    # table1 trains at the learning rate it is given (width-vs-kernel lowers a step beyond 2 / lambda_max).
    small = ["--set", "widths=[64]", "--set", 'parameterizations=["ntk"]', "--set", "learning_rate=1000",
             "--set", "steps=10", "--set", "n_records=2"]
    out = tmp_path / "t1"
    assert main(["run", "table1", "--preset", "smoke", "--out", str(out), *small]) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: width 64, seed 0: training diverged: the batch loss reached [\d.e+]+ at "
                     r"step \d, [\d.e+]+ times its initial [\d.]+ \(divergence_factor = 1000\)\. "
                     r"Lower the learning rate \(now 1000\), or raise divergence_factor", err), err
    assert "Traceback" not in err
    assert not (out / "results.json").exists() and not (out / "summary.md").exists()
