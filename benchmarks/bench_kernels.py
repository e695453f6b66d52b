"""ntkdepth against neural-tangents and the Gram matrix: analytic ReLU kernels, timed side by side.

Run from the repository root::

    python benchmarks/bench_kernels.py                       # everything (see below for the time)
    python benchmarks/bench_kernels.py --quick               # tiny sizes: a smoke run
    python benchmarks/bench_kernels.py --only one-depth      # sections: one-depth, every-depth, tiled
    python benchmarks/bench_kernels.py --skip tiled --out bench.json
    python benchmarks/bench_kernels.py --results-dir benchmarks/results/cpu-2core --tmp-dir /work

Sections, each for float32 and float64 (``jax.enable_x64``), without and with
a bias (``b_std = 0`` / ``0.1``), ``W_std = sqrt(2)``, inputs ``x ~ N(0, 1)``
of dimension 784, kernels of ``x`` with itself:

1. ``one-depth``: the NTK at one depth, ``relu_ntk(x, depth=L)``, at
   ``L = 10, 100, 1000`` (n = 1000) and at ``n = 1000 .. 8000`` (L = 10),
   against neural-tangents asked for the same field, and against the Gram
   matrix ``x @ x.T`` (jitted), the floor of any kernel of ``x``. At ``L =
   10`` neural-tangents runs its jitted ``kernel_fn(x, None, 'ntk')`` of
   ``stax_mlp(L)``. Deeper, that call compiles for minutes and runs in time
   growing faster than ``L`` (XLA's CPU fusion recomputes shared elementwise
   work), so its fastest way is used instead: the jitted kernel of
   ``stax.Dense`` followed ``L - 1`` times by one jitted ``serial(Relu,
   Dense)`` applied to its own ``Kernel`` output ("incremental").
2. ``every-depth``: the NTK at every depth 1..100 (n = 1000), one
   ``relu_kernel_trace(x, depth=100, get=("ntk",))``, against neural-tangents'
   incremental strategy keeping every depth's NTK (its fastest: a separately
   jitted ``kernel_fn`` per depth costs ``O(L^2)`` layers and a compilation per
   depth), and against the Gram matrix.
3. ``tiled``: ``tiled_kernel`` of n = 60,000 inputs (``--tiled-n``), float32,
   L = 10, into a ``.npy`` file under a temporary folder (``--tmp-dir``),
   deleted afterwards, in a subprocess whose peak resident memory is read back
   (``getrusage(RUSAGE_CHILDREN)``); a 256 x 256 sample of entries is checked
   against ``relu_ntk`` of the same inputs.

Timing: a warm-up call each (which compiles; for the incremental strategy a
short chain that compiles the same functions), then ``--repeats`` rounds
(fewer where the calls take longer than ``--budget`` seconds each) in which
the Gram matrix, ntkdepth and neural-tangents run once each, in turn, so that
a shared machine's changing load falls on all three alike; the medians, each
call ended by ``jax.block_until_ready``. Ratios: ``nt/ours`` is
neural-tangents' time over ntkdepth's (above 1: ntkdepth is faster), from
those rounds; ``ours/Gram`` ntkdepth's over the Gram matrix's, from further
rounds (at least ``GRAM_ROUNDS``) that alternate only those two: a
neural-tangents call of seconds between them would leave each of them a
different machine state, and three rounds of calls of a few milliseconds
are too few for a median. The table's "ntkdepth [s]" and "Gram [s]" are
those of the paired rounds. The targets printed beside
them apply on a CPU to the bias-free rows: ``nt/ours >= 2`` at L = 10 and
``>= 20`` at L = 100, ``ours/Gram <= 2`` at every L, and ``nt/ours >= 1.5``
for every depth 1..100.

Accuracy: the largest difference ``|ours - nt|`` off the diagonal, relative to
the diagonal scale ``sqrt(nt(x, x) nt(x', x'))`` of the entry, and ntkdepth's diagonal against its closed form where one exists
(no bias: ``Theta^L(x, x) = L W_std^2 |x|^2 / n0``). neural-tangents' own
diagonal is off by about ``sqrt(eps) L`` (it reads the angle of an identical
pair off a rounding residual), so it is not compared. In float64 both must be
below 1e-10; the exit status is 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels import nt_bridge, relu_kernel_trace, relu_ntk, stax_mlp, tiled_kernel
from ntkdepth.runs import OutputFolder
from ntkdepth.runs import environment as run_environment

TOL64 = 1e-10
WIDTH = 512  # any width: the infinite-width kernel does not depend on it
W_STD = math.sqrt(2.0)
B_STD = 0.1
N0 = 784
SECTIONS = ("one-depth", "every-depth", "tiled")
NT_JIT_MAX_DEPTH = 10  # deeper, neural-tangents' jitted kernel_fn is not its fastest way


# --------------------------------------------------------------------------
# Helpers.


def _arrays(tree):
    return [a for a in jax.tree_util.tree_leaves(tree) if isinstance(a, jax.Array)]


def _ready(tree):
    jax.block_until_ready(_arrays(tree))
    return tree


def _progress(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed_together(label, fns, repeats, budget, warmups=None):
    """``({name: record}, {name: last output})`` for functions timed round by round.

    Each function gets a warm-up call (``warmups[name]``, default itself: it
    compiles); then up to ``repeats`` rounds in which each runs once, in turn,
    stopping early once the rounds have taken ``budget`` seconds per function
    (at least one round). Interleaving lets a shared machine's changing load
    fall on all of them alike. A record: ``{"first_call_s", "median_s", "times_s"}``.
    """
    warmups = warmups or {}
    outs, first = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        outs[name] = _ready(warmups.get(name, fn)())
        first[name] = time.perf_counter() - t0
    times = {name: [] for name in fns}
    while not times[next(iter(fns))] or (
            len(times[next(iter(fns))]) < repeats and sum(map(sum, times.values())) < budget * len(fns)):
        for name, fn in fns.items():
            outs[name] = None
            t0 = time.perf_counter()
            outs[name] = _ready(fn())
            times[name].append(time.perf_counter() - t0)
    for name in fns:
        _progress(f"{label} {name}: first {first[name]:.3f} s, timed "
                  + " ".join(f"{t:.3f}" for t in times[name]))
    recs = {name: {"first_call_s": first[name], "median_s": statistics.median(times[name]),
                   "times_s": times[name]} for name in fns}
    return recs, outs


def offdiag_err(ours, theirs):
    """Largest ``|ours - nt|`` off the diagonal, in units of ``sqrt(nt(x, x) nt(x', x'))``.

    The scale of an entry is that of its diagonal: a plain relative error would
    be dominated by entries near 0 (e.g. of ``Theta^1``, a Gram matrix), whose
    rounding says nothing about the kernel's accuracy.
    """
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    off = ~np.eye(a.shape[0], dtype=bool)
    d = np.sqrt(np.abs(np.diag(b)))
    return float(np.max((np.abs(a - b) / np.outer(d, d))[off]))


def diag_err(ours, depth, sq_norms):
    exact = depth * W_STD**2 * sq_norms / N0
    return float(np.max(np.abs(np.diag(np.asarray(ours, np.float64)) - exact) / exact))


def environment():
    """The run's environment (ntkdepth.runs.environment) with neural-tangents' version and the hash of
    the ReLU kernel's sources (its public door, engine and interpolated path)."""
    import ntkdepth.kernels.interp as interp_module
    import ntkdepth.kernels.relu as relu_module
    import ntkdepth.kernels.relu_engine as engine_module

    h = hashlib.sha256()
    for module in (relu_module, engine_module, interp_module):
        with open(module.__file__, "rb") as f:
            h.update(f.read())
    nt = nt_bridge.load()
    return {**run_environment(), "neural_tangents": getattr(nt, "__version__", "?"),
            "relu_sources_sha256": h.hexdigest()[:12]}


# --------------------------------------------------------------------------
# neural-tangents.


def nt_incremental(b_std):
    """``chain(x, L, every)``: the depth-L NTK (or every depth's) by neural-tangents' layer blocks."""
    stax = nt_bridge.stax
    bias = None if b_std == 0 else b_std
    first = jax.jit(stax.Dense(WIDTH, W_std=W_STD, b_std=bias, parameterization="ntk")[2],
                    static_argnames="get")
    block = jax.jit(stax.serial(
        stax.Relu(), stax.Dense(WIDTH, W_std=W_STD, b_std=bias, parameterization="ntk"))[2])

    def chain(x, depth, every=False):
        k = first(x, None)
        outs = [k.ntk]
        for _ in range(depth - 1):
            k = block(k)
            if every:
                outs.append(k.ntk)
        return outs if every else k.ntk

    return chain


def nt_jitted(depth, b_std):
    kernel_fn = jax.jit(stax_mlp(depth, WIDTH, W_STD, b_std)[2], static_argnames="get")
    return lambda x: kernel_fn(x, None, "ntk")


# --------------------------------------------------------------------------
# Sections.


#: Least number of rounds that alternate ntkdepth and the Gram matrix alone.
GRAM_ROUNDS = 15


def _gram_fn():
    return jax.jit(lambda x: x @ x.T)


def one_depth(x_all, cases, repeats, budget):
    rows = []
    gram = _gram_fn()
    for dtype in ("float32", "float64"):
        for b_std in (0.0, B_STD):
            chain = nt_incremental(b_std)
            for n, depth in cases:
                label = f"{dtype} b={b_std} n={n} L={depth}"
                x = jnp.asarray(x_all[:n], dtype=dtype)
                fns = {"gram": lambda: gram(x), "ntkdepth": lambda: relu_ntk(x, depth=depth, b_std=b_std)}
                warmups = {}
                if depth <= NT_JIT_MAX_DEPTH:
                    strategy, fn = "jit", nt_jitted(depth, b_std)
                    fns["nt"] = lambda: fn(x)
                else:
                    strategy = "incremental"
                    fns["nt"] = lambda: chain(x, depth)
                    warmups["nt"] = lambda: chain(x, 2)
                recs, outs = timed_together(label, fns, repeats, budget, warmups)
                pair, _ = timed_together(f"{label} (with the Gram matrix only)",
                                         {"gram": fns["gram"], "ntkdepth": fns["ntkdepth"]},
                                         max(repeats, GRAM_ROUNDS), budget)
                rec_t = recs["nt"]
                rec_g, rec_o = pair["gram"], pair["ntkdepth"]
                ours, theirs = np.asarray(outs["ntkdepth"]), outs["nt"]
                del fns, outs
                err = offdiag_err(ours, theirs)
                del theirs
                sq = np.sum(np.asarray(x, np.float64) ** 2, axis=1)
                derr = diag_err(ours, depth, sq) if b_std == 0 else None
                del ours
                jax.clear_caches()
                rows.append({
                    "dtype": dtype, "b_std": b_std, "n": n, "depth": depth,
                    "ntkdepth": rec_o, "neural_tangents": rec_t, "gram": rec_g,
                    "nt_strategy": strategy,
                    "ntkdepth_with_nt": recs["ntkdepth"],
                    "ratio_nt_over_ntkdepth": rec_t["median_s"] / recs["ntkdepth"]["median_s"],
                    "ratio_ntkdepth_over_gram": rec_o["median_s"] / rec_g["median_s"],
                    "offdiag_rel_err_vs_nt": err, "diag_rel_err_vs_exact": derr,
                })
    return rows


def every_depth(x_all, n, max_depth, repeats, budget):
    rows = []
    gram = _gram_fn()
    for dtype in ("float32", "float64"):
        for b_std in (0.0, B_STD):
            label = f"{dtype} b={b_std} n={n} L=1..{max_depth}"
            x = jnp.asarray(x_all[:n], dtype=dtype)
            chain = nt_incremental(b_std)
            recs, outs = timed_together(label, {
                "gram": lambda: gram(x),
                "ntkdepth": lambda: relu_kernel_trace(x, depth=max_depth, b_std=b_std, get=("ntk",)).ntk,
                "nt": lambda: chain(x, max_depth, every=True),
            }, repeats, budget, {"nt": lambda: chain(x, 2, every=True)})
            rec_g, rec_o, rec_t = recs["gram"], recs["ntkdepth"], recs["nt"]
            ours, theirs = outs["ntkdepth"], outs["nt"]
            del outs
            check = sorted({1, 2, max_depth // 3, max_depth})
            ours_np = {l: np.asarray(ours[l - 1]) for l in check}
            err = max(offdiag_err(ours_np[l], theirs[l - 1]) for l in check)
            sq = np.sum(np.asarray(x, np.float64) ** 2, axis=1)
            derr = max(diag_err(ours_np[l], l, sq) for l in check) if b_std == 0 else None
            del ours, theirs
            jax.clear_caches()
            rows.append({
                "dtype": dtype, "b_std": b_std, "n": n, "depth": f"1..{max_depth}",
                "ntkdepth": rec_o, "neural_tangents": rec_t, "gram": rec_g,
                "nt_strategy": "incremental",
                "ratio_nt_over_ntkdepth": rec_t["median_s"] / rec_o["median_s"],
                "ratio_ntkdepth_over_gram": rec_o["median_s"] / rec_g["median_s"],
                "offdiag_rel_err_vs_nt": err, "diag_rel_err_vs_exact": derr,
                "checked_depths": check,
            })
    return rows


def tiled_child(n, block, depth, folder):
    """Runs in a subprocess: the n x n float32 kernel into a .npy under ``folder``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, N0), dtype=np.float32)
    path = os.path.join(folder, "kernel.npy")
    t0 = time.perf_counter()
    k = tiled_kernel(x, depth=depth, block_size=block, out=path, progress=True)
    elapsed = time.perf_counter() - t0
    rows = np.sort(rng.choice(n, 256, replace=False))
    cols = np.sort(rng.choice(n, 256, replace=False))
    sample = np.asarray(k[np.ix_(rows, cols)])
    ref = np.asarray(relu_ntk(x[rows], x[cols], depth=depth))
    out = {"n": n, "block_size": block, "depth": depth, "dtype": "float32", "seconds": elapsed,
           "output_gib": os.path.getsize(path) / 2**30,
           "inputs_gib": x.nbytes / 2**30,
           "sample_max_rel_err": float(np.max(np.abs(sample - ref) / np.abs(ref))),
           "child_peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    print("TILED " + json.dumps(out), flush=True)


def tiled(n, block, depth, tmp_dir):
    folder = tempfile.mkdtemp(prefix="ntkdepth-tiled-", dir=tmp_dir)
    try:
        _progress(f"tiled n={n}: subprocess writing under {folder}")
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--tiled-child", str(n), str(block),
             str(depth), folder], stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("TILED ")]
        if res.returncode or not lines:
            raise RuntimeError(f"the tiled run failed (exit status {res.returncode})")
        rec = json.loads(lines[-1][6:])
        rec.update(wall_s=wall, peak_rss_children_gib=peak,
                   block_gib=block * block * 4 / 2**30)
        return rec
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------
# Report.


def targets(row, backend):
    """``(nt/ours target, ours/Gram target)`` for a row: the CPU targets, bias-free rows only."""
    if backend != "cpu" or row["b_std"] != 0:
        return None, None
    if isinstance(row["depth"], str):
        return 1.5, None
    return {10: 2.0, 100: 20.0}.get(row["depth"]), 2.0


def _mark(value, target, above):
    if target is None:
        return "", "-"
    ok = value >= target if above else value <= target
    return ("ok" if ok else "MISSED"), (f">= {target:g}" if above else f"<= {target:g}")


def table_rows(rows, backend):
    out = []
    for r in rows:
        t_nt, t_gram = targets(r, backend)
        m1, s1 = _mark(r["ratio_nt_over_ntkdepth"], t_nt, True)
        m2, s2 = _mark(r["ratio_ntkdepth_over_gram"], t_gram, False)
        out.append([
            r["dtype"], "yes" if r["b_std"] else "no", str(r["n"]), str(r["depth"]),
            f"{r['ntkdepth']['median_s']:.4f}", f"{r['neural_tangents']['median_s']:.4f}",
            r["nt_strategy"],
            f"{r['gram']['median_s']:.4f}",
            f"{r['ratio_nt_over_ntkdepth']:.2f}", f"{s1} {m1}".strip(),
            f"{r['ratio_ntkdepth_over_gram']:.2f}", f"{s2} {m2}".strip(),
            f"{r['offdiag_rel_err_vs_nt']:.1e}",
            "-" if r["diag_rel_err_vs_exact"] is None else f"{r['diag_rel_err_vs_exact']:.1e}",
        ])
    return out


HEADER = ["dtype", "bias", "n", "L", "ntkdepth [s]", "nt [s]", "nt way", "Gram [s]", "nt/ours",
          "target", "ours/Gram", "target", "err vs nt", "diag err"]


NT_WAYS = (
    "nt way: jit = jax.jit(kernel_fn)(x, None, 'ntk') of stax_mlp(L); incremental = the jitted "
    "kernel of stax.Dense, then one jitted serial(Relu, Dense) applied L - 1 times to its own "
    "Kernel output (every depth kept for L = 1..D)"
)


def text_table(rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(HEADER), "-" * len(line(HEADER))] + [line(r) for r in rows])


def md_table(rows):
    return "\n".join(["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def tiled_lines(t):
    return [
        f"n = {t['n']}, d = {N0}, L = {t['depth']}, float32, NTK, tiles of {t['block_size']}, "
        f"into a .npy memory map",
        f"time {t['seconds']:.1f} s (subprocess wall {t['wall_s']:.1f} s)",
        f"peak resident memory {t['peak_rss_children_gib']:.2f} GiB (output {t['output_gib']:.2f}"
        f" GiB on disk, inputs {t['inputs_gib']:.2f} GiB, one tile {t['block_gib']:.3f} GiB)",
        f"256 x 256 sample against relu_ntk: max rel err {t['sample_max_rel_err']:.1e}",
    ]


def report(env, results):
    lines = [
        f"python {env['python']} on {env['platform']}",
        f"ntkdepth {env['ntkdepth_commit']}"
        + (" (uncommitted changes to ntkdepth/)" if env["ntkdepth_modified"] else "")
        + f", relu.py + relu_engine.py + interp.py sha256 {env['relu_sources_sha256']}",
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, neural-tangents {env['neural_tangents']}, "
        f"numpy {env['numpy']}; backend {env['backend']}, devices {env['devices']}",
        f"cores: cpu_count {env['cpu_count']}, affinity {env['cpu_affinity']}; load average "
        f"{env['loadavg_start']:.2f} at start, {env.get('loadavg_end', float('nan')):.2f} at end",
        f"W_std = sqrt(2), bias: b_std = {B_STD}, x ~ N(0, 1), d = {N0}; median of warm runs",
    ]
    rows = results.get("one_depth", []) + results.get("every_depth", [])
    return lines, table_rows(rows, env["backend"])


def check(results):
    ok = True
    for r in results.get("one_depth", []) + results.get("every_depth", []):
        if r["dtype"] == "float64":
            ok &= r["offdiag_rel_err_vs_nt"] < TOL64
            ok &= r["diag_rel_err_vs_exact"] is None or r["diag_rel_err_vs_exact"] < TOL64
    return bool(ok)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], help="leave these out")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median)")
    p.add_argument("--budget", type=float, default=10.0,
                   help="stop repeating a measurement once its timed runs took this long (s)")
    p.add_argument("--tiled-n", type=int, default=None, help="inputs of the tiled case (60000)")
    p.add_argument("--tiled-block", type=int, default=4096, help="tile edge of the tiled case")
    p.add_argument("--tmp-dir", default=None, help="where the tiled case writes (then deletes)")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    p.add_argument("--results-dir", metavar="DIR",
                   help="write NAME.json and NAME.md into DIR (NAME: --results-name)")
    p.add_argument("--results-name", default="bench_kernels",
                   help="file name of the results in --results-dir, without extension")
    p.add_argument("--tiled-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiled_child:
        n, block, depth, folder = args.tiled_child
        tiled_child(int(n), int(block), int(depth), folder)
        return 0

    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    if args.quick:
        cases, n_every, d_every = [(200, 10), (200, 100), (400, 10)], 200, 20
        tiled_n, repeats = args.tiled_n or 3000, min(args.repeats, 2)
    else:
        cases = [(1000, 10), (1000, 100), (1000, 1000), (2000, 10), (4000, 10), (8000, 10)]
        n_every, d_every = 1000, 100
        tiled_n, repeats = args.tiled_n or 60000, args.repeats

    env = environment()
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((max(n for n, _ in cases), N0))
    results = {}
    t_start = time.perf_counter()
    with jax.enable_x64(True):
        if "one-depth" in sections:
            results["one_depth"] = one_depth(x_all, cases, repeats, args.budget)
        if "every-depth" in sections:
            results["every_depth"] = every_depth(x_all, n_every, d_every, repeats, args.budget)
    if "tiled" in sections:
        results["tiled"] = tiled(tiled_n, args.tiled_block, 10, args.tmp_dir)
    total = time.perf_counter() - t_start
    env["loadavg_end"] = os.getloadavg()[0]
    ok = check(results)

    head, rows = report(env, results)
    print("\n".join(["", "== environment =="] + head))
    if rows:
        print("\n== ntkdepth (relu_ntk / relu_kernel_trace) against neural-tangents and x @ x.T ==")
        print(text_table(rows))
        print(NT_WAYS)
        print(f"check (float64: off-diagonal vs neural-tangents and diagonal vs closed form "
              f"< {TOL64:g}): {'PASS' if ok else 'FAIL'}")
    if "tiled" in results:
        print("\n== tiled kernel ==")
        print("\n".join(tiled_lines(results["tiled"])))
    print(f"\ntotal benchmark time: {total:.1f} s")

    record = {"quick": args.quick, "repeats": repeats, "sections": sections,
              "environment": env, **results, "total_s": total, "pass": ok}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        OutputFolder(os.path.dirname(os.path.abspath(args.out))).write_json(os.path.basename(args.out), record)
        print(f"wrote {args.out}")
    if args.results_dir:
        folder = OutputFolder(args.results_dir)
        os.makedirs(args.results_dir, exist_ok=True)
        folder.write_json(args.results_name + ".json", record)
        md = [f"# {args.results_name}", "", "```", *head, "```", ""]
        if rows:
            md += [md_table(rows), "",
                   "ratios: nt/ours = neural-tangents' time over ntkdepth's; ours/Gram = "
                   "ntkdepth's time over the jitted Gram matrix x @ x.T's; err vs nt: largest "
                   "off-diagonal |ours - nt| / sqrt(nt(x,x) nt(x',x')); diag err: ntkdepth's "
                   "diagonal against its closed form.", "", NT_WAYS, ""]
        if "tiled" in results:
            md += ["## tiled", "", *[f"- {ln}" for ln in tiled_lines(results["tiled"])], ""]
        md.append(f"total benchmark time: {total:.1f} s")
        folder.write_text(args.results_name + ".md", "\n".join(md) + "\n")
        print(f"wrote {args.results_dir}/{args.results_name}.json and .md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
