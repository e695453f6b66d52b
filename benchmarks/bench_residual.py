"""Residual networks' kernels against the Gram matrix and neural-tangents' residual blocks, side by side.

Run from the repository root::

    python benchmarks/bench_residual.py            # both sections (minutes on 2 cores)
    python benchmarks/bench_residual.py --quick    # tiny sizes: a smoke run
    python benchmarks/bench_residual.py --results-dir benchmarks/results/cpu-2core

Sections (inputs ``x ~ N(0, 1)`` of dimension 784, ``W_std = 1.3``, ``b_std = 0.1``; timing as in
``bench_kernels.py``: a warm-up call each, then rounds in which the compared calls run in turn; medians):

1. ``one-norm``: inputs on the sphere of radius ``sqrt(784)``, the stream's NTK at one depth ``L = 100``
   (n = 2,000), float32 and float64, ``alpha = 0.5`` and ``alpha = 1/sqrt(L)``: ``kernel_trace(...,
   residual=alpha)`` over the jitted Gram matrix ``x @ x.T``. Target: at most 2.
2. ``every-depth``: the NNGP and the NTK at every depth 1..100 of one residual network (``alpha = 0.5``,
   n = 1,000, one norm) against neural-tangents' fastest way: ``Dense``, then ``L - 1`` jitted blocks
   ``FanOut(2), parallel(Identity, serial(activation, Dense)), FanInSum``, keeping both at each depth.
   Target: at least 2. Both sides write 1.6 GB of new arrays, whose first touch (page faults)
   is a fixed part of either time: the writes alone are timed beside them, and neural-tangents'
   time over theirs is printed as the ceiling of the ratio.

Accuracy beside each row: the largest ``|ours - nt|`` off the diagonal in units of
``sqrt(nt(x, x) nt(x', x'))``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_kernels import _gram_fn, offdiag_err, timed_together
from ntkdepth.kernels import activation, kernel_trace, nt_bridge
from ntkdepth.runs import OutputFolder, environment

SECTIONS = ("one-norm", "every-depth")
N0, W_STD, B_STD, ALPHA = 784, 1.3, 0.1, 0.5
ONE_NORM = ("relu", "erf", "gelu", "tanh")
WITH_NT = ("relu", "erf", "gelu")


def _sphere(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1])


def nt_chain(act, alpha):
    """``chain(x, L)``: every depth's stream ``(NNGP, NTK)`` 1..L by neural-tangents' jitted residual blocks."""
    stax = nt_bridge.stax
    first = jax.jit(stax.Dense(1, W_std=W_STD, b_std=B_STD)[2], static_argnames="get")
    branch = stax.serial(act.stax(), stax.Dense(1, W_std=alpha * W_STD, b_std=alpha * B_STD))
    block = jax.jit(stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())[2])

    def chain(x, depth):
        k = first(x, None)
        outs = [(k.nngp, k.ntk)]
        for _ in range(depth - 1):
            k = block(k)
            outs.append((k.nngp, k.ntk))
        return outs

    return chain


def one_norm(x_all, n, depth, repeats, budget, names):
    rows, gram = [], _gram_fn()
    for dtype in ("float32", "float64"):
        x = jnp.asarray(_sphere(x_all[:n]), dtype=dtype)
        for name in names:
            for label, alpha in (("0.5", ALPHA), ("1/sqrt(L)", 1.0 / math.sqrt(depth))):
                def ours():
                    return kernel_trace(x, depth=depth, layers=[depth], activation=name, W_std=W_STD, b_std=B_STD,
                                        get="ntk", residual=alpha).ntk
                recs, _ = timed_together(f"one-norm {dtype} {name} alpha={label}",
                                         {"gram": lambda: gram(x), "ours": ours}, max(repeats, 5), budget)
                rows.append({"section": "one-norm", "dtype": dtype, "activation": name, "alpha": label, "n": n,
                             "depth": depth, "ours_s": recs["ours"]["median_s"],
                             "reference_s": recs["gram"]["median_s"], "reference": "Gram",
                             "ratio": recs["ours"]["median_s"] / recs["gram"]["median_s"], "target": "ours/Gram <= 2"})
                jax.clear_caches()
    return rows


def every_depth(x_all, n, depth, repeats, budget, names):
    rows = []
    x = jnp.asarray(_sphere(x_all[:n]), dtype="float64")
    # The outputs alone: two new [depth, n, n] float64 arrays, written once (their pages touched for the
    # first time, as both sides' are). nt / write bounds the ratio any computation could reach.
    write = jax.jit(lambda v: (jnp.broadcast_to(v, (depth, n, n)) + 0.0, jnp.broadcast_to(v, (depth, n, n)) + 1.0))
    for name in names:
        chain = nt_chain(activation(name), ALPHA)
        def ours():
            trace = kernel_trace(x, depth=depth, activation=name, W_std=W_STD, b_std=B_STD, get=("nngp", "ntk"),
                                 residual=ALPHA)
            return trace.nngp, trace.ntk

        recs, outs = timed_together(f"every-depth {name}", {"ours": ours, "nt": lambda: chain(x, depth),
                                                             "write": lambda: write(jnp.asarray(0.5))},
                                    repeats, budget, {"nt": lambda: chain(x, 2)})
        err = max(offdiag_err(outs["ours"][f][l - 1], outs["nt"][l - 1][f]) for l in (1, 2, depth // 2, depth)
                  for f in (0, 1))
        rows.append({"section": "every-depth", "dtype": "float64", "activation": name, "alpha": str(ALPHA), "n": n,
                     "depth": f"1..{depth}", "ours_s": recs["ours"]["median_s"], "reference_s": recs["nt"]["median_s"],
                     "reference": "neural-tangents", "ratio": recs["nt"]["median_s"] / recs["ours"]["median_s"],
                     "target": "nt/ours >= 2", "offdiag_err_vs_nt": err, "write_s": recs["write"]["median_s"],
                     "ceiling": recs["nt"]["median_s"] / recs["write"]["median_s"]})
        del outs
        jax.clear_caches()
    return rows


def _meets(row) -> bool:
    above = ">=" in row["target"]
    limit = float(row["target"].split()[-1])
    return row["ratio"] >= limit if above else row["ratio"] <= limit


def md_table(rows) -> str:
    out = ["| section | activation | alpha | dtype | n | depth | ntkdepth [s] | reference | reference [s] | ratio | "
           "target | met | err vs nt |", "|---" * 13 + "|"]
    for r in rows:
        err = r.get("offdiag_err_vs_nt")
        out.append(f"| {r['section']} | {r['activation']} | {r['alpha']} | {r['dtype']} | {r['n']} | {r['depth']} | "
                   f"{r['ours_s']:.4f} | {r['reference']} | {r['reference_s']:.4f} | {r['ratio']:.2f} | "
                   f"{r['target']} | {'yes' if _meets(r) else 'NO'} | {'' if err is None else f'{err:.1e}'} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--results-dir", metavar="DIR", help="write bench_residual[-quick].json and .md into DIR")
    args = p.parse_args(argv)
    sections = args.only or SECTIONS
    if args.quick:
        n1, l1, n2, l2, names1, names2 = 200, 20, 100, 10, ("relu", "erf"), ("relu",)
    else:
        n1, l1, n2, l2, names1, names2 = 2000, 100, 1000, 100, ONE_NORM, WITH_NT
    env = environment()
    x_all = np.random.default_rng(0).standard_normal((max(n1, n2), N0))
    rows = []
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        if "one-norm" in sections:
            rows += one_norm(x_all, n1, l1, args.repeats, args.budget, names1)
        if "every-depth" in sections:
            rows += every_depth(x_all, n2, l2, args.repeats, args.budget, names2)
    env["loadavg_end"] = os.getloadavg()[0]
    total = time.perf_counter() - t0
    table = md_table(rows)
    ceilings = [f"{r['activation']}: writing the outputs alone {r['write_s']:.3f} s, neural-tangents / that "
                f"{r['ceiling']:.2f}" for r in rows if "ceiling" in r]
    if ceilings:
        table += ("\n\nevery-depth, the ratio's ceiling (both sides write two new [depth, n, n] float64 arrays; "
                  "nt / (the writes alone) bounds nt / ours):\n" + "\n".join(f"- {c}" for c in ceilings))
    print(table)
    print(f"\ntotal benchmark time: {total:.1f} s; load average {env['loadavg_start']:.2f} at start, "
          f"{env['loadavg_end']:.2f} at end")
    ok = all(r.get("offdiag_err_vs_nt", 0.0) < 1e-10 for r in rows)
    if args.results_dir:
        stem = "bench_residual" + ("-quick" if args.quick else "")
        folder = OutputFolder(args.results_dir)
        os.makedirs(args.results_dir, exist_ok=True)
        folder.write_json(f"{stem}.json", {"quick": args.quick, "environment": env, "rows": rows, "total_s": total})
        folder.write_text(f"{stem}.md", "\n".join([
            f"# {stem}", "", f"jax {env['jax']}, {env['cpu_count']} CPUs, load average {env['loadavg_start']:.2f} "
            f"at start, {env['loadavg_end']:.2f} at end; W_std = {W_STD}, b_std = {B_STD}, d = {N0}", "", table, "",
            f"total benchmark time: {total:.1f} s"]) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
