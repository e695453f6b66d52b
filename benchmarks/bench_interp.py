"""The interpolated kernel path against the layer loop, neural-tangents and the Gram matrix.

Run from the repository root::

    python benchmarks/bench_interp.py                 # n = 2000, L = 10, 100, 1000
    python benchmarks/bench_interp.py --n 4000 --depths 10 100

Bias-free, ``W_std^2 = 2``, float64, inputs ``x ~ N(0, 1)`` of dimension 784,
the kernel of ``x`` with itself, one depth, NTK alone (``relu_ntk``) and NNGP
with NTK. Each time is the median of ``--repeats`` warm calls (the first call,
which compiles and tabulates, is reported apart). Ratios are printed side by
side from one run: above 1 means the interpolated path is faster; "/ Gram" is
the kernel's time over that of ``x @ x.T`` (jitted).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np


def timed(fn, repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-nt", action="store_true", help="skip neural-tangents")
    parser.add_argument("--loop-max-depth", type=int, default=100,
                        help="time the layer loop only up to this depth")
    args = parser.parse_args()

    with jax.enable_x64(True):
        from ntkdepth.kernels import relu_ntk, relu_kernel_trace, stax_mlp

        x = jax.numpy.asarray(np.random.default_rng(0).normal(size=(args.n, 784)))
        gram = jax.jit(lambda a: a @ a.T)
        _, t_gram = timed(lambda: gram(x), args.repeats)
        print(f"n = {args.n}, d = 784, float64, bias-free; Gram matrix x @ x.T: {t_gram:.3f} s")
        header = ("L", "fields", "interp s", "first s", "Gram s", "/ Gram", "loop s", "loop/interp",
                  "nt s", "nt/interp", "max rel diff")
        print(" | ".join(header))
        for depth in args.depths:
            for fields in ("ntk", ("nngp", "ntk")):
                def interp():
                    return relu_kernel_trace(x, depth=depth, layers=[depth], get=fields,
                                             method="interp")

                def loop():
                    return relu_kernel_trace(x, depth=depth, layers=[depth], get=fields,
                                             method="loop")

                first, t_int = timed(interp, args.repeats)
                _, t_gram = timed(lambda: gram(x), args.repeats)
                row = [str(depth), "+".join(fields) if isinstance(fields, tuple) else fields,
                       f"{t_int:.3f}", f"{first:.2f}", f"{t_gram:.3f}", f"{t_int / t_gram:.2f}"]
                if depth <= args.loop_max_depth:
                    _, t_loop = timed(loop, args.repeats)
                    a, b = np.asarray(interp().ntk[0]), np.asarray(loop().ntk[0])
                    diff = float(np.max(np.abs(a - b) / np.abs(b)))
                    row += [f"{t_loop:.3f}", f"{t_loop / t_int:.1f}"]
                else:
                    diff = float("nan")
                    row += ["-", "-"]
                if not args.no_nt and depth <= 100:
                    _, _, kernel_fn = stax_mlp(depth, 512, W_std=2**0.5, b_std=0.0)
                    nt_fn = jax.jit(kernel_fn, static_argnames=("get",))
                    _, t_nt = timed(lambda: nt_fn(x, None, get=fields), args.repeats)
                    row += [f"{t_nt:.3f}", f"{t_nt / t_int:.1f}"]
                else:
                    row += ["-", "-"]
                row.append(f"{diff:.1e}")
                print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
