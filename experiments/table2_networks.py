"""Table 2's finite-width study: networks of increasing width against the NTK predictor on MNIST.

On the first subsets of ``table2`` (the same draws: same sizes, seed and
split), the normalized NTK's mean predictor at the table's depth chooses its
stopping time on validation (``ntkdepth.theory.regression``), and ReLU
networks of that depth at NTK parameterization (W_std^2 = 2, no bias) train
centered (f_theta - f_theta0) by full-batch gradient descent for the same
normalized-kernel time (``ntkdepth.training.kernel_time``): on the sphere of
radius sqrt(784), Theta^L = 2L Thetabar^L, so gradient flow on Theta^L for
the time t / (2L) is the normalized kernel's flow for the time t. Steps are
dt = step_fraction / lambda_max(Theta^L) (learning rate N dt for the
batch-mean loss); a t that is infinite or needs more than ``max_steps``
steps is replaced by the largest time of the grid within ``max_steps``
(reported). Rows "network n = ..." give the table's metrics (over subsets x
initializations) beside the kernel's at the same time; the relative distance
of the held-out outputs to the kernel predictor's measures the approach to
the limit, with a power law fitted in the width (about n^{-1/2} expected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.data.mnist import mnist_data_line
from ntkdepth.experiment_settings import RegressionSettings
from ntkdepth.plotting import width_axis
from ntkdepth.reporting import table, time_label
from ntkdepth.runs import RunDir
from ntkdepth.stats import fit_power_law, mean_sd
from ntkdepth.theory.regression import METRICS, evaluate, subset_regression
from ntkdepth.training.kernel_time import network_kernel_check, network_time, train_networks

NAME = "table2-networks"
DESCRIPTION = "Table 2's finite networks: centered ReLU networks of increasing width vs the NTK predictor on MNIST"


@dataclass(frozen=True)
class Config(RegressionSettings):
    subsets: int = setting(2, help="subsets that train networks: the first ones of table2's draws", min=1)
    depth: int = setting(10, help="depth L of the networks and of the NTK", min=2, max=100000)
    widths: list[int] = setting(
        [64, 256, 1024], help="hidden widths of the finite networks",
        min=1, max=1_000_000, distinct="exponents are fitted over distinct widths",
    )
    seeds: int = setting(1, help="networks (initializations) per subset and width", min=1)
    step_fraction: float = setting(
        0.9, help="gradient step of the networks as dt * lambda_max(Theta^L) (< 1: stable)",
        min=1e-6, max=1.0,
    )
    max_steps: int = setting(
        700, help="most gradient steps per network; a stopping time needing more is replaced by the "
                  "largest time of the grid within it", min=1,
    )


def run(config: Config, out: RunDir) -> dict:
    data = config.load()
    record = data.record(config.subsets)
    out.record_data("mnist", record)
    times = config.stopping_times()
    print(f"  networks: widths {config.widths} x {config.seeds} seed(s) on {config.subsets} subset(s), "
          f"depth {config.depth}", flush=True)
    kernels, nets = [], []
    for s in range(config.subsets):
        sub = data.draw(s)
        kernels.append(out.stage(f"ntk_subset{s}",
                                 lambda sub=sub: subset_regression(sub, [config.depth], times, config.depth)))

        def compute(s=s, sub=sub, chosen=int(kernels[-1]["chosen_time_index"][0])):
            check = network_kernel_check(sub.x_train, config.depth)
            k, steps, capped = network_time(check["lambda_max"], times, chosen, config.step_fraction, config.max_steps)
            # Every setting (one width's runs do not depend on the list of widths), and the time chosen.
            identity = out.settings(exclude=("widths",), subset=s, split=data.split, t=times[k], steps=steps)
            outputs, lr = train_networks(sub.x_train, sub.y_train, sub.x_test, config.depth, times[k], steps,
                                         config.widths, [1000 * s + j for j in range(config.seeds)],
                                         out.cache_dir(f"networks_subset{s}", identity))
            return {"time_index": k, "steps": steps, "capped": capped, "learning_rate": lr, "outputs": outputs, **check}

        nets.append(out.stage(f"networks_subset{s}", compute))
    return {**_results(config, data, times, kernels, nets), "data": record}


def _results(config, data, times, kernels, net) -> dict:
    """Metrics of the networks, the kernel's at the same times, and their output distances."""
    widths, n_net, n_seeds = list(config.widths), len(net), config.seeds
    tidx = np.array([int(n["time_index"]) for n in net])
    ref = np.stack([kernels[s]["test_outputs"][tidx[s]] for s in range(n_net)])  # [S, m, 10]
    outs = np.stack([n["outputs"] for n in net])  # [S, W, K, m, 10]
    ev = [evaluate(n["outputs"], kernels[s]["y_test"]) for s, n in enumerate(net)]
    metrics = {m: np.stack([e[m] for e in ev]) for m in METRICS}  # [S, W, K]
    kernel = {m: np.array([kernels[s][f"test_{m}"][0, tidx[s]] for s in range(n_net)]) for m in METRICS}  # [S]
    dist = (np.linalg.norm(outs - ref[:, None, None], axis=(-2, -1))
            / np.linalg.norm(ref, axis=(-2, -1))[:, None, None])  # [S, W, K]
    rows, per_subset = {"ntk_network_time": kernel}, {"ntk_network_time": kernel}
    for i, w in enumerate(widths):
        rows[f"network_n{w}"] = {m: metrics[m][:, i].ravel() for m in METRICS}
        per_subset[f"network_n{w}"] = {m: metrics[m][:, i].mean(axis=1) for m in METRICS}
    dist_ms = [mean_sd(dist[:, i].ravel()) for i in range(len(widths))]
    fit = None
    if len(widths) >= 2:
        pl = fit_power_law(widths, [d[0] for d in dist_ms])
        fit = {"exponent": pl.exponent, "prefactor": pl.prefactor, "stderr": pl.stderr}
    csv_rows = [
        [w, s, 1000 * s + j, times[tidx[s]], bool(net[s]["capped"]), int(net[s]["steps"]),
         float(net[s]["learning_rate"]), *[metrics[m][s, i, j] for m in METRICS],
         *[kernel[m][s] for m in METRICS], dist[s, i, j]]
        for i, w in enumerate(widths) for s in range(n_net) for j in range(n_seeds)
    ]
    table_rows = [[method, config.depth, m, *mean_sd(per[m]), *per_subset[method][m]]
                  for method, per in rows.items() for m in METRICS]
    info = {
        "widths": widths, "depth": config.depth, "subsets": n_net, "seeds_per_subset": n_seeds,
        "step_fraction": config.step_fraction, "max_steps": config.max_steps,
        "t": [times[k] for k in tidx],
        "t_chosen_on_validation": [times[int(kernels[s]["chosen_time_index"][0])] for s in range(n_net)],
        "capped": [bool(n["capped"]) for n in net],
        "steps": [int(n["steps"]) for n in net], "learning_rate": [float(n["learning_rate"]) for n in net],
        "lambda_max_thetabar": [float(n["lambda_max"]) for n in net],
        "theta_diagonal_max_error": max(float(n["diag_error"]) for n in net),
        "theta_over_2L_thetabar_max_error": max(float(n["ratio_error"]) for n in net),
        # [W] each, as widths: over subsets x initializations.
        "metrics": {m: dict(zip(("mean", "std"), np.array([mean_sd(metrics[m][:, i].ravel())
                                                            for i in range(len(widths))]).T)) for m in METRICS},
        "metrics_per_run": metrics,
        "kernel_at_same_time": {m: dict(zip(("mean", "std"), mean_sd(kernel[m]))) for m in METRICS},
        "kernel_at_same_time_per_subset": kernel,
        "relative_output_distance": [{"mean": a, "std": b} for a, b in dist_ms],
        "relative_output_distance_per_run": dist,
        "fit": fit,
    }
    return {
        "data_dir": data.directory, "split": data.split, "n_train": config.n_train, "depth": config.depth,
        "times": times, "networks": info,
        "table": {method: {m: dict(zip(("mean", "std"), mean_sd(v)), per_subset_and_seed=v) for m, v in per.items()}
                  for method, per in rows.items()},
        "tables": {
            "table2_networks.csv": table(["method", "depth", "metric", "mean", "std_over_subsets_and_seeds",
                                          *[f"subset{s}" for s in range(n_net)]], table_rows),
            "networks.csv": table(["width", "subset", "seed", "t", "capped", "steps", "learning_rate", *METRICS,
                                   *[f"kernel_{m}" for m in METRICS], "relative_output_distance"], csv_rows),
        },
    }


def report(config: Config, results: dict, out) -> dict:
    info = results["networks"]
    _plot(out, config, info)
    out.write_summary(_summary(config, results))
    result = {"network output distance to the kernel": ", ".join(
        f"{d['mean']:.3g} (n = {w})" for w, d in zip(info["widths"], info["relative_output_distance"]))}
    if info["fit"] is not None:
        result["fitted exponent in width"] = _fit_text(info["fit"], "{:.2f}")
    result["network figure"] = str(out.file("table2_networks.png"))
    return result


def _fit_text(fit: dict, spec: str) -> str:
    stderr = float(fit["stderr"])
    return spec.format(fit["exponent"]) + (f" +- {stderr:.2f}" if np.isfinite(stderr) else "")


def _times_text(ts) -> str:
    """One time if every subset used it, else the list per subset."""
    ts = [float(t) for t in ts]
    if len(set(ts)) == 1:
        return time_label(ts[0])
    return ", ".join(time_label(t) for t in ts) + " (per subset)"


def _plot(out, config, info):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = np.asarray(info["widths"], dtype=np.float64)
    metrics = {m: np.asarray(v, dtype=np.float64) for m, v in info["metrics_per_run"].items()}  # [S, W, K]
    fig, grid = plt.subplots(2, 2, figsize=(11.5, 8.6))
    grid[1, 1].set_visible(False)
    axes = grid.ravel()[:3]
    for ax, m, label in ((axes[0], "accuracy", "test accuracy"), (axes[1], "mse", "test MSE (outputs vs one-hot)")):
        per = metrics[m].transpose(1, 0, 2).reshape(len(widths), -1)  # [W, S K]
        mean = per.mean(axis=1)
        sd = per.std(axis=1, ddof=1) if per.shape[1] > 1 else np.zeros_like(mean)
        ax.errorbar(widths, mean, yerr=sd, fmt="o-", capsize=3, label="finite networks (mean, s.d.)")
        k_mean, k_sd = mean_sd(np.asarray(info["kernel_at_same_time_per_subset"][m], dtype=np.float64))
        ax.axhline(k_mean, color="k", ls="--", label="kernel predictor, same t")
        if k_sd > 0:
            ax.axhspan(k_mean - k_sd, k_mean + k_sd, color="k", alpha=0.08)
        ax.set_title(label)
        ax.set_ylabel(label.split(" (")[0])
    ax = axes[2]
    per = np.asarray(info["relative_output_distance_per_run"], dtype=np.float64).transpose(1, 0, 2).reshape(len(widths), -1)
    for i, w in enumerate(widths):
        ax.plot(np.full(per.shape[1], w), per[i], ".", color="0.6", ms=4)
    ax.plot(widths, per.mean(axis=1), "o-", label=r"mean over subsets $\times$ seeds (grey: each)")
    if info["fit"] is not None:
        f = info["fit"]
        grid = np.geomspace(widths.min(), widths.max(), 50)
        ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "r--", label="fit: $n^{" + _fit_text(f, "{:.2f}") + "}$")
    ax.set_yscale("log")
    ax.set_title("distance to the kernel predictor on held-out images\n(the kernel predictor itself: 0)")
    ax.set_ylabel(r"$\|f_{\rm net} - \mu_t\| \,/\, \|\mu_t\|$")
    for ax in axes:
        width_axis(ax, widths)
        ax.set_xlabel("width $n$")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Centered ReLU networks of depth {config.depth} (NTK parameterization) against the NTK predictor,\n"
        f"{config.n_train} training images, $t$ = {_times_text(info['t'])}"
        + (" (capped by max_steps)" if any(info["capped"]) else " (chosen on validation)"),
    )
    fig.tight_layout()
    out.save_figure(fig, "table2_networks.png")
    plt.close(fig)


def _cell(ms: dict, i: int | None = None) -> str:
    """``mean (std)``; with ``i``, of the ``i``-th width."""
    mean, std = (ms[k] if i is None else ms[k][i] for k in ("mean", "std"))
    return f"{mean:.4f} ({std:.4f})"


def _summary(config, results) -> str:
    info, table_ = results["networks"], results["table"]
    widths, m = info["widths"], info["metrics"]
    t_text = _times_text(info["t"])
    n_capped = sum(info["capped"])
    names = {"ntk_network_time": f"NTK at the networks' time (t = {t_text})",
             **{f"network_n{w}": f"network n = {w}, same t (gradient descent)" for w in widths}}
    lines = [
        "# Table 2, finite networks: centered ReLU networks of increasing width against the NTK predictor",
        "",
        f"MNIST images ({results['split']} split, {results['data_dir']}) on S^783: the first {info['subsets']} "
        f"subset(s) of table2's draws (seed {config.seed}), each of {config.n_train} training, {config.n_val} "
        f"validation and {config.n_test} held-out images. The normalized NTK's mean predictor at depth "
        f"{config.depth} chooses its stopping time on validation; the networks train for the same time.",
        "",
        mnist_data_line(results.get("data")),
        "",
        "| method | MSE | error rate | accuracy | macro F1 |",
        "|---|---|---|---|---|",
        *[f"| {names[method]} | " + " | ".join(_cell(per[k]) for k in METRICS) + " |" for method, per in table_.items()],
        "",
        f"Finite networks: ReLU networks of depth {config.depth} at NTK parameterization (W_std^2 = 2, no "
        f"bias), {info['seeds_per_subset']} initialization(s) per width on each of the first "
        f"{info['subsets']} subset(s), see the images on the sphere of radius sqrt(784), where "
        f"Theta^L(x, x) = 2L = {2 * config.depth} (largest deviation {info['theta_diagonal_max_error']:.1e}) "
        f"and Theta^L = 2L Thetabar^L (largest deviation {info['theta_over_2L_thetabar_max_error']:.1e}). "
        "They train centered (f_theta - f_theta0) by full-batch gradient descent on the MSE for the "
        f"normalized-kernel time t = {t_text} (Theta^L time t / {2 * config.depth}), in "
        f"{', '.join(str(k) for k in info['steps'])} steps of dt * lambda_max(Theta^L) = {config.step_fraction:g}. "
        + (f"The validation-chosen times ({', '.join(time_label(float(t)) for t in info['t_chosen_on_validation'])}) "
           f"need more than max_steps = {config.max_steps} steps on {n_capped} of {info['subsets']} subset(s) "
           f"(lambda_max(Thetabar^{config.depth}) about {np.mean(info['lambda_max_thetabar']):.3g}), so those "
           "networks, and the kernel row they are compared with, stop at the largest time of the grid within the cap."
           if n_capped else "These are the validation-chosen times.")
        + " Network rows: mean (s.d.) over subsets x initializations.",
        "",
        "| width n | accuracy | MSE | macro F1 | relative distance of outputs to the kernel predictor |",
        "|---|---|---|---|---|",
        *[f"| {w} | {_cell(m['accuracy'], i)} | {_cell(m['mse'], i)} | {_cell(m['macro_f1'], i)} "
          f"| {_cell(info['relative_output_distance'][i])} |" for i, w in enumerate(widths)],
    ]
    kt = info["kernel_at_same_time"]
    lines.append(f"| kernel (infinite width), same t | {_cell(kt['accuracy'])} | {_cell(kt['mse'])} "
                 f"| {_cell(kt['macro_f1'])} | 0 |")
    acc, k_acc = m["accuracy"], kt["accuracy"]["mean"]
    d0, d1 = info["relative_output_distance"][0]["mean"], info["relative_output_distance"][-1]["mean"]
    text = (
        f"Finding (finite networks): trained for the same time t = {t_text} on the same images, "
        f"networks of width {widths[0]} reach accuracy {acc['mean'][0]:.4f} "
        f"({acc['mean'][0] - k_acc:+.4f} from the kernel's {k_acc:.4f}) and of width {widths[-1]} "
        f"{acc['mean'][-1]:.4f} ({acc['mean'][-1] - k_acc:+.4f}); their held-out outputs "
        f"differ from the kernel predictor's by {d0:.3g} and {d1:.3g} (relative, mean over runs)"
    )
    if info["fit"] is not None:
        text += f", a distance falling as n^({_fit_text(info['fit'], '{:.2f}')}) (n^-0.5 expected)"
    lines += ["", text + ".", "",
              "Files: table2_networks.csv (metrics of each row; subset columns: seed means per subset), networks.csv "
              "(every network: time, steps, metrics, the kernel's at the same time, output distance), "
              "table2_networks.png (metrics and output distance against width), results.json."]
    return "\n".join(lines)
