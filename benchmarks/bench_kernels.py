"""ntkdepth against neural-tangents: analytic ReLU kernels, timed side by side.

Run from the repository root::

    python benchmarks/bench_kernels.py            # the full benchmark (~7 minutes on 2 CPU cores)
    python benchmarks/bench_kernels.py --quick    # a tiny smoke run (seconds)
    python benchmarks/bench_kernels.py --out bench.json
    python benchmarks/bench_kernels.py --skip-per-depth   # without strategy (a): ~1 minute

Two cases, both in float64 (``jax.enable_x64``), ``W_std = sqrt(2)``, no bias,
inputs ``x ~ N(0, 1)`` of dimension 784, kernels of ``x`` with itself:

1. One depth (L = 10, n = 2000): ``relu_kernel_trace(x, depth=L, layers=[L],
   get=("nngp", "ntk"))`` against the jitted ``kernel_fn`` of
   ``stax_mlp(L, 512)`` with ``get=("nngp", "ntk")``.
2. Every depth 1..100 (n = 1000): one ``relu_kernel_trace(x, depth=100,
   get=("nngp", "ntk"))`` against the faster of two neural-tangents strategies:
   (a) a separately jitted ``kernel_fn`` of ``stax_mlp(l, 512)`` for each
   depth ``l`` (timed with and without compilation, since a user pays the
   compilation once per depth), and (b) the incremental one: the depth-1
   kernel from ``stax.Dense``, then one jitted ``kernel_fn`` of
   ``stax.serial(stax.Relu(), stax.Dense(...))`` applied to neural-tangents'
   ``Kernel`` object again and again.

   Strategy (a) over all 100 depths costs 40-70 minutes on 2 CPU cores: under
   ``jit``, XLA's CPU fusion recomputes shared elementwise work, so one depth-l
   ``kernel_fn`` runs in time growing much faster than l (30-55 s at l = 100,
   against 1.3-2 s for 100 incremental steps) and compiles for over a minute. By
   default it is therefore measured at depths 1, 2, 5, 10, 20, 37, 50, 75 and
   100, and the totals over 1..100 are interpolated (marked "est.");
   ``--per-depth-all`` measures every depth, ``--skip-per-depth`` none. Each
   depth's executable is dropped after it is timed, keeping memory bounded.

Timing: one warm-up call (which compiles; its time is reported as the "first
call"), then the median of ``--repeats`` (default 3) timed calls, each ended by
``jax.block_until_ready`` on every output array. The ratio is
neural-tangents' time over ntkdepth's (above 1: ntkdepth is faster).

Accuracy: the largest elementwise relative error ``|a - b| / |b|`` between the
two libraries' NTKs, reported separately off the diagonal and on it. On the
diagonal the exact value is known in closed form (with ``W_std^2 = 2`` and no
bias, ``Theta^L(x, x) = L * 2 |x|^2 / n0``), and both libraries are compared
with it: neural-tangents reads the angle of an identical pair off
``sqrt(q q' - Sigma^2)``, a rounding residual, so its diagonal carries an angle
of about ``sqrt(eps) ~ 1e-8`` and a relative error of about ``1e-8 * L`` (see
``ntkdepth/kernels/relu.py``, "snap"). The pass/fail check (``< 1e-10``) is
therefore on the off-diagonal entries (neural-tangents against ntkdepth) and on
ntkdepth's diagonal against the closed form; neural-tangents' diagonal errors
are printed, not checked. The exit status is 1 when the check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels import nt_bridge, relu_kernel_trace, stax_mlp

TOL = 1e-10
WIDTH = 512  # any width: the infinite-width kernel does not depend on it
W_STD = math.sqrt(2.0)
N0 = 784


# --------------------------------------------------------------------------
# Helpers.


def _arrays(tree):
    """The jax.Array leaves of a pytree (NamedTuples may hold numpy arrays and None)."""
    return [a for a in jax.tree_util.tree_leaves(tree) if isinstance(a, jax.Array)]


def _ready(tree):
    jax.block_until_ready(_arrays(tree))
    return tree


def _progress(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(label, fn, repeats):
    """``(first_call_seconds, median_seconds, all_seconds, last_output)``.

    The first call compiles; the median is over ``repeats`` further calls.
    Every call ends when all of its output arrays are ready.
    """
    _progress(f"{label}: first call ...")
    t0 = time.perf_counter()
    out = _ready(fn())
    first = time.perf_counter() - t0
    _progress(f"{label}: first call {first:.3f} s")
    times = []
    for _ in range(repeats):
        del out  # free the previous result before computing the next one
        t0 = time.perf_counter()
        out = _ready(fn())
        times.append(time.perf_counter() - t0)
        _progress(f"{label}: timed run {times[-1]:.3f} s")
    return first, statistics.median(times), times, out


def rel_err(a, b, mask):
    """Largest ``|a - b| / |b|`` over the entries selected by ``mask``."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)[mask] / np.abs(b)[mask]))


def diag_rel_err(a, exact):
    a = np.diag(np.asarray(a))
    return float(np.max(np.abs(a - exact) / np.abs(exact)))


def accuracy(ntk_nt, ntk_ours, depth, sq_norms):
    """Off-diagonal error between the libraries; each library's diagonal against the closed form."""
    n = ntk_ours.shape[0]
    off = ~np.eye(n, dtype=bool)
    exact_diag = depth * W_STD**2 * sq_norms / N0
    return {
        "offdiag_nt_vs_ntkdepth": rel_err(ntk_nt, ntk_ours, off),
        "diag_nt_vs_ntkdepth": rel_err(ntk_nt, ntk_ours, ~off),
        "diag_ntkdepth_vs_exact": diag_rel_err(ntk_ours, exact_diag),
        "diag_nt_vs_exact": diag_rel_err(ntk_nt, exact_diag),
    }


def passed(acc):
    return (
        acc["offdiag_nt_vs_ntkdepth"] < TOL
        and acc["diag_ntkdepth_vs_exact"] < TOL
    )


def environment():
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    thread_vars = {
        k: os.environ[k]
        for k in ("XLA_FLAGS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        if k in os.environ
    }
    import jaxlib

    nt = nt_bridge.load()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:  # which ntkdepth code was timed: the commit, and whether the kernels differ from it
        import subprocess

        def git(*cmd):
            return subprocess.run(["git", "-C", root, *cmd], capture_output=True, text=True,
                                  timeout=10).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD") or "?"
        dirty = bool(git("status", "--porcelain", "--", "ntkdepth/kernels"))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "?", False
    import hashlib

    import ntkdepth.kernels.relu as relu_module

    with open(relu_module.__file__, "rb") as f:
        relu_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "neural_tangents": getattr(nt, "__version__", "?"),
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "thread_env": thread_vars,
        "loadavg_start": os.getloadavg()[0],
        "ntkdepth_commit": commit,
        "ntkdepth_kernels_modified": dirty,
        "relu_py_sha256": relu_sha,
    }


ENV_NOTE = (
    "JAX on CPU runs its kernels on XLA's own (Eigen) thread pool, one thread per core;\n"
    "OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS do not affect it (XLA_FLAGS\n"
    "can, e.g. --xla_cpu_multi_thread_eigen=false). Both libraries run in this same process\n"
    "on the same jax.Array inputs."
)


# --------------------------------------------------------------------------
# Case 1: one depth.


def case_one_depth(x, depth, repeats):
    get = ("nngp", "ntk")

    def ours():
        return relu_kernel_trace(x, depth=depth, layers=[depth], get=get)

    def ours_ntk_only():
        return relu_kernel_trace(x, depth=depth, layers=[depth], get=("ntk",))

    _, _, kernel_fn = stax_mlp(depth, WIDTH, W_STD, 0.0)
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")

    def theirs():
        return kernel_fn(x, None, get)

    f1, m1, t1, out_ours = timed("1 ntkdepth", ours, repeats)
    ntk_ours = np.asarray(out_ours.ntk[0])
    del out_ours
    f1b, m1b, t1b, out = timed("1 ntkdepth ntk only", ours_ntk_only, repeats)
    del out
    f2, m2, t2, out_nt = timed("1 neural-tangents", theirs, repeats)
    ntk_nt = np.asarray(out_nt.ntk)
    del out_nt

    sq_norms = np.sum(np.asarray(x) ** 2, axis=1)
    acc = accuracy(ntk_nt, ntk_ours, depth, sq_norms)
    return {
        "depth": depth,
        "n": x.shape[0],
        "ntkdepth": {"first_call_s": f1, "median_s": m1, "times_s": t1,
                     "call": f"relu_kernel_trace(x, depth={depth}, layers=[{depth}], get=('nngp','ntk'))"},
        "ntkdepth_ntk_only": {"first_call_s": f1b, "median_s": m1b, "times_s": t1b,
                              "call": "relu_kernel_trace(..., get=('ntk',)) (= relu_ntk)"},
        "neural_tangents": {"first_call_s": f2, "median_s": m2, "times_s": t2,
                            "call": f"jit(stax_mlp({depth}, {WIDTH})[2])(x, None, ('nngp','ntk'))"},
        "ratio_nt_over_ntkdepth": m2 / m1,
        "accuracy": acc,
        "pass": passed(acc),
    }


# --------------------------------------------------------------------------
# Case 2: every depth 1..D.


def per_depth_strategy(x, max_depth, sample_depths, repeats, check_depths):
    """neural-tangents strategy (a): a separately jitted ``kernel_fn`` per depth.

    Depth by depth: build ``stax_mlp(l)``, time its first call (compilation
    plus one run) and the median of ``repeats`` warm calls, keep the NTK if
    ``l`` is a check depth, then drop the executable (``jax.clear_caches``), so
    that memory and the process's memory maps stay bounded. The totals over
    ``1..max_depth`` are sums of the per-depth times; where only some depths are
    measured, the others are interpolated linearly in ``l`` (the per-depth
    times grow faster than linearly, so this slightly overestimates).
    """
    get = ("nngp", "ntk")
    rows, ntk_at = [], {}
    for l in sample_depths:
        kernel_fn = jax.jit(stax_mlp(l, WIDTH, W_STD, 0.0)[2], static_argnames="get")
        first, med, times, out = timed(
            f"2 nt (a) depth {l}", lambda: kernel_fn(x, None, get), repeats
        )
        if l in check_depths:
            ntk_at[l] = np.asarray(out.ntk)
        del out, kernel_fn
        jax.clear_caches()
        rows.append({"depth": l, "first_call_s": first, "median_s": med, "times_s": times})
    ls = np.array([r["depth"] for r in rows], dtype=float)
    every = np.arange(1, max_depth + 1, dtype=float)
    total_first = float(np.sum(np.interp(every, ls, [r["first_call_s"] for r in rows])))
    total_warm = float(np.sum(np.interp(every, ls, [r["median_s"] for r in rows])))
    measured_all = len(rows) == max_depth
    return {
        "first_call_s": total_first,  # includes one compilation per depth
        "median_s": total_warm,
        "estimated": not measured_all,
        "sample_depths": [int(v) for v in ls],
        "per_depth": rows,
        "call": f"jit(stax_mlp(l, {WIDTH})[2])(x, None, ('nngp','ntk')) for l = 1..{max_depth}",
        "note": ("sum over depths of per-depth times (first call: compilation + run; warm: median of "
                 f"{repeats}); " + ("every depth measured" if measured_all else
                                   "depths not measured are interpolated linearly in l")),
    }, ntk_at


def case_all_depths(x, max_depth, repeats, check_depths, sample_depths):
    stax = nt_bridge.stax
    get = ("nngp", "ntk")

    def ours():
        return relu_kernel_trace(x, depth=max_depth, get=get)

    # (b) incremental: Kernel -> Relu -> Dense -> Kernel, one jitted block.
    # With W_std given, b_std=None means no bias.
    first_fn = jax.jit(stax.Dense(WIDTH, W_std=W_STD, b_std=None, parameterization="ntk")[2])
    block_fn = jax.jit(
        stax.serial(
            stax.Relu(), stax.Dense(WIDTH, W_std=W_STD, b_std=None, parameterization="ntk")
        )[2]
    )

    def theirs_incremental():
        k = first_fn(x, None)
        outs = [(k.nngp, k.ntk)]
        for _ in range(2, max_depth + 1):
            k = block_fn(k)
            outs.append((k.nngp, k.ntk))
        return outs

    f1, m1, t1, out_ours = timed("2 ntkdepth", ours, repeats)
    ntk_ours = {l: np.asarray(out_ours.ntk[l - 1]) for l in check_depths}
    del out_ours

    fb, mb, tb, out_b = timed("2 nt (b) incremental", theirs_incremental, repeats)
    ntk_b = {l: np.asarray(out_b[l - 1][1]) for l in check_depths}
    del out_b

    # Strategy (a) last: it clears JAX's caches as it goes.
    if sample_depths is None:  # --skip-per-depth
        rec_a, ntk_a, ma, fa = None, {}, math.inf, math.inf
    else:
        samples = sorted(set(sample_depths) | set(check_depths) | {1, max_depth})
        rec_a, ntk_a = per_depth_strategy(x, max_depth, samples, repeats, check_depths)
        ma, fa = rec_a["median_s"], rec_a["first_call_s"]

    sq_norms = np.sum(np.asarray(x) ** 2, axis=1)
    acc_b = {l: accuracy(ntk_b[l], ntk_ours[l], l, sq_norms) for l in check_depths}
    acc_a = {l: accuracy(ntk_a[l], ntk_ours[l], l, sq_norms) for l in ntk_a}

    def worst(accs):
        return {k: max(a[k] for a in accs.values()) for k in next(iter(accs.values()))}

    best = "incremental" if mb <= ma else "per_depth_jit"
    return {
        "depths": [1, max_depth],
        "n": x.shape[0],
        "check_depths": list(check_depths),
        "ntkdepth": {"first_call_s": f1, "median_s": m1, "times_s": t1,
                     "call": f"relu_kernel_trace(x, depth={max_depth}, get=('nngp','ntk'))"},
        "nt_per_depth_jit": rec_a,
        "nt_incremental": {
            "first_call_s": fb, "median_s": mb, "times_s": tb,
            "call": f"Dense kernel, then jit(serial(Relu, Dense)) applied {max_depth - 1} times",
        },
        "nt_best": best,
        "ratio_nt_best_over_ntkdepth": min(ma, mb) / m1,
        "ratio_nt_per_depth_jit_with_compile_over_ntkdepth": fa / m1 if rec_a else None,
        "accuracy_incremental": {str(l): a for l, a in acc_b.items()},
        "accuracy_per_depth_jit": {str(l): a for l, a in acc_a.items()},
        "pass": passed(worst(acc_b)) and (not acc_a or passed(worst(acc_a))),
    }


# --------------------------------------------------------------------------
# Report.


def _row(label, ours, theirs, ratio, acc):
    err = (f"{acc['offdiag_nt_vs_ntkdepth']:.1e} / {acc['diag_nt_vs_ntkdepth']:.1e}"
           if acc else "")
    return f"{label:<50} {ours:>12.3f} {theirs:>12.3f} {ratio:>7.2f}   {err}"


def print_report(env, c1, c2, peak_rss_gib):
    print("\n== environment ==")
    print(f"python {env['python']} on {env['platform']}")
    print(f"ntkdepth at commit {env['ntkdepth_commit']}"
          + (" with uncommitted changes under ntkdepth/kernels" if env["ntkdepth_kernels_modified"] else "")
          + f"; relu.py sha256 {env['relu_py_sha256']}")
    print(f"jax {env['jax']}, jaxlib {env['jaxlib']}, neural-tangents {env['neural_tangents']}, "
          f"numpy {env['numpy']}; backend {env['backend']}, devices {env['devices']}")
    print(f"os.cpu_count() = {env['cpu_count']}, usable cores (affinity) = {env['cpu_affinity']}")
    print(f"load average (1 min) at start {env['loadavg_start']:.2f}, at end {env['loadavg_end']:.2f}"
          + ("  <- other processes were competing for the cores; timings are noisy"
             if max(env["loadavg_start"], env["loadavg_end"]) > 0.5 * (env["cpu_affinity"] or 1) else ""))
    print(f"thread-related env vars set: {env['thread_env'] or 'none'}")
    print(ENV_NOTE)
    print("float64 throughout (jax.enable_x64), W_std = sqrt(2), b_std = 0, x ~ N(0, 1), d = 784")

    head = (f"{'case':<50} {'ntkdepth[s]':>12} {'nt[s]':>12} {'nt/ours':>7}   "
            f"max rel err NTK, off-diag / diag (nt vs ntkdepth)")
    print("\n== results: median of warm runs (first calls, with compilation, further below) ==")
    print(head)
    print("-" * len(head))
    L, n = c1["depth"], c1["n"]
    print(_row(f"1  L={L}, n={n}: nngp+ntk", c1["ntkdepth"]["median_s"],
               c1["neural_tangents"]["median_s"], c1["ratio_nt_over_ntkdepth"], c1["accuracy"]))
    print(_row(f"1b L={L}, n={n}: ntkdepth ntk only (relu_ntk)",
               c1["ntkdepth_ntk_only"]["median_s"], c1["neural_tangents"]["median_s"],
               c1["neural_tangents"]["median_s"] / c1["ntkdepth_ntk_only"]["median_s"], None))
    D, n2 = c2["depths"][1], c2["n"]
    ours2 = c2["ntkdepth"]["median_s"]
    a, b = c2["nt_per_depth_jit"], c2["nt_incremental"]
    worst_b = {k: max(v[k] for v in c2["accuracy_incremental"].values())
               for k in next(iter(c2["accuracy_incremental"].values()))}
    worst_a = ({k: max(v[k] for v in c2["accuracy_per_depth_jit"].values())
                for k in next(iter(c2["accuracy_per_depth_jit"].values()))}
               if c2["accuracy_per_depth_jit"] else None)
    print(_row(f"2  L=1..{D}, n={n2}: nt (b) incremental", ours2, b["median_s"],
               b["median_s"] / ours2, worst_b))
    est = " (est.)" if a and a["estimated"] else ""
    if a:
        print(_row(f"2  L=1..{D}, n={n2}: nt (a) jit per depth{est}", ours2, a["median_s"],
                   a["median_s"] / ours2, worst_a))
        print(_row(f"2  L=1..{D}, n={n2}: nt (a) incl. compile{est}", ours2, a["first_call_s"],
                   a["first_call_s"] / ours2, None))
    else:
        print(f"2  L=1..{D}, n={n2}: nt (a) jit per depth: not measured (--skip-per-depth)")
    print(f"   case 2 fastest neural-tangents strategy{' measured' if not a else ''}: {c2['nt_best']}, "
          f"ratio {c2['ratio_nt_best_over_ntkdepth']:.2f}")
    if est:
        print(f"   (est.): strategy (a) measured at depths {a['sample_depths']}; the other depths'\n"
              "   times interpolated linearly in l and summed (--per-depth-all measures every depth)")

    print("\n== first calls (including compilation), seconds ==")
    print(f"1  ntkdepth {c1['ntkdepth']['first_call_s']:.3f}   ntk-only {c1['ntkdepth_ntk_only']['first_call_s']:.3f}"
          f"   neural-tangents {c1['neural_tangents']['first_call_s']:.3f}")
    print(f"2  ntkdepth {c2['ntkdepth']['first_call_s']:.3f}   nt (b) incremental {b['first_call_s']:.3f}"
          + (f"   nt (a) jit per depth, all depths{est} {a['first_call_s']:.3f}" if a else ""))

    print("\n== all timed runs, seconds ==")
    for name, rec in (("1 ntkdepth", c1["ntkdepth"]), ("1b ntkdepth ntk only", c1["ntkdepth_ntk_only"]),
                      ("1 neural-tangents", c1["neural_tangents"]), ("2 ntkdepth", c2["ntkdepth"]),
                      ("2 nt (b) incremental", b)):
        print(f"{name:<24} " + "  ".join(f"{t:.3f}" for t in rec["times_s"]))

    print("\n== nt (a): one jitted stax_mlp(l) kernel_fn per depth, seconds ==")
    print(f"{'depth l':>8} {'first call':>11} {'~compile':>10} {'warm median':>12}  warm runs")
    for r in (a["per_depth"] if a else []):
        print(f"{r['depth']:>8} {r['first_call_s']:>11.3f} {r['first_call_s'] - r['median_s']:>10.3f} "
              f"{r['median_s']:>12.3f}  " + "  ".join(f"{t:.3f}" for t in r["times_s"]))

    print(f"\n== accuracy (elementwise max |a-b|/|b|; check: < {TOL:g}) ==")
    exact = "exact diagonal: Theta^L(x,x) = L * W_std^2 |x|^2 / n0"
    print(exact)

    def acc_line(label, acc):
        print(f"{label:<34} off-diag nt vs ntkdepth {acc['offdiag_nt_vs_ntkdepth']:.2e} | "
              f"diag: nt vs ntkdepth {acc['diag_nt_vs_ntkdepth']:.2e}, "
              f"ntkdepth vs exact {acc['diag_ntkdepth_vs_exact']:.2e}, "
              f"nt vs exact {acc['diag_nt_vs_exact']:.2e}")

    acc_line(f"1  L={L}", c1["accuracy"])
    for l, acc in c2["accuracy_incremental"].items():
        acc_line(f"2  L={l}, nt (b) incremental", acc)
    for l, acc in c2["accuracy_per_depth_jit"].items():
        acc_line(f"2  L={l}, nt (a) jit per depth", acc)
    ok = c1["pass"] and c2["pass"]
    print(f"check (off-diagonal agreement, ntkdepth diagonal exact): {'PASS' if ok else 'FAIL'}")
    print("(neural-tangents' diagonal is off by ~1e-8 * L: its angle for an identical pair is\n"
          " arctan2(sqrt(q q' - Sigma^2), Sigma) of a rounding residual, ~sqrt(eps); ntkdepth snaps\n"
          " such pairs to angle 0. The check therefore compares the libraries off the diagonal.)")
    print(f"\npeak resident memory of this process: {peak_rss_gib:.2f} GiB")
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few seconds")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (median)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-depth-all", action="store_true",
                       help="strategy (a): measure every depth 1..100, not a sample (1-2 hours on 2 CPU cores)")
    group.add_argument("--skip-per-depth", action="store_true",
                       help="leave strategy (a) out (its compilations take minutes at depths 75 and 100)")
    args = p.parse_args(argv)

    if args.quick:
        depth1, n1, depth2, n2, check = 10, 200, 6, 100, (3, 6)
        samples = (1, 2, 4, 6)
    else:
        depth1, n1, depth2, n2, check = 10, 2000, 100, 1000, (37, 100)
        samples = (1, 2, 5, 10, 20, 37, 50, 75, 100)
    if args.per_depth_all:
        samples = tuple(range(1, depth2 + 1))
    elif args.skip_per_depth:
        samples = None

    env = environment()
    rng = np.random.default_rng(0)
    t_start = time.perf_counter()
    with jax.enable_x64(True):
        x1 = jnp.asarray(rng.standard_normal((n1, N0)), dtype=jnp.float64)
        x2 = jnp.asarray(rng.standard_normal((n2, N0)), dtype=jnp.float64)
        print(f"case 1: depth {depth1}, n = {n1} ...", flush=True)
        c1 = case_one_depth(x1, depth1, args.repeats)
        print(f"case 2: depths 1..{depth2}, n = {n2} ...", flush=True)
        c2 = case_all_depths(x2, depth2, args.repeats, check, samples)
    total = time.perf_counter() - t_start
    env["loadavg_end"] = os.getloadavg()[0]

    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    ok = print_report(env, c1, c2, peak_rss_gib)
    print(f"total benchmark time: {total:.1f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"quick": args.quick, "repeats": args.repeats, "environment": env,
                       "case1_one_depth": c1, "case2_all_depths": c2,
                       "peak_rss_gib": peak_rss_gib, "total_s": total, "pass": ok},
                      f, indent=2)
        print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
