"""The kernel functions of this checkout against those of another git revision, timed in one process.

Run from the repository root::

    python benchmarks/bench_revisions.py --rev HEAD~1           # the default cases
    python benchmarks/bench_revisions.py --rev main --case trace100-f64 --repeats 9

The package as it is at ``--rev`` is extracted (``git archive``) into a
temporary folder under the name ``ntkdepth_rev`` and imported beside the
working tree's ``ntkdepth``. Each case then runs both versions in turn, round
by round (a compiling call first), so that a shared machine's changing load
falls on both alike; it prints the medians and ``rev / here`` (above 1: this
checkout is faster) and the largest difference between the two results
relative to the largest entry. Cases (inputs ``x ~ N(0, 1)``, ``d = 784``,
``W_std = sqrt(2)``):

- ``trace100-f64`` / ``-f32``: ``relu_kernel_trace(x, depth=100, get=("ntk",))``,
  n = 1000, every depth (the layer loop).
- ``bias10-f64`` / ``-f32``: ``relu_ntk(x, depth=10, b_std=0.1)``, n = 2000
  (inputs of unequal norms: the layer loop).
- ``interp10-f64`` / ``-f32``, ``interp100-f64`` / ``-f32``: ``relu_ntk(x,
  depth=L)`` without bias, n = 2000 (the interpolated path).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

CASES = {
    "trace100-f64": dict(kind="trace", n=1000, depth=100, dtype="float64"),
    "trace100-f32": dict(kind="trace", n=1000, depth=100, dtype="float32"),
    "bias10-f64": dict(kind="bias", n=2000, depth=10, dtype="float64"),
    "bias10-f32": dict(kind="bias", n=2000, depth=10, dtype="float32"),
    "interp10-f64": dict(kind="one", n=2000, depth=10, dtype="float64"),
    "interp10-f32": dict(kind="one", n=2000, depth=10, dtype="float32"),
    "interp100-f64": dict(kind="one", n=2000, depth=100, dtype="float64"),
    "interp100-f32": dict(kind="one", n=2000, depth=100, dtype="float32"),
}


def load_revision(rev: str, root: str):
    """``ntkdepth`` as it is at ``rev``, importable as ``ntkdepth_rev``."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True)
    archive = subprocess.run(["git", "-C", top.stdout.strip(), "archive", rev, "ntkdepth"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", root], input=archive.stdout, check=True)
    os.rename(os.path.join(root, "ntkdepth"), os.path.join(root, "ntkdepth_rev"))
    for folder, _, files in os.walk(os.path.join(root, "ntkdepth_rev")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    text = f.read()
                text = re.sub(r"^(\s*(?:from|import)\s+)ntkdepth\b", r"\1ntkdepth_rev", text, flags=re.M)
                with open(path, "w") as f:
                    f.write(text)
    sys.path.insert(0, root)
    return importlib.import_module("ntkdepth_rev")


def make_call(pkg, case, x):
    kernels = importlib.import_module(pkg.__name__ + ".kernels")
    if case["kind"] == "trace":
        return lambda: kernels.relu_kernel_trace(x, depth=case["depth"], get=("ntk",)).ntk
    if case["kind"] == "bias":
        return lambda: kernels.relu_ntk(x, depth=case["depth"], b_std=0.1)
    return lambda: kernels.relu_ntk(x, depth=case["depth"])


def run_case(name, case, here, rev, repeats, rng):
    with jax.enable_x64(case["dtype"] == "float64"):
        x = jax.numpy.asarray(rng.normal(size=(case["n"], 784)), case["dtype"])
        calls = {"here": make_call(here, case, x), "rev": make_call(rev, case, x)}
        outs = {k: np.asarray(jax.block_until_ready(f())) for k, f in calls.items()}
        times = {k: [] for k in calls}
        for _ in range(repeats):
            for k, f in calls.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f())
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = float(np.max(np.abs(outs["here"] - outs["rev"])) / np.max(np.abs(outs["rev"])))
    return dict(case=name, here_s=med["here"], rev_s=med["rev"], ratio=med["rev"] / med["here"], max_rel_diff=diff)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the git revision to compare with")
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import ntkdepth

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        rev = load_revision(args.rev, root)
        print(f"# this checkout against {args.rev}: median of {args.repeats} interleaved rounds; "
              f"load average {os.getloadavg()[0]:.2f} at start")
        print(f"{'case':>14} {'here [s]':>10} {'rev [s]':>10} {'rev/here':>9} {'max rel diff':>13}")
        for name in args.case:
            r = run_case(name, CASES[name], ntkdepth, rev, args.repeats, rng)
            print(f"{name:>14} {r['here_s']:>10.4f} {r['rev_s']:>10.4f} {r['ratio']:>9.2f} "
                  f"{r['max_rel_diff']:>13.1e}", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
