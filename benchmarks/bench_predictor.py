"""Kernel regression and empirical NTKs, timed side by side with the plain alternatives.

Run from the repository root::

    python benchmarks/bench_predictor.py                # n = 2000 and 4000 (a few minutes on 2 cores)
    python benchmarks/bench_predictor.py --n 2000 3000  # other sizes
    python benchmarks/bench_predictor.py --quick        # seconds: tiny sizes, checks the numbers
    python benchmarks/bench_predictor.py --only ntk     # the empirical NTK part alone
    python benchmarks/bench_predictor.py --out bench.json

1. **Predictions** (float64, ``jax.enable_x64``): the mean predictor of the
   depth-3 NTK of ``n`` points on ``S^783`` with ``K = 10`` targets, on ``m =
   1000`` test points at 8 finite times, by ``GradientFlowPredictor.predict``
   against neural-tangents' ``predict.gradient_descent_mse`` (through
   ``ntkdepth.kernels.nt_bridge``; its learning rate is ours times ``y.size``):
   the first call (which factorizes the kernel: our in-place tridiagonal
   eigendecomposition, neural-tangents' ``eigh``), the median of the further
   calls (both given the test kernel as the same JAX array), and ``t = inf``
   on a fresh predictor (Cholesky in both). Beside them,
   the same prediction from the same eigenvectors through NumPy's BLAS
   (``numpy``) and contracted with ``np.einsum`` without BLAS (``einsum``):
   the predictor's two earlier implementations. The further calls of
   ntkdepth, neural-tangents and ``numpy`` are interleaved, round by round.
2. **Empirical NTK** (float32) of an ``ntkdepth.models.MLP`` (64 inputs, two
   hidden layers of 256, 10 outputs): ``empirical_ntk`` against a plain
   ``vmap(jacrev)`` Jacobian contraction, the earlier block-pair
   implementation (a Jacobian per pair of blocks) at the small n only, and
   ``mlp_ntk`` (the layer-structured kernel); ``empirical_ntk``,
   ``vmap(jacrev)`` and ``mlp_ntk`` interleaved, round by round, after a
   compiling call each.

Ratios are the other's time over ntkdepth's (above 1: ntkdepth is faster);
every call ends with ``jax.block_until_ready``. Timings on a shared machine are
noisy: compare the ratios of one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.data import sample_sphere
from ntkdepth.empirical import empirical_ntk, mlp_ntk
from ntkdepth.kernels import nt_bridge, relu_ntk
from ntkdepth.models import MLP, functional
from ntkdepth.runs import OutputFolder, environment
from ntkdepth.theory import GradientFlowPredictor

TIMES = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0])


def _progress(msg):
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _ready(x):
    return jax.block_until_ready(x)


def timed(label, fn, repeats):
    """``(first_call_seconds, median_seconds, last_output)``: the first call, then ``repeats`` more."""
    t0 = time.perf_counter()
    out = _ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        del out
        t0 = time.perf_counter()
        out = _ready(fn())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times) if times else first
    _progress(f"{label}: first {first:.3f} s, median {med:.4f} s")
    return first, med, out


def interleaved(label, fns, repeats):
    """Medians of ``repeats`` rounds in which every function of ``fns`` runs once, in turn.

    Interleaving keeps a shared machine's changing load from favouring one side.
    """
    times = {name: [] for name in fns}
    outs = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            outs.pop(name, None)
            t0 = time.perf_counter()
            outs[name] = _ready(fn())
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    _progress(f"{label}: " + ", ".join(f"{name} {t:.4f} s" for name, t in med.items()))
    return med, outs


def _numpy_predict(v, lam, y, k_test, times):
    """The same products through NumPy's BLAS (the predictor's earlier code), from the same eigenvectors."""
    n, k = y.shape
    p = -np.expm1(-times[:, None] * lam[None, :]) / lam[None, :]
    z = v.T @ y
    coeff = (v @ (p.T[:, :, None] * z[:, None, :]).reshape(n, -1)).reshape(n, -1, k).transpose(1, 0, 2)
    return (k_test @ coeff.transpose(1, 0, 2).reshape(n, -1)).reshape(-1, len(times), k).transpose(1, 0, 2)


def _einsum_predict(v, lam, y, k_test, times):
    """The earlier contraction: ``np.einsum`` of ``V diag(p_t) V^T Y``, then ``K(x, X)``, no BLAS."""
    p = -np.expm1(-times[:, None] * lam[None, :]) / lam[None, :]
    proj = v.T @ y
    coeff = np.einsum("ij,tj,jk->tik", v, p, proj)
    return np.einsum("mi,tik->tmk", k_test, coeff)


def bench_predict(n, m, repeats, rng):
    with jax.enable_x64(True):
        x = sample_sphere(rng, n, 784)
        x_test = sample_sphere(rng, m, 784)
        k = np.asarray(relu_ntk(x, depth=3))
        k_test = np.asarray(relu_ntk(x_test, x, depth=3))
        y = rng.normal(size=(n, 10))
        kj, yj, kt = jnp.asarray(k), jnp.asarray(y), jnp.asarray(k_test)
        ours = GradientFlowPredictor(k, y)
        f_ours, _, _ = timed(f"n={n} ntkdepth predict", lambda: ours.predict(TIMES, kt), 0)
        theirs = nt_bridge.predict.gradient_descent_mse(kj, yj, learning_rate=y.size)
        f_nt, _, _ = timed(f"n={n} neural-tangents predict", lambda: theirs(TIMES, None, 0.0, kt), 0)
        v, lam = np.array(ours.eigenvectors, order="F"), ours.eigenvalues
        med, outs = interleaved(f"n={n} predict, interleaved", {
            "ntkdepth": lambda: ours.predict(TIMES, kt),
            "neural_tangents": lambda: theirs(TIMES, None, 0.0, kt),
            "numpy": lambda: _numpy_predict(v, lam, y, k_test, TIMES),
        }, max(repeats, 5))
        t_ours, t_nt, t_numpy = med["ntkdepth"], med["neural_tangents"], med["numpy"]
        out_ours, out_nt = outs["ntkdepth"], outs["neural_tangents"]
        _, t_einsum, out_einsum = timed(f"n={n} einsum contraction", lambda: _einsum_predict(v, lam, y, k_test, TIMES),
                                        max(1, repeats // 2))
        inf_ours, _, out_inf = timed(f"n={n} ntkdepth t=inf (Cholesky)",
                                     lambda: GradientFlowPredictor(k, y).predict(np.inf, k_test), 0)
        inf_nt, _, out_inf_nt = timed(
            f"n={n} neural-tangents t=None (Cholesky)",
            lambda: nt_bridge.predict.gradient_descent_mse(kj, yj, learning_rate=y.size)(None, None, 0.0, kt), 0)
        scale = np.max(np.abs(out_nt))
        return {
            "n": n, "m": m, "K": 10, "times": len(TIMES),
            "first_call_s": {"ntkdepth": f_ours, "neural_tangents": f_nt},
            "predict_s": {"ntkdepth": t_ours, "neural_tangents": t_nt, "numpy_blas": t_numpy, "einsum": t_einsum},
            "t_inf_s": {"ntkdepth": inf_ours, "neural_tangents": inf_nt},
            "ratio_predict_nt_over_ours": t_nt / t_ours,
            "ratio_predict_numpy_blas_over_ours": t_numpy / t_ours,
            "ratio_predict_einsum_over_ours": t_einsum / t_ours,
            "ratio_first_call_nt_over_ours": f_nt / f_ours,
            "ratio_t_inf_nt_over_ours": inf_nt / inf_ours,
            "max_abs_diff_vs_nt_over_max": float(np.max(np.abs(out_ours - np.asarray(out_nt))) / scale),
            "max_abs_diff_vs_einsum_over_max": float(np.max(np.abs(out_ours - out_einsum)) / scale),
            "max_abs_diff_t_inf_over_max": float(
                np.max(np.abs(out_inf - np.asarray(out_inf_nt))) / np.max(np.abs(out_inf_nt))),
        }


def _old_empirical_ntk(apply_fn, params, x, block_size=16):
    """The earlier implementation: jacrev of the batched function, a row block's Jacobian per column block."""
    def jacobian(xb):
        return jax.jacrev(lambda p: apply_fn(p, xb))(params)

    def contract(j1, j2, k):
        pair = lambda a, b: jnp.einsum("ik...,jk...->ij", a, b, precision="highest")
        return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(pair, j1, j2))) / k

    @jax.jit
    def ntk(x):
        k = jax.eval_shape(apply_fn, params, x[:1]).shape[-1]
        b = x.reshape(-1, block_size, *x.shape[1:])
        cols = jax.lax.map(lambda xb2: jax.lax.map(lambda xb1: contract(jacobian(xb1), jacobian(xb2), k), b), b)
        return jnp.transpose(cols, (1, 2, 0, 3)).reshape(x.shape[0], x.shape[0])

    return ntk(x)


def _vmap_jacrev_ntk(apply_fn, params, x):
    """The plain alternative: every Jacobian at once by ``vmap(jacrev)``, contracted over parameters."""
    return _vmap_jacrev_fn(apply_fn)(params, x)


@functools.lru_cache(maxsize=4)
def _vmap_jacrev_fn(apply_fn):
    @jax.jit
    def ntk(params, x):
        jac = jax.vmap(jax.jacrev(lambda p, xi: apply_fn(p, xi[None])[0]), in_axes=(None, 0))(params, x)
        flat = jnp.concatenate([a.reshape(x.shape[0], -1) for a in jax.tree_util.tree_leaves(jac)], axis=1)
        return flat @ flat.T / jax.tree_util.tree_leaves(jac)[0].shape[1]

    return ntk


def bench_empirical(sizes, old_max, repeats, rng):
    net = MLP(64, [256, 256], 10, rngs=0)
    fm = functional(net)
    rows = []
    for n in sizes:
        x = jnp.asarray(rng.normal(size=(n, 64)), jnp.float32)
        fns = {"ours": lambda: empirical_ntk(net, x1=x), "plain": lambda: _vmap_jacrev_ntk(fm.output, fm.params, x),
               "mlp_ntk": lambda: mlp_ntk(net, x)}
        for fn in fns.values():
            _ready(fn())  # compiles
        med, outs = interleaved(f"n={n} empirical NTK, interleaved", fns, max(repeats, 5))
        (t_ours, k_ours), (t_plain, k_plain), (t_mlp, k_mlp) = ((med[k], outs[k]) for k in fns)
        row = {"n": n, "empirical_ntk_s": t_ours, "vmap_jacrev_s": t_plain, "mlp_ntk_s": t_mlp,
               "ratio_vmap_jacrev_over_ours": t_plain / t_ours, "ratio_ours_over_mlp_ntk": t_ours / t_mlp,
               "max_rel_diff_vs_mlp_ntk": float(np.max(np.abs(np.asarray(k_ours) - np.asarray(k_mlp)))
                                                / np.max(np.abs(np.asarray(k_mlp)))),
               "max_rel_diff_vs_vmap_jacrev": float(np.max(np.abs(np.asarray(k_ours) - np.asarray(k_plain)))
                                                    / np.max(np.abs(np.asarray(k_plain))))}
        if n <= old_max:
            _, t_old, _ = timed(f"n={n} earlier block-pair empirical_ntk",
                                lambda: _old_empirical_ntk(fm.output, fm.params, x), max(1, repeats // 2))
            row["earlier_s"] = t_old
            row["ratio_earlier_over_ours"] = t_old / t_ours
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 4000], help="training set sizes")
    parser.add_argument("--m", type=int, default=1000, help="test points")
    parser.add_argument("--ntk-n", type=int, nargs="+", default=[64, 256], help="empirical NTK sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a check in seconds")
    parser.add_argument("--only", choices=["predict", "ntk"], help="run one of the two parts")
    parser.add_argument("--out", help="write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.m, args.ntk_n, args.repeats = [200], 50, [16], 1
    rng = np.random.default_rng(0)
    predict = [] if args.only == "ntk" else [bench_predict(n, args.m, args.repeats, rng) for n in args.n]
    empirical = [] if args.only == "predict" else bench_empirical(
        args.ntk_n, old_max=min(args.ntk_n), repeats=args.repeats, rng=rng)

    print(f"\nPredictions: depth-3 NTK on S^783, K = 10, m = {args.m} test points, {len(TIMES)} times, "
          "float64 (ratios: other / ntkdepth)")
    print(f"{'n':>6} {'predict ours':>13} {'vs NT':>7} {'vs numpy':>9} {'vs einsum':>10} {'1st call ours':>14} {'vs NT':>7} "
          f"{'t=inf ours':>11} {'vs NT':>7} {'|diff| NT':>10}")
    for r in predict:
        print(f"{r['n']:>6} {r['predict_s']['ntkdepth']:>12.4f}s {r['ratio_predict_nt_over_ours']:>7.2f} "
              f"{r['ratio_predict_numpy_blas_over_ours']:>9.2f} {r['ratio_predict_einsum_over_ours']:>10.1f} {r['first_call_s']['ntkdepth']:>13.2f}s "
              f"{r['ratio_first_call_nt_over_ours']:>7.2f} {r['t_inf_s']['ntkdepth']:>10.2f}s "
              f"{r['ratio_t_inf_nt_over_ours']:>7.2f} {r['max_abs_diff_vs_nt_over_max']:>10.1e}")
    print("\nEmpirical NTK: MLP 64 -> 256 -> 256 -> 10, float32 (ratios: other / ntkdepth; mlp_ntk: ours / it)")
    print(f"{'n':>6} {'empirical_ntk':>14} {'vs vmap(jacrev)':>16} {'vs earlier':>11} {'ours/mlp_ntk':>13} "
          f"{'|diff| mlp_ntk':>15}")
    for r in empirical:
        old = f"{r['ratio_earlier_over_ours']:>11.1f}" if "earlier_s" in r else f"{'-':>11}"
        print(f"{r['n']:>6} {r['empirical_ntk_s']:>13.3f}s {r['ratio_vmap_jacrev_over_ours']:>16.2f} {old} "
              f"{r['ratio_ours_over_mlp_ntk']:>13.1f} {r['max_rel_diff_vs_mlp_ntk']:>15.1e}")
    result = {"predict": predict, "empirical_ntk": empirical, "environment": environment()}
    if args.out:
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        OutputFolder(out.parent).write_json(out.name, result)
    return result


if __name__ == "__main__":
    main()
