"""Seeds trained together against one run per seed, side by side on one device.

Run from the repository root::

    python benchmarks/bench_sweep.py                 # widths 256 and 4096, 8 seeds (~10 minutes on 2 cores)
    python benchmarks/bench_sweep.py --quick         # seconds
    python benchmarks/bench_sweep.py --widths 256 1024 --seeds 4
    python benchmarks/bench_sweep.py --devices 2         # the seed group over two CPU devices

Two settings, those of the width sweeps' cpu presets:

- ``sphere`` (``width-vs-kernel``, ``drift-theory``): 20 inputs on the sphere
  in dimension 8, depth 3, one output, full-batch gradient descent: the
  smallest steps of the presets, about 8e6 flops at width 256;
- ``text8`` (``table1``): token inputs over ``V = 500`` words, two hidden
  layers, ``V`` outputs, centered output, SGD with batch 128: about 1.5e8
  flops a step at width 256, most of them in the output layer.

Two comparisons, each of 8 seeds (``--seeds``) on the first device alone:

- **steps**: the training steps alone. Sequential: one
  :class:`ntkdepth.training.Trainer` (compiled once) advances each seed in
  turn; vmapped: one :class:`ntkdepth.training.parallel.SeedGroup` of all the
  seeds (a 1 x 1 mesh) advances them in one compiled loop.
- **whole runs**: what a sweep does for each run (initialization, the
  recorded steps, drift statistics, the checkpoint manager) through
  :func:`ntkdepth.training.parallel.train_seed_group`: groups of one seed in
  turn against one group of all the seeds.

With ``--devices D`` the CPU backend gets ``D`` devices (XLA's
``--xla_force_host_platform_device_count``; one per core is the useful
number) and the seed group is split over them along its seed axis (a
``D x 1`` mesh), as a sweep does on every device it sees; the sequential runs
stay on the first device.

Both start from the same initial parameters and SGD streams; the largest
difference of their outputs, relative to the outputs' size, is printed.

The arithmetic bound: each row also prints the sequential steps' arithmetic
rate (multiply-add flops of the network's matrix products, forward and
backward, :func:`step_flops`) and the machine's float32 matmul rate over that
rate, measured in the same run on a 2048 x 2048 product: no schedule of the
same arithmetic can make the steps faster than that factor.
Timing: one warm-up of each (which compiles; the first call's time is printed
apart), then ``--repeats`` rounds in which the two are measured alternately,
ended by ``jax.block_until_ready``; the fastest round of each is compared (the
least disturbed by other jobs on the machine). The ratio is sequential over
vmapped (above 1: the seed group is faster).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.runs import environment


def _setup(setting: str, steps: int):
    """``(data, spec, eval_inputs, make_model)`` of one setting."""
    from ntkdepth.data import sample_sphere
    from ntkdepth.models import MLP
    from ntkdepth.training import FullBatchData, PairData, TrainSpec

    rng = np.random.default_rng(0)
    if setting == "sphere":
        x = sample_sphere(rng, 30, 8) * 8**0.5
        y = np.sin(2.0 * x[:, :1])
        data = FullBatchData(jnp.asarray(x[:20], jnp.float32), jnp.asarray(y[:20], jnp.float32))
        spec = TrainSpec(steps=steps, learning_rate=20 * 0.05)
        return data, spec, jnp.asarray(x, jnp.float32), lambda w, s: MLP(8, [w, w], 1, rngs=s)
    vocab = 500
    p = 1.0 / np.arange(1, vocab + 1)  # skip-gram-like pairs, Zipf's law over the vocabulary
    pairs = rng.choice(vocab, size=(20000, 2), p=p / p.sum()).astype(np.int32)
    # Timing only: at --quick's width 64 the loss of this learning rate spikes past the
    # default divergence check, which would stop the benchmark.
    spec = TrainSpec(steps=steps, learning_rate=0.5, batch_size=128, center_output=True,
                     divergence_factor=1e12)
    return (PairData.create(pairs, n_eval=256), spec, jnp.arange(64, dtype=jnp.int32),
            lambda w, s: MLP(vocab, [w, w], vocab, tokens=True, input_scale=vocab**0.5, rngs=s))


def step_flops(setting: str, width: int) -> float:
    """Multiply-add flops of one training step (forward 2, backward 4 per weight and example).

    ``sphere``: 20 examples through ``8 -> width -> width -> 1``; ``text8``: 128
    token examples, whose first layer is a row lookup (no matmul), through
    ``width -> width -> 500``.
    """
    if setting == "sphere":
        return 6.0 * 20 * (8 * width + width * width + width)
    return 6.0 * 128 * (width * width + width * 500)


def matmul_rate(device, size: int = 2048, repeats: int = 5) -> float:
    """The float32 matmul rate of ``device`` in flop/s (fastest of ``repeats``), all its threads."""
    a = jax.device_put(jnp.ones((size, size), jnp.float32), device)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def bench_width(setting: str, width: int, n_seeds: int, steps: int, repeats: int, workdir: Path,
                devices: int = 1) -> dict:
    from ntkdepth.models import functional
    from ntkdepth.training import Trainer, TrainSpec, record_steps_grid
    from ntkdepth.training.parallel import Layout, SeedGroup, train_seed_group

    data, spec, ev, make_model = _setup(setting, steps)
    spec = TrainSpec(**{**spec.__dict__, "record_steps": record_steps_grid(steps, 8)})
    seeds = list(range(n_seeds))
    one = [jax.devices()[0]]

    # Steps alone: one compiled single-network trainer over the seeds in turn, against the group.
    trainer = Trainer(functional(make_model(width, 0)), data, spec, ev)
    singles = [trainer.init_state(jax.random.fold_in(jax.random.PRNGKey(s), 0x5EED),
                                  functional(make_model(width, s)).params) for s in seeds]
    spread = jax.devices()[:devices]
    group = SeedGroup(make_model, width, n_seeds, data, spec, ev, Layout(n_seeds, devices, 1),
                      devices=spread)
    g0 = group.init_state(seeds)
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run_until(singles[0], 1)["params"])
    seq_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(group.run_until(g0, 1)["params"])
    vmap_first = time.perf_counter() - t0

    # Whole runs (initialization, recorded steps, drift statistics) through the sweep's group
    # training: groups of one seed in turn against one group of all seeds. One warm-up each.
    single = SeedGroup(make_model, width, 1, data, spec, ev, Layout(1, 1, 1), devices=one)
    train_seed_group(single, [0], workdir / "warm1")
    train_seed_group(group, seeds, workdir / "warmS")

    t_seq, t_vmap, t_runs_seq, t_runs_vmap = [], [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        out_seq = [trainer.run_until(s, steps) for s in singles]
        jax.block_until_ready([s["params"] for s in out_seq])
        t_seq.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_vmap = group.run_until(g0, steps)
        jax.block_until_ready(out_vmap["params"])
        t_vmap.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        runs_seq = [train_seed_group(single, [s], workdir / f"seq{r}")[0] for s in seeds]
        t_runs_seq.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        runs_vmap = train_seed_group(group, seeds, workdir / f"vmap{r}")
        t_runs_vmap.append(time.perf_counter() - t0)

    f_seq = np.stack([np.asarray(trainer.measure(s)[1]) for s in out_seq])
    f_vmap = group.measure(out_vmap)[1]
    o_seq = np.stack([r["outputs"] for r in runs_seq])
    o_vmap = np.stack([r["outputs"] for r in runs_vmap])
    best = min
    return {
        "width": width, "seeds": n_seeds, "steps": steps,
        "sequential_s": best(t_seq), "vmapped_s": best(t_vmap), "speedup": best(t_seq) / best(t_vmap),
        "runs_sequential_s": best(t_runs_seq), "runs_vmapped_s": best(t_runs_vmap),
        "runs_speedup": best(t_runs_seq) / best(t_runs_vmap),
        "sequential_first_call_s": seq_first, "vmapped_first_call_s": vmap_first,
        "sequential_step_rate": step_flops(setting, width) * steps * n_seeds / best(t_seq),
        "outputs_max_rel_diff": float(max(np.abs(f_vmap - f_seq).max() / np.abs(f_seq).max(),
                                          np.abs(o_vmap - o_seq).max() / np.abs(o_seq).max())),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["sphere", "text8"],
                        choices=["sphere", "text8"])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="timed steps per width (default: 200 at width <= 1024, else 5)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="width 64, 4 seeds, 10 steps: a check of the numbers")
    parser.add_argument("--devices", type=int, default=1,
                        help="CPU devices the seed group is spread over (XLA's "
                             "--xla_force_host_platform_device_count: one per core); the "
                             "sequential runs use the first")
    args = parser.parse_args(argv)
    if args.devices > 1:
        # Read when the CPU backend starts, which nothing above has done yet.
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
        if jax.local_device_count() != args.devices:
            parser.error(f"--devices {args.devices}: the CPU backend has {jax.local_device_count()} "
                         f"device(s); set XLA_FLAGS={flag} before starting Python")
        if args.seeds % args.devices:
            parser.error(f"--seeds {args.seeds} must be a multiple of --devices {args.devices}")
    if args.quick:
        args.widths, args.seeds, args.steps, args.repeats = [64], 4, [10], 1
    steps = args.steps or [200 if w <= 1024 else 5 for w in args.widths]
    if len(steps) == 1:
        steps = steps * len(args.widths)
    if len(steps) != len(args.widths):
        parser.error("give one --steps value, or one per width")

    print(f"# bench_sweep: {args.seeds} seeds trained together (vmapped, over "
          f"{args.devices} device(s)) against one run per seed on {jax.devices()[0]}")
    env = environment()
    print(f"# jax {env['jax']}, {env['machine']}, {env['cpu_count']} CPUs, {jax.local_device_count()} "
          f"device(s) visible, ntkdepth {env['ntkdepth_commit']}; fastest of {args.repeats} rounds; "
          f"load average {env['loadavg_start']:.1f} at the start")
    peak = matmul_rate(jax.devices()[0])
    print(f"# float32 matmul rate of {jax.devices()[0]} (2048^3, all its threads): {peak / 1e9:.0f} "
          f"GFLOP/s. 'seq. rate' is the sequential steps' arithmetic rate, and 'machine / seq.' "
          f"the most any schedule of the same arithmetic could gain over them")
    header = ("setting", "width", "seeds", "steps", "steps: sequential (s)", "steps: vmapped (s)",
              "steps: speedup", "seq. rate (GFLOP/s)", "machine / seq.",
              "whole runs: sequential (s)", "whole runs: vmapped (s)",
              "whole runs: speedup", "first call seq / vmap (s)", "outputs rel. diff")
    rows = []
    for setting in args.settings:
        for w, n in zip(args.widths, steps):
            with tempfile.TemporaryDirectory() as tmp:
                r = bench_width(setting, w, args.seeds, n, args.repeats, Path(tmp), args.devices)
            rows.append((setting, str(w), str(r["seeds"]), str(n), f"{r['sequential_s']:.3f}",
                         f"{r['vmapped_s']:.3f}", f"{r['speedup']:.2f}x",
                         f"{r['sequential_step_rate'] / 1e9:.0f}",
                         f"{peak / r['sequential_step_rate']:.2f}x",
                         f"{r['runs_sequential_s']:.3f}", f"{r['runs_vmapped_s']:.3f}",
                         f"{r['runs_speedup']:.2f}x",
                         f"{r['sequential_first_call_s']:.2f} / {r['vmapped_first_call_s']:.2f}",
                         f"{r['outputs_max_rel_diff']:.1e}"))
            print("# done", setting, "width", w, flush=True)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
