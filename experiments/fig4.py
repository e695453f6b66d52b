"""Figures 4 and 5: how rho_l, Sigmadot^l and Thetabar^l evolve with depth (paper, section 6.4).

n points and one more, x*, of a dataset: uniform on the sphere S^{d-1}
(Figure 4), uniform in the cube [-1, 1]^d and projected canonically onto the
sphere, or MNIST images drawn uniformly without replacement, flattened and
normalized onto S^783 (Figure 5; ``fig5`` runs this script on MNIST). For
every pair inside the data and every pair (x_i, x*), the correlation rho_l,
the derivative kernel Sigmadot^l and the normalized NTK Thetabar^l
(Definition 4) are traced over depths 1..L from one pass of the kernel
recursion. With W_std^2 = 2 and no bias, rho_l -> 1 with
1 - rho_l ~ 9 pi^2 / (2 l^2) (Lemma 1), Sigmadot^l -> 1 and Thetabar^l -> 1/4
(Theorem 2), the last one slowly. MNIST's pixels are non-negative, so every
starting correlation lies in [0, 1); pairs of the same digit start closer
than pairs of different digits, and the summary reports how depth erases the
difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.config import dataset_setting, mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import DATASETS, load_points
from ntkdepth.data.mnist import mnist_data_line
from ntkdepth.data.points import points_record
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.plotting import PairGroup, depth_panels, pair_values
from ntkdepth.reporting import table
from ntkdepth.runs import RunDir
from ntkdepth.theory.depth import one_minus_rho_asymptote

NAME = "fig4"
DESCRIPTION = "rho_l, Sigmadot^l and Thetabar^l against depth for pairs of points on the sphere"

# The quantiles over each group's pairs at every depth (the bands span the 10% and 90% ones), and
# their columns in depth_stats.csv.
QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
QUANTILE_COLUMNS = ("min", "q10", "median", "q90", "max")


@dataclass(frozen=True)
class Config:
    dataset: str = dataset_setting(DATASETS)
    n: int = setting(10, help="number of data points (x* is one more)", min=2, max=5000)
    dim: int = setting(10, help="input dimension d (sphere and cube: points on S^{d-1})", min=2)
    depth: int = setting(1000, help="deepest network L (depths 1..L are traced)", min=2)
    W_std: float = setting(math.sqrt(2.0), help="weight standard deviation sigma_w", min=1e-6)
    b_std: float = setting(0.0, help="bias standard deviation sigma_b", min=0.0)
    max_curves: int = setting(
        12, help="pairs drawn as individual curves per group; all pairs enter the bands", min=1
    )
    data_dir: str = mnist_dir_setting()
    split: str = mnist_split_setting()
    seed: int = setting(0, help="seed of the data sample", min=0)
    float64: bool = setting(True, help="compute in float64")


def run(config: Config, out: RunDir) -> dict:
    # The last point drawn is x*: held out of the data, distinct from every point in it.
    sample = load_points(config.dataset, config.n + 1, config.seed, dim=config.dim,
                         data_dir=config.data_dir, split=config.split)
    data = points_record(sample.source, [config.n + 1])
    if data:
        out.record_data("mnist", data)
    n = config.n
    inside = [(i, j) for i in range(n) for j in range(i + 1, n)]
    with_star = [(i, n) for i in range(n)]

    def compute():
        with jax.enable_x64(config.float64):
            trace = relu_kernel_trace(
                sample.x, depth=config.depth, W_std=config.W_std, b_std=config.b_std,
                get=("rho", "nngp_dot", "ntk_normalized"),
            )
            return {"rho": trace.rho, "nngp_dot": trace.nngp_dot, "ntk_normalized": trace.ntk_normalized}

    print(f"  tracing {n + 1} {_what(sample.source)} through depths 1..{config.depth}", flush=True)
    arrays = out.stage("trace", compute)
    traces = {"rho": arrays["rho"], "sigmadot": arrays["nngp_dot"], "thetabar": arrays["ntk_normalized"]}
    groups = {"inside": inside, "with_x_star": with_star}
    # Per group: the quantiles over all its pairs ([Q, L] per quantity), the |Thetabar - 1/4| band
    # ([L] each), and the first max_curves pairs drawn one by one ([c, L] per quantity).
    quantiles = {g: {name: np.quantile(pair_values(trace, pairs), QUANTILES, axis=1)
                     for name, trace in traces.items()} for g, pairs in groups.items()}
    residual_band = {g: dict(zip(("q10", "q90"), np.quantile(np.abs(pair_values(traces["thetabar"], pairs) - 0.25),
                                                             [0.1, 0.9], axis=1)))
                     for g, pairs in groups.items()}
    curves = {g: {"pairs": np.array(pairs[: config.max_curves]),
                  **{name: pair_values(trace, pairs[: config.max_curves]).T for name, trace in traces.items()}}
              for g, pairs in groups.items()}

    results = _results(config, sample, np.array(inside + with_star), arrays)
    results["source"] = {"name": sample.source.name, "dim": sample.source.dim,
                         "split": getattr(sample.source, "split", None)}
    results |= {"quantile_levels": QUANTILES, "quantiles": quantiles, "residual_band": residual_band,
                "curves": curves, "data": data}
    results["tables"] = _tables(config, quantiles, curves)
    return results


def _tables(config, quantiles: dict, curves: dict) -> dict:
    """``depth_stats.csv`` (the quantiles of every group and quantity at every depth) and
    ``pairs.csv`` (the pairs drawn one by one, at every depth), from the results' arrays."""
    layers = range(1, config.depth + 1)
    stats_rows = [[group, name, ell, *q[:, k]] for group, by_name in quantiles.items()
                  for name, q in by_name.items() for k, ell in enumerate(layers)]
    curve_rows = [[group, int(i), "x*" if j == config.n else int(j), ell]
                  + [float(c[name][p, k]) for name in ("rho", "sigmadot", "thetabar")]
                  for group, c in curves.items() for p, (i, j) in enumerate(c["pairs"]) for k, ell in enumerate(layers)]
    return {
        "depth_stats.csv": table(["group", "quantity", "depth", *QUANTILE_COLUMNS], stats_rows),
        "pairs.csv": table(["group", "i", "j", "depth", "rho", "sigmadot", "thetabar"], curve_rows),
    }


def report(config: Config, results: dict, out) -> dict:
    figure = _plot(out, config, results)
    out.write_summary(_summary(config, results, figure))
    last = results["at_depth"][-1]
    return {
        f"median 1 - rho at L={last['depth']}": f"{last['median_one_minus_rho']:.3e} "
        f"(9 pi^2 / 2L^2 = {last['one_minus_rho_asymptote']:.3e})",
        f"max |Thetabar - 1/4| at L={last['depth']}": f"{last['max_abs_thetabar_minus_quarter']:.3e}",
        "figure": str(out.file(figure)),
    }


def _what(source) -> str:
    return f"MNIST images ({source.split} split)" if source.name == "mnist" else "points"


def _bands(results: dict) -> tuple[np.ndarray, dict]:
    """The depths ``[L]`` and ``quantity -> group -> (q10 [L], q90 [L], curves [L, c])`` of the results."""
    layers = np.arange(1, results["depth"] + 1)
    lo, hi = (results["quantile_levels"].index(q) for q in (0.1, 0.9))
    out = {name: {g: (np.asarray(q[name])[lo], np.asarray(q[name])[hi], np.asarray(results["curves"][g][name]).T)
                  for g, q in results["quantiles"].items()}
           for name in ("rho", "sigmadot", "thetabar")}
    out["residual"] = {
        g: (band["q10"], band["q90"], np.abs(out["thetabar"][g][2] - 0.25))
        for g, band in results["residual_band"].items()
    }
    return layers, out


def _results(config, sample, all_pairs, arrays) -> dict:
    """Headline numbers at decades of depth, over all pairs (and by digit on MNIST)."""
    rho, sigmadot, thetabar = (pair_values(arrays[k], all_pairs)
                               for k in ("rho", "nngp_dot", "ntk_normalized"))  # [depth, n_pairs]
    same_digit = None
    if sample.labels is not None:
        same_digit = sample.labels[all_pairs[:, 0]] == sample.labels[all_pairs[:, 1]]
    checkpoints = [ell for ell in (1, 2, 10, 100, 1000, 10_000, 100_000) if ell <= config.depth]
    if config.depth not in checkpoints:
        checkpoints.append(config.depth)
    table = []
    for ell in checkpoints:
        tb = thetabar[ell - 1]
        row = {
            "depth": ell,
            "median_one_minus_rho": float(np.median(1.0 - rho[ell - 1])),
            "one_minus_rho_asymptote": float(one_minus_rho_asymptote(ell)),
            "median_sigmadot": float(np.median(sigmadot[ell - 1])),
            "median_thetabar": float(np.median(tb)),
        }
        if same_digit is not None:
            row["median_thetabar_same_digit"] = float(np.median(tb[same_digit])) if same_digit.any() else None
            row["median_thetabar_other_digit"] = (float(np.median(tb[~same_digit]))
                                                  if (~same_digit).any() else None)
        row["max_abs_thetabar_minus_quarter"] = float(np.max(np.abs(tb - 0.25)))
        table.append(row)
    median_tb = np.median(thetabar, axis=1)  # [depth]
    peak = int(np.argmax(median_tb))
    results = {"n": config.n, "depth": config.depth}
    if sample.source.name == "mnist":
        results |= {
            "data_dir": str(sample.source.directory), "split": sample.source.split,
            "indices": sample.indices, "labels": sample.labels, "x_star_index": int(sample.indices[-1]),
        }
    else:
        results["dim"] = config.dim
    results |= {"pairs_inside": config.n * (config.n - 1) // 2, "pairs_with_x_star": config.n}
    if same_digit is not None:
        results["pairs_same_digit"] = int(same_digit.sum())
    results["initial_correlations"] = {"min": float(rho[0].min()), "median": float(np.median(rho[0])),
                                       "max": float(rho[0].max())}
    if sample.min_angle is not None:
        results["min_angle"] = sample.min_angle
    results["median_thetabar_peak"] = {"depth": peak + 1, "value": float(median_tb[peak])}
    results["at_depth"] = table
    return results


def _figure_name(source) -> tuple[str, str]:
    """The file and title of the figure: the paper's Figure 5 on MNIST, else its Figure 4."""
    return ("fig5.png", "Figure 5") if source["name"] == "mnist" else ("fig4.png", "Figure 4")


def _plot(out, config, results) -> str:
    source = results["source"]
    file, figure = _figure_name(source)
    colors = {"inside": "tab:blue", "with_x_star": "tab:red"}
    labels = {"inside": r"pairs $(x_i, x_j)$ in $X$", "with_x_star": r"pairs $(x_i, x^*)$"}
    styles = {"inside": "-", "with_x_star": "--"}
    totals = {"inside": results["pairs_inside"], "with_x_star": results["pairs_with_x_star"]}
    limits = {"rho": 1.0, "sigmadot": config.W_std**2 / 2, "thetabar": 0.25}
    layers, bands = _bands(results)
    titles = {"rho": "correlation", "sigmadot": "derivative kernel", "thetabar": "normalized NTK"}
    ylabels = {"rho": r"$\rho_\ell$", "sigmadot": r"$\dot\Sigma^{\ell}$", "thetabar": r"$\bar\Theta^{\ell}$",
               "residual": r"$|\bar\Theta^{\ell} - 1/4|$"}
    panels = {q: (titles[q], bands[q]) for q in titles}
    if source["name"] == "mnist":
        title = (f"{figure}: {config.n} MNIST images ({source['split']} split) on $S^{{783}}$ and a "
                 r"held-out image $x^*$, ReLU, ")
    else:
        title = f"{figure}: {config.n} points on $S^{{{source['dim'] - 1}}}$ ({source['name']}) and $x^*$, ReLU, "
    if config.b_std == 0:
        # The approach to the limit 1/4, visible over decades only on a log axis.
        panels["residual"] = ("distance to the limit 1/4", bands["residual"])
    fig = depth_panels(
        layers, panels,
        [PairGroup(g, labels[g], colors[g], styles[g], totals[g]) for g in ("inside", "with_x_star")],
        limits=limits if config.b_std == 0 else None, log_y=("residual",), ylabels=ylabels,
        title=title + f"$\\sigma_w^2={config.W_std**2:g}$, $\\sigma_b={config.b_std:g}$",
    )
    out.save_figure(fig, file)
    import matplotlib.pyplot as plt  # after depth_panels has chosen the Agg backend

    plt.close(fig)
    return file


def _summary(config, results, figure) -> str:
    source = results["source"]
    table = results["at_depth"]
    by_digit = "median_thetabar_same_digit" in table[0]
    init = results["initial_correlations"]
    if source["name"] == "mnist":
        lines = [
            f"# {_figure_name(source)[1]}: kernels against depth on MNIST", "",
            f"{config.n} MNIST images and a held-out image x*, drawn uniformly without replacement "
            f"(seed {config.seed}) from the {source['split']} split in {results['data_dir']}, flattened and "
            f"normalized onto S^783; smallest angle between two images {results['min_angle']:.3f} rad, "
            f"{results['pairs_same_digit']} pairs show the same digit.",
        ]
    else:
        lines = [
            f"# {_figure_name(source)[1]}: kernels against depth", "",
            f"{config.n} points uniform on the sphere S^{config.dim - 1} ({source['name']}) plus x*.",
        ]
    lines[-1] += (
        f" Depths 1..{config.depth}, W_std^2 = {config.W_std**2:g}, b_std = {config.b_std:g}. Starting "
        f"correlations rho_1 over all {results['pairs_inside'] + results['pairs_with_x_star']} pairs: "
        f"{init['min']:.3f} to {init['max']:.3f} (median {init['median']:.3f})."
    )
    if source["name"] == "mnist":
        lines += ["", mnist_data_line(results.get("data"))]
    digit_head = " same digit | other digits |" if by_digit else ""
    lines += [
        "",
        "| depth | median 1 - rho | 9 pi^2 / (2 L^2) | median Sigmadot | median Thetabar |"
        + digit_head + " max abs(Thetabar - 1/4) |",
        "|---|---|---|---|---|" + "---|" * (3 if by_digit else 1),
    ]

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    for row in table:
        digits = (f" {fmt(row['median_thetabar_same_digit'], '.5f')} "
                  f"| {fmt(row['median_thetabar_other_digit'], '.5f')} |") if by_digit else ""
        lines.append(
            f"| {row['depth']} | {row['median_one_minus_rho']:.3e} | {row['one_minus_rho_asymptote']:.3e} "
            f"| {'n/a' if row['depth'] == 1 else format(row['median_sigmadot'], '.6f')} "
            f"| {row['median_thetabar']:.5f} |{digits} {row['max_abs_thetabar_minus_quarter']:.3e} |"
        )
    lines += ["", _finding(config, results), "",
              f"Files: {figure} (the kernels' panels), depth_stats.csv (quantiles over all pairs at every "
              "depth), pairs.csv (the plotted pairs at every depth), results.json."]
    return "\n".join(lines)


def _finding(config, results) -> str:
    """The summary's finding, every claim in it checked against the numbers it quotes."""
    table = results["at_depth"]
    first, last = table[0], table[-1]
    ratio = last["median_one_minus_rho"] / last["one_minus_rho_asymptote"]
    dev_1, dev_l = first["max_abs_thetabar_minus_quarter"], last["max_abs_thetabar_minus_quarter"]
    peak = results["median_thetabar_peak"]
    text = (
        f"Finding: at depth {last['depth']} the median 1 - rho is {last['median_one_minus_rho']:.3g}, "
        f"{ratio:.3f} times Lemma 1's 9 pi^2 / (2 L^2) ("
        + ("within" if 0.5 <= ratio <= 2 else "not within")
        + f" a factor 2 of it), and the median Sigmadot is {last['median_sigmadot']:.4f}. The median "
        f"Thetabar is {first['median_thetabar']:.3f} at depth 1"
        + (f", peaks at {peak['value']:.3f} at depth {peak['depth']}" if peak["depth"] > 1 else "")
        + f" and is {last['median_thetabar']:.4f} at depth {last['depth']}; the largest deviation "
        f"from 1/4 over all pairs "
        + ("shrinks" if dev_l < dev_1 else "does not shrink")
        + f" from {dev_1:.3g} at depth 1 to {dev_l:.3g} at depth {last['depth']}, "
        + (f"{dev_l / last['median_one_minus_rho']:.3g} times the median 1 - rho: Thetabar approaches "
           "its limit more slowly than rho" if dev_l > last["median_one_minus_rho"]
           else "no more than the median 1 - rho")
        + "."
    )
    same_1, other_1 = first.get("median_thetabar_same_digit"), first.get("median_thetabar_other_digit")
    same_l, other_l = last.get("median_thetabar_same_digit"), last.get("median_thetabar_other_digit")
    if None not in (same_1, other_1, same_l, other_l):
        gap_1, gap_l = same_1 - other_1, same_l - other_l
        text += (
            f" The median Thetabar of same-digit pairs minus that of other pairs is {gap_1:.3g} at "
            f"depth 1 and {gap_l:.2g} at depth {last['depth']}: depth "
            + ("shrinks" if abs(gap_l) < abs(gap_1) else "does not shrink")
            + " the class structure of the kernel."
        )
    return text
