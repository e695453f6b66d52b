"""Kernels of every activation against the Gram matrix, neural-tangents and the ReLU loop, side by side.

Run from the repository root::

    python benchmarks/bench_activations.py            # every section (tens of minutes on 2 cores)
    python benchmarks/bench_activations.py --quick    # tiny sizes: a smoke run
    python benchmarks/bench_activations.py --only one-norm --results-dir benchmarks/results/cpu-2core

Sections (inputs ``x ~ N(0, 1)`` of dimension 784; timing as in ``bench_kernels.py``: a warm-up call
each, then rounds in which the compared calls run in turn; medians):

1. ``one-norm``: inputs on the sphere of radius ``sqrt(784)``, ``b_std = 0.1``, the NTK at one depth
   ``L = 100`` (n = 2,000), float32 and float64, every activation: ``kernel_trace`` over the jitted
   Gram matrix ``x @ x.T``. Target: at most 2.
2. ``every-depth``: the NTK at every depth 1..100 (n = 1,000, one norm, ``b_std = 0.1``) for every
   activation neural-tangents has a layer for, against its fastest way (``Dense`` then ``L - 1``
   jitted ``serial(activation, Dense)`` blocks, keeping each depth). Target: at least 2.
3. ``unequal``: inputs of unequal norms, ``b_std = 0.1``, ``L = 10`` (n = 1,000): erf and GELU
   against neural-tangents' jitted ``kernel_fn`` (target: at least 1), tanh and SiLU against
   ReLU's layer loop at the same size (target: at most 3).

Accuracy beside each row: the largest ``|ours - nt|`` off the diagonal in units of
``sqrt(nt(x, x) nt(x', x'))``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_kernels import _gram_fn, offdiag_err, timed_together
from ntkdepth.kernels import activation, kernel_trace, nt_bridge, relu_ntk
from ntkdepth.runs import OutputFolder, environment

SECTIONS = ("one-norm", "every-depth", "unequal")
N0, W_STD, B_STD = 784, 1.3, 0.1
ONE_NORM = ("relu", "leaky_relu", "abs", "erf", "gelu", "sin", "sign", "relu_power", "identity",
            "tanh", "silu", "softplus")
WITH_NT = ("relu", "leaky_relu", "abs", "erf", "gelu", "sin")


def _sphere(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1])


def nt_chain(act):
    """``chain(x, L)``: every depth's NTK 1..L by neural-tangents' jitted layer blocks."""
    stax = nt_bridge.stax
    first = jax.jit(stax.Dense(1, W_std=W_STD, b_std=B_STD)[2], static_argnames="get")
    block = jax.jit(stax.serial(act.stax(), stax.Dense(1, W_std=W_STD, b_std=B_STD))[2])

    def chain(x, depth):
        k = first(x, None)
        outs = [k.ntk]
        for _ in range(depth - 1):
            k = block(k)
            outs.append(k.ntk)
        return outs

    return chain


def nt_jitted(act, depth):
    from ntkdepth.kernels import stax_mlp

    fn = jax.jit(stax_mlp(depth, 1, W_STD, B_STD, activation=act)[2], static_argnames="get")
    return lambda x: fn(x, None, "ntk")


def one_norm(x_all, n, depth, repeats, budget, names):
    rows, gram = [], _gram_fn()
    for dtype in ("float32", "float64"):
        x = jnp.asarray(_sphere(x_all[:n]), dtype=dtype)
        for name in names:
            def ours():
                return kernel_trace(x, depth=depth, layers=[depth], activation=name, W_std=W_STD, b_std=B_STD,
                                    get="ntk").ntk
            recs, _ = timed_together(f"one-norm {dtype} {name}", {"gram": lambda: gram(x), "ours": ours},
                                     max(repeats, 5), budget)
            rows.append({"section": "one-norm", "dtype": dtype, "activation": name, "n": n, "depth": depth,
                         "ours_s": recs["ours"]["median_s"], "reference_s": recs["gram"]["median_s"],
                         "reference": "Gram", "ratio": recs["ours"]["median_s"] / recs["gram"]["median_s"],
                         "target": "ours/Gram <= 2"})
            jax.clear_caches()
    return rows


def every_depth(x_all, n, depth, repeats, budget, names):
    rows = []
    x = jnp.asarray(_sphere(x_all[:n]), dtype="float64")
    # The output alone: one new [depth, n, n] float64 array written once (its pages touched for the first
    # time, as both sides' are): nt / write bounds the ratio any computation could reach.
    write = jax.jit(lambda v: jnp.broadcast_to(v, (depth, n, n)) + 0.0)
    for name in names:
        chain = nt_chain(activation(name))
        recs, outs = timed_together(f"every-depth {name}", {
            "ours": lambda: kernel_trace(x, depth=depth, activation=name, W_std=W_STD, b_std=B_STD, get="ntk").ntk,
            "nt": lambda: chain(x, depth),
            "write": lambda: write(jnp.asarray(0.5)),
        }, repeats, budget, {"nt": lambda: chain(x, 2)})
        err = max(offdiag_err(outs["ours"][l - 1], outs["nt"][l - 1]) for l in (1, 2, depth // 2, depth))
        rows.append({"section": "every-depth", "dtype": "float64", "activation": name, "n": n,
                     "depth": f"1..{depth}", "ours_s": recs["ours"]["median_s"], "reference_s": recs["nt"]["median_s"],
                     "reference": "neural-tangents", "ratio": recs["nt"]["median_s"] / recs["ours"]["median_s"],
                     "target": "nt/ours >= 2", "offdiag_err_vs_nt": err, "write_s": recs["write"]["median_s"],
                     "ceiling": recs["nt"]["median_s"] / recs["write"]["median_s"]})
        del outs
        jax.clear_caches()
    return rows


def unequal(x_all, n, depth, repeats, budget):
    rows = []
    x = jnp.asarray(x_all[:n] * np.linspace(0.5, 1.5, n)[:, None], dtype="float64")
    for name in ("erf", "gelu"):
        nt = nt_jitted(activation(name), depth)
        recs, outs = timed_together(f"unequal {name}", {
            "ours": lambda: kernel_trace(x, depth=depth, layers=[depth], activation=name, W_std=W_STD,
                                         b_std=B_STD, get="ntk").ntk,
            "nt": lambda: nt(x),
        }, repeats, budget)
        rows.append({"section": "unequal", "dtype": "float64", "activation": name, "n": n, "depth": depth,
                     "ours_s": recs["ours"]["median_s"], "reference_s": recs["nt"]["median_s"],
                     "reference": "neural-tangents", "ratio": recs["nt"]["median_s"] / recs["ours"]["median_s"],
                     "target": "nt/ours >= 1", "offdiag_err_vs_nt": offdiag_err(outs["ours"][0], outs["nt"])})
        jax.clear_caches()
    for name in ("tanh", "silu"):
        trace = None

        def ours():
            nonlocal trace
            trace = kernel_trace(x, depth=depth, layers=[depth], activation=name, W_std=W_STD, b_std=B_STD,
                                 get="ntk", method="loop")
            return trace.ntk

        recs, _ = timed_together(f"unequal {name}", {
            "ours": ours, "relu": lambda: relu_ntk(x, depth=depth, W_std=W_STD, b_std=B_STD, method="loop"),
        }, repeats, budget)
        rows.append({"section": "unequal", "dtype": "float64", "activation": name, "n": n, "depth": depth,
                     "ours_s": recs["ours"]["median_s"], "reference_s": recs["relu"]["median_s"],
                     "reference": "ReLU loop", "ratio": recs["ours"]["median_s"] / recs["relu"]["median_s"],
                     "target": "ours/ReLU <= 3", "error_bound": trace.error_bound})
        jax.clear_caches()
    return rows


def _meets(row) -> bool:
    above = ">=" in row["target"]
    limit = float(row["target"].split()[-1])
    return row["ratio"] >= limit if above else row["ratio"] <= limit


def md_table(rows) -> str:
    out = ["| section | activation | dtype | n | depth | ntkdepth [s] | reference | reference [s] | ratio | target | "
           "met | err vs nt |", "|---" * 12 + "|"]
    for r in rows:
        err = r.get("offdiag_err_vs_nt")
        out.append(f"| {r['section']} | {r['activation']} | {r['dtype']} | {r['n']} | {r['depth']} | "
                   f"{r['ours_s']:.4f} | {r['reference']} | {r['reference_s']:.4f} | {r['ratio']:.2f} | "
                   f"{r['target']} | {'yes' if _meets(r) else 'NO'} | {'' if err is None else f'{err:.1e}'} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--results-dir", metavar="DIR", help="write bench_activations.json and .md into DIR")
    args = p.parse_args(argv)
    sections = args.only or SECTIONS
    if args.quick:
        n1, l1, n2, l2, n3, names1, names2 = 200, 20, 100, 10, 100, ("erf", "tanh"), ("erf",)
    else:
        n1, l1, n2, l2, n3, names1, names2 = 2000, 100, 1000, 100, 1000, ONE_NORM, WITH_NT
    env = environment()
    x_all = np.random.default_rng(0).standard_normal((max(n1, n2, n3), N0))
    rows = []
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        if "one-norm" in sections:
            rows += one_norm(x_all, n1, l1, args.repeats, args.budget, names1)
        if "every-depth" in sections:
            rows += every_depth(x_all, n2, l2, args.repeats, args.budget, names2)
        if "unequal" in sections:
            rows += unequal(x_all, n3, 10, args.repeats, args.budget)
    env["loadavg_end"] = os.getloadavg()[0]
    total = time.perf_counter() - t0
    table = md_table(rows)
    ceilings = [f"{r['activation']}: writing the output alone {r['write_s']:.3f} s, neural-tangents / that "
                f"{r['ceiling']:.2f}" for r in rows if "ceiling" in r]
    if ceilings:
        table += ("\n\nevery-depth, the ratio's ceiling (both sides write a new [depth, n, n] float64 array; "
                  "nt / (the write alone) bounds nt / ours):\n" + "\n".join(f"- {c}" for c in ceilings))
    print(table)
    print(f"\ntotal benchmark time: {total:.1f} s; load average {env['loadavg_start']:.2f} at start, "
          f"{env['loadavg_end']:.2f} at end")
    ok = all(r.get("offdiag_err_vs_nt", 0.0) < 1e-10 for r in rows)
    if args.results_dir:
        folder = OutputFolder(args.results_dir)
        os.makedirs(args.results_dir, exist_ok=True)
        folder.write_json("bench_activations.json", {"quick": args.quick, "environment": env, "rows": rows,
                                                     "total_s": total})
        folder.write_text("bench_activations.md", "\n".join([
            "# bench_activations", "", f"jax {env['jax']}, {env['cpu_count']} CPUs, load average "
            f"{env['loadavg_start']:.2f} at start, {env['loadavg_end']:.2f} at end; W_std = {W_STD}, b_std = {B_STD}, "
            f"d = {N0}", "", table, "", f"total benchmark time: {total:.1f} s"]) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
