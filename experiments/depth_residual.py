"""Residual networks against plain ones at depth: does the kernel keep its inputs, and does kernel
regression keep its accuracy (docs/residual.md)?

ReLU, ``W_std^2 = 2``, no bias. Networks: the plain one, residual ones with fixed branch scales
``alpha`` and with ``alpha = a / sqrt(L)``. (1) For points on the sphere and MNIST images, the exact
normalized NTK of the stream at depths up to ``max_depth``: the spread of ``Thetabar^L`` over
distinct pairs (0 once the kernel forgets its inputs) and ``lambda_min(Thetabar^L)``, beside the
limits of ``ntkdepth.theory.residual``. (2) Table 2's MNIST kernel regression (the same subsets,
metrics and validation-chosen stopping time as ``table2``) for every network at every depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.data.mnist import mnist_data_line
from ntkdepth.experiment_settings import RegressionSettings
from ntkdepth.plotting import depth_axis, pyplot, save_figure
from ntkdepth.reporting import as_numbers, claim, table
from ntkdepth.runs import RunDir

NAME = "depth-residual"
DESCRIPTION = "plain against residual networks at depth: Thetabar and lambda_min to depth 1e4, MNIST regression"
DATASETS = ("sphere", "mnist")


@dataclass(frozen=True)
class Config(RegressionSettings):
    alphas: list[float] = setting([0.5], help="fixed branch scales alpha", min=1e-3, max=100.0, min_len=0)
    scaled: list[float] = setting([1.0], help="a of the branch scales alpha = a / sqrt(L)", min=1e-3, max=100.0,
                                  min_len=0)
    depths: list[int] = setting([1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000], min=1, max=100000,
                                help="depths of the MNIST regression (the table's depth is added)")
    max_depth: int = setting(10000, help="the deepest network of the kernels against depth", min=2, max=1_000_000)
    n_depths: int = setting(30, help="depths recorded, log-spaced in 1..max_depth", min=3, max=400)
    n_points: int = setting(60, help="inputs of the kernels against depth (sphere; MNIST: the first training "
                                     "images of subset 0)", min=3, max=2000)
    dim: int = setting(16, help="dimension of the sphere's points", min=2, max=10000)

    def check(self):
        super().check()
        if self.n_points > self.n_train:
            raise ValueError(f"n_points = {self.n_points} exceeds n_train = {self.n_train}: the MNIST points are "
                             "training images of subset 0")

    def networks(self) -> dict[str, object]:
        """``{label: residual}``: the plain network, then each fixed alpha, then each ``a/sqrt(L)``."""
        nets = {"plain": None}
        nets.update({f"alpha = {a:g}": float(a) for a in self.alphas})
        nets.update({f"alpha = {a:g}/sqrt(L)": f"{a:g}/sqrt(L)" for a in self.scaled})
        return nets


def _key(label: str) -> str:
    """A network's label as a file name: ``alpha = 1/sqrt(L)`` -> ``alpha_1_sqrt_L``."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", label).strip("_")


def _grid(config) -> list[int]:
    return np.unique(np.round(np.geomspace(1, config.max_depth, config.n_depths)).astype(int)).tolist()


def _kernel_stats(k: np.ndarray) -> dict:
    """Per depth of ``k [G, n, n]``: mean and spread (s.d.) of the off-diagonal entries, ``lambda_min``."""
    iu = np.triu_indices(k.shape[-1], 1)
    off = k[:, iu[0], iu[1]]
    return {"mean": off.mean(1), "spread": off.std(1), "lambda_min": np.linalg.eigvalsh(k)[:, 0]}


def run(config: Config, out: RunDir) -> dict:
    from ntkdepth.data import sample_sphere
    from ntkdepth.kernels import residual_alpha
    from ntkdepth.theory.regression import METRICS, depth_kernel, subset_regression
    from ntkdepth.theory.residual import residual_limit_matrix

    nets = config.networks()
    data = config.load()
    record = data.record(config.subsets)
    out.record_data("mnist", record)
    points = {"sphere": sample_sphere(np.random.default_rng([config.seed, 31]), config.n_points, config.dim),
              "mnist": data.draw(0).x_train[: config.n_points]}
    grid = _grid(config)
    kernels, limits = {}, {}
    for ds, x in points.items():
        for label, res in nets.items():
            st = out.stage(f"kernels_{ds}_{_key(label)}", lambda x=x, res=res: _stage_kernels(depth_kernel(res), x, grid))
            kernels.setdefault(ds, {})[label] = st
            if isinstance(res, str):  # alpha = a/sqrt(L): the ODE's limit (docs/residual.md)
                a = residual_alpha(res, 1)
                limits.setdefault(ds, {})[label] = {k: float(v[0]) for k, v in
                                                    _kernel_stats(residual_limit_matrix(x, a)[None]).items()}
    depths = sorted(set(config.depths) | {config.depth})
    times = config.stopping_times()
    d_table = depths.index(config.depth)
    regression = {}
    for label, res in nets.items():
        stages = [out.stage(f"regression_{_key(label)}_subset{s}", lambda s=s, res=res: subset_regression(
            data.draw(s), depths, times, config.depth, kernel=depth_kernel(res))) for s in range(config.subsets)]
        chosen = np.stack([st["chosen_time_index"] for st in stages])  # [S, D]
        early = {m: np.take_along_axis(np.stack([st[f"test_{m}"] for st in stages]), chosen[:, :, None], 2)[:, :, 0]
                 for m in METRICS}  # [S, D]
        regression[label] = {"early_stopping": early, "t_inf_accuracy": np.stack([st["test_accuracy"][:, -1]
                                                                                  for st in stages]),
                             "lambda_min": np.stack([st["lambda_min"] for st in stages])}
    kernel_rows = [[ds, label, L, *(float(st[k][i]) for k in ("mean", "spread", "lambda_min"))]
                   for ds, by in kernels.items() for label, st in by.items() for i, L in enumerate(grid)]
    acc_rows = [[label, L, *(float(np.mean(r["early_stopping"][m][:, d])) for m in METRICS),
                 float(np.std(r["early_stopping"]["accuracy"][:, d])), float(np.mean(r["lambda_min"][:, d]))]
                for label, r in regression.items() for d, L in enumerate(depths)]
    return {
        "networks": {k: v for k, v in nets.items()}, "grid": grid, "kernels": kernels, "limits": limits,
        "depths": depths, "times": times, "table_depth": config.depth, "d_table": d_table, "regression": regression,
        "data": record, "split": data.split, "n_points": {ds: len(x) for ds, x in points.items()},
        "tables": {"depth_residual_kernels.csv": table(["dataset", "network", "depth", "mean_thetabar",
                                                        "spread_thetabar", "lambda_min"], kernel_rows),
                   "depth_residual_regression.csv": table(["network", "depth", *[f"test_{m}" for m in METRICS],
                                                           "accuracy_sd_over_subsets", "lambda_min"], acc_rows)},
    }


def _stage_kernels(kernel, x, grid) -> dict:
    import jax

    with jax.enable_x64(True):
        k = kernel(x, x, grid)
    return _kernel_stats(np.asarray(k, np.float64))


def report(config: Config, results: dict, out) -> dict:
    results = as_numbers(results)
    _plot_kernels(out, config, results)
    _plot_regression(out, config, results)
    out.write_summary(_summary(config, results))
    deepest = results["depths"][-1]
    return {f"{label}: accuracy at depth {deepest}": round(float(np.mean(np.asarray(
        r["early_stopping"]["accuracy"], float)[:, -1])), 4) for label, r in results["regression"].items()}


def _colors(labels):
    return {label: f"C{i}" for i, label in enumerate(labels)}


def _plot_kernels(out, config, results):
    plt = pyplot()
    grid = np.array(results["grid"], float)
    colors = _colors(results["networks"])
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 8.4))
    for row, ds in enumerate(DATASETS):
        ax_s, ax_l = axes[row]
        for label, st in results["kernels"][ds].items():
            c = colors[label]
            ax_s.plot(grid, np.maximum(np.asarray(st["spread"], float), 1e-12), "-", color=c, label=label)
            ax_l.plot(grid, np.asarray(st["lambda_min"], float), "-", color=c, label=label)
            lim = results["limits"].get(ds, {}).get(label)
            if lim:
                ax_s.axhline(lim["spread"], color=c, ls=":", lw=1.2)
                ax_l.axhline(lim["lambda_min"], color=c, ls=":", lw=1.2)
        ax_l.axhline(0.75, color="0.4", ls="--", lw=1, label=r"$3/4$: the plain limit's $\lambda_{\min}$")
        name = "sphere" if ds == "sphere" else "MNIST"
        n = results["n_points"][ds]
        ax_s.set(yscale="log", xlabel="depth $L$", ylabel=r"s.d. of $\bar\Theta^L(x, x')$ over pairs",
                 title=f"{name} ({n} points): how much the kernel tells inputs apart")
        ax_l.set(xlabel="depth $L$", ylabel=r"$\lambda_{\min}(\bar\Theta^L)$", title=f"{name}: smallest eigenvalue")
        for ax in (ax_s, ax_l):
            depth_axis(ax, grid)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="0.3", ls=":", lw=1.2))
    labels.append(r"dotted: the limit of $\alpha = a/\sqrt{L}$ (ODE)")
    save_figure(out, fig, "depth_residual_kernels.png", "Plain and residual ReLU networks: the normalized NTK "
                "against depth", legend=(handles, labels, 3))


def _plot_regression(out, config, results):
    plt = pyplot()
    depths = np.array(results["depths"], float)
    colors = _colors(results["networks"])
    fig, (ax, ax_l) = plt.subplots(1, 2, figsize=(11.0, 4.6))
    for label, r in results["regression"].items():
        acc = np.asarray(r["early_stopping"]["accuracy"], float)  # [S, D]
        ax.errorbar(depths, acc.mean(0), yerr=acc.std(0), fmt="o-", ms=4, capsize=3, color=colors[label], label=label)
        lam = np.asarray(r["lambda_min"], float).mean(0)
        # A singular kernel (depth 1 with more images than pixels) has no place on a log axis.
        ax_l.plot(depths, np.where(lam > 1e-8, lam, np.nan), "o-", ms=4, color=colors[label], label=label)
    ax.set(xlabel="depth $L$", ylabel="test accuracy (early stopping)",
           title=f"MNIST kernel regression: {config.n_train} training images")
    ax_l.set(yscale="log", xlabel="depth $L$", ylabel=r"$\lambda_{\min}(\bar\Theta^L(X, X))$",
             title="the training kernel's smallest eigenvalue\n(not drawn where below $10^{-8}$: singular)")
    for a in (ax, ax_l):
        depth_axis(a, depths)
        a.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    save_figure(out, fig, "depth_residual_mnist.png",
                f"Table 2 for residual networks: mean $\\pm$ s.d. over {config.subsets} subset"
                f"{'s' if config.subsets > 1 else ''}", legend=(handles, labels, len(labels)))


def _summary(config, results) -> str:
    grid, depths = results["grid"], results["depths"]
    L, Ld = grid[-1], depths[-1]
    nets = list(results["networks"])
    lines = [
        "# Plain and residual networks at depth",
        "",
        f"ReLU, W_std^2 = 2, no bias; networks: {', '.join(nets)} (docs/residual.md). Kernels: the exact normalized "
        f"NTK Thetabar^L (float64) of {results['n_points']['sphere']} points uniform on S^{config.dim - 1} and "
        f"{results['n_points']['mnist']} MNIST images at {len(grid)} depths up to {L:,}. Regression: table2's mean "
        f"predictor on {config.subsets} MNIST subset{'s' if config.subsets > 1 else ''} of {config.n_train} training, {config.n_val} validation and "
        f"{config.n_test} held-out images, stopped at the validation-chosen time.",
        "",
        mnist_data_line(results.get("data")),
        "",
        f"| dataset | network | s.d. of Thetabar over pairs, L = 1 | L = {L:,} | its limit | lambda_min, L = {L:,} | its limit |",
        "|---|---|---|---|---|---|---|",
    ]
    findings = []
    for ds in DATASETS:
        for label, st in results["kernels"][ds].items():
            lim = results["limits"].get(ds, {}).get(label)
            plain_like = lim is None
            lim_spread, lim_lam = (0.0, 0.75) if plain_like else (lim["spread"], lim["lambda_min"])
            sp, lam = st["spread"], st["lambda_min"]
            lines.append(f"| {ds} | {label} | {sp[0]:.3g} | {sp[-1]:.3g} | {lim_spread:.3g} | {lam[-1]:.3g} | {lim_lam:.3g} |")
            if plain_like:
                findings.append(f"- {ds}, {label}: the spread of Thetabar over pairs falls from {sp[0]:.3g} to "
                                f"{sp[-1]:.3g} at L = {L:,} ({sp[-1] / sp[0]:.2%} of it), "
                                + claim(sp[-1] < 0.1 * sp[0], "forgetting the inputs as the theory's limit 1/4 "
                                        "says", "still well above the limit's 0") + f"; lambda_min is {lam[-1]:.3g} "
                                f"(limit 3/4).")
            else:
                rel = abs(sp[-1] - lim_spread) / lim_spread
                findings.append(f"- {ds}, {label}: the spread at L = {L:,} is {sp[-1]:.3g} against the ODE limit's "
                                f"{lim_spread:.3g} ({rel:.2%} apart) and lambda_min {lam[-1]:.3g} against "
                                f"{lim_lam:.3g}: " + claim(sp[-1] > 0.2 * sp[0], "the kernel keeps its inputs.",
                                                           "the kernel loses most of its spread."))
    reg = results["regression"]
    acc = {label: np.asarray(r["early_stopping"]["accuracy"], float) for label, r in reg.items()}  # [S, D]
    lines += ["", "Test accuracy (early stopping; mean over subsets) against depth:", "",
              "| network | " + " | ".join(f"L = {d}" for d in depths) + " |",
              "|---|" + "---|" * len(depths),
              *[f"| {label} | " + " | ".join(f"{v:.3f}" for v in a.mean(0)) + " |" for label, a in acc.items()],
              "", "## Findings", "", *findings]
    best = {label: float(a.mean(0).max()) for label, a in acc.items()}
    for label, a in acc.items():
        m = a.mean(0)
        kept = m[-1] >= best[label] - 0.02
        lines.append(f"- MNIST regression, {label}: accuracy {m[0]:.3f} at depth {depths[0]}, best {best[label]:.3f} "
                     f"(depth {depths[int(np.argmax(m))]}), {m[-1]:.3f} at depth {Ld} (s.d. {a[:, -1].std():.3f} over "
                     "subsets): " + claim(kept, "depth keeps the accuracy.",
                                          f"depth costs {best[label] - m[-1]:.3f} of it."))
    plain = acc["plain"].mean(0)[-1]
    ranked = sorted(acc, key=lambda k: -acc[k].mean(0)[-1])
    lines.append(f"- At depth {Ld} the networks rank {', '.join(f'{k} ({acc[k].mean(0)[-1]:.3f})' for k in ranked)}; "
                 + claim(ranked[0] != "plain", f"the best keeps {acc[ranked[0]].mean(0)[-1] - plain:+.3f} over the "
                         "plain network.", "the plain network is not beaten."))
    lines += ["", "Files: depth_residual_kernels.png, depth_residual_mnist.png, depth_residual_kernels.csv, "
              "depth_residual_regression.csv, results.json."]
    return "\n".join(lines)
