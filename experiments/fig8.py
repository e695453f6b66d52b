"""Figure 8: Theorem 3's depth bound against the dataset size n, and the Goldilocks zone.

For n points uniform on the sphere S^{d-1} the separation delta_n (the
smallest pairwise angle) shrinks like n^(-2/(d-1)) (Cai, Fan & Jiang 2013).
Theorem 3 keeps the deep NTK predictor expressive as long as the depth stays
below a bound set by delta_n: made concrete here as the depth at which the
normalized NTK of the closest training pair starts to decay towards 1/4
(Corollary 1; ~4.21 / delta_n). On the other side, stability needs
lambda_min(Thetabar^L) bounded away from 0, which takes a few layers.

For each n this experiment measures delta_n, the bound, and from a depth scan
(test points at angle delta_n / 2 from training points) the depths where the
predictor is stable (lambda_min >= min_lambda) and expressive (every test
point keeps max_i |Thetabar^L(x, x_i) - 1/4| >= min_gap): the Goldilocks zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.data import load_points, min_pairwise_angle
from ntkdepth.grids import log_grid
from ntkdepth.plotting import label_axes, plain_log_ticks, pyplot, save_figure, width_axis
from ntkdepth.reporting import as_numbers, claim, table
from ntkdepth.runs import RunDir
from ntkdepth.stats import PowerLaw, fit_power_law
from ntkdepth.theory import (
    decay_onset_depth,
    depth_scan,
    goldilocks_range,
    near_points,
)

NAME = "fig8"
DESCRIPTION = "Theorem 3's depth bound and the Goldilocks range of depths against dataset size"


@dataclass(frozen=True)
class Config:
    ns: list[int] = setting([30, 100, 300, 1000], help="dataset sizes n", min=3, max=20000)
    dim: int = setting(10, help="input dimension d (points on S^{d-1})", min=2)
    seeds: int = setting(2, help="datasets per n", min=1)
    n_test: int = setting(20, help="test points, each near one training point", min=1)
    test_angle: float = setting(
        0.5, help="angle of a test point from its training point, as a fraction of delta_n",
        min=1e-3, max=1.0,
    )
    min_lambda: float = setting(0.1, help="stable: lambda_min(Thetabar^L) >= min_lambda", min=0.0)
    min_gap: float = setting(
        0.25, help="expressive: every test point keeps max_i |Thetabar^L(x,x_i) - 1/4| >= min_gap",
        min=0.0, max=0.75,
    )
    n_depths: int = setting(40, help="depths scanned per dataset, log-spaced", min=5)
    depth_cap: int = setting(20000, help="largest depth scanned", min=10)
    seed: int = setting(0, help="first seed", min=0)


def run(config: Config, out: RunDir) -> dict:
    from tqdm import tqdm

    rows = []
    for n in config.ns:
        for s in tqdm(range(config.seeds), desc=f"fig8 n={n}", unit="set", leave=False):
            def compute(n=n, s=s):
                rng = np.random.default_rng([config.seed, s, n])
                x = load_points("sphere", n, rng, dim=config.dim).x
                delta = min_pairwise_angle(x, strict=True)
                bound = float(decay_onset_depth(np.cos(delta)).onset)
                test_angle = config.test_angle * delta
                expressive_until = float(decay_onset_depth(np.cos(test_angle)).onset)
                # Scan past where the test points' kernel has decayed.
                max_depth = int(min(config.depth_cap, max(20, 3 * expressive_until)))
                anchors = rng.choice(n, size=min(config.n_test, n), replace=False)
                scan = depth_scan(x, near_points(rng, x[anchors], test_angle),
                                  log_grid(max_depth, config.n_depths), times=(1.0,))
                zone = goldilocks_range(scan, min_lambda=config.min_lambda, min_gap=config.min_gap)
                first_stable = zone["stable_depths"][0] if zone["stable_depths"] else np.nan
                last_expressive = zone["expressive_depths"][-1] if zone["expressive_depths"] else np.nan
                lo, hi = zone["range"] if zone["range"] else (np.nan, np.nan)
                return {"values": np.array([delta, bound, first_stable, last_expressive, lo, hi,
                                            scan.lambda_min[-1], max_depth], dtype=np.float64)}

            v = out.stage(f"n{n}_s{s}", compute)["values"]
            rows.append([n, s, *v])
        print(f"  n = {n} done", flush=True)
    header = ["n", "seed", "delta", "depth_bound", "first_stable", "last_expressive",
              "goldilocks_first", "goldilocks_last", "lambda_min_deepest", "max_depth_scanned"]
    values = np.array(rows, dtype=np.float64)
    # Each measure's mean over the datasets of each n: [n], as config.ns.
    per_n = {h: np.array([float(np.nanmean(values[values[:, 0] == n][:, i])) for n in config.ns])
             for i, h in enumerate(header) if i >= 2}
    # The separation's scaling with n: delta_n ~ c n^(-2/(d-1)).
    ns = np.array(config.ns, dtype=np.float64)
    law = fit_power_law(ns, per_n["delta"]) if len(ns) > 1 else None
    return {
        "per_n": per_n,
        "delta_scaling": {"fitted_exponent": law.exponent if law else np.nan,
                          "theory_exponent": -2 / (config.dim - 1),
                          "fitted_constant": law.prefactor if law else np.nan},
        "bound_times_delta": per_n["depth_bound"] * per_n["delta"],
        "thresholds": {"min_lambda": config.min_lambda, "min_gap": config.min_gap},
        "tables": {"goldilocks.csv": table(header, rows)},
    }


def report(config: Config, results: dict, out) -> dict:
    per_n = {k: np.asarray(v, dtype=np.float64) for k, v in as_numbers(results["per_n"]).items()}
    scaling = as_numbers(results["delta_scaling"])
    _plot(out, config, per_n, scaling)
    out.write_summary(_summary(config, per_n, scaling["fitted_exponent"]))
    last = {k: v[-1] for k, v in per_n.items()}
    return {
        f"delta, bound, Goldilocks range at n={config.ns[-1]}":
            f"{last['delta']:.3g}, {last['depth_bound']:.0f}, "
            f"[{last['goldilocks_first']:.0f}, {last['goldilocks_last']:.0f}]",
        "figure": str(out.file("fig8.png")),
    }


def _plot(out, config, per_n, scaling):
    ns = np.array(config.ns, dtype=np.float64)
    get = per_n.get
    fig, (ax, ax2) = pyplot().subplots(1, 2, figsize=(12, 4.5))
    ax.fill_between(ns, get("goldilocks_first"), get("goldilocks_last"), color="gold", alpha=0.45,
                    label="Goldilocks zone (stable and expressive)")
    ax.plot(ns, get("depth_bound"), "o-", color="tab:red",
            label=r"depth bound: onset for the closest pair ($\approx 4.21/\delta_n$)")
    ax.plot(ns, get("last_expressive"), "s--", color="tab:orange",
            label=rf"last expressive depth (gap $\geq {config.min_gap:g}$)")
    ax.plot(ns, get("first_stable"), "^--", color="tab:blue",
            label=rf"first stable depth ($\lambda_{{\min}} \geq {config.min_lambda:g}$)")
    width_axis(ax, config.ns)  # ticks at the sizes measured
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("dataset size $n$")
    ax.set_ylabel("depth $L$")
    ax.set_title("depths where the deep NTK predictor is stable and expressive")
    ax.grid(alpha=0.3, which="both")
    ax2.plot(ns, get("delta"), "o", color="k", label=r"measured $\delta_n$ (mean over datasets)")
    if np.isfinite(scaling["fitted_exponent"]):
        law = PowerLaw(scaling["fitted_exponent"], scaling["fitted_constant"], np.nan)
        ax2.plot(ns, law(ns), "-", color="grey",
                 label=rf"fit $\propto n^{{{law.exponent:.3f}}}$ (theory $n^{{{-2 / (config.dim - 1):.3f}}}$)")
    width_axis(ax2, config.ns)
    ax2.set_yscale("log")
    plain_log_ticks(ax2.yaxis)
    label_axes(ax2, "dataset size $n$", r"separation $\delta_n$ (smallest angle)",
               f"separation of $n$ uniform points on $S^{{{config.dim - 1}}}$", grid="both")
    save_figure(out, fig, "fig8.png", "Figure 8: Theorem 3's depth bound and the Goldilocks zone",
                legend=(*ax.get_legend_handles_labels(), 2))


def _summary(config, per_n, slope) -> str:
    lines = [
        "# Figure 8: depth bound and Goldilocks zone against n",
        "",
        f"Points uniform on S^{config.dim - 1}; {config.seeds} dataset(s) per n; {config.n_test} test "
        f"points at {config.test_angle:g} delta_n from training points; stable: lambda_min >= "
        f"{config.min_lambda:g}; expressive: gap >= {config.min_gap:g}.",
        "",
        "| n | delta_n | depth bound | bound x delta_n | first stable | last expressive | Goldilocks range |",
        "|---|---|---|---|---|---|---|",
    ]
    at = [{k: v[i] for k, v in per_n.items()} for i in range(len(config.ns))]  # each n's measures
    for n, v in zip(config.ns, at):
        lines.append(
            f"| {n} | {v['delta']:.4f} | {v['depth_bound']:.1f} | {v['depth_bound'] * v['delta']:.2f} "
            f"| {v['first_stable']:.1f} | {v['last_expressive']:.1f} "
            f"| {v['goldilocks_first']:.1f}..{v['goldilocks_last']:.1f} |"
        )
    a, b = at[0], at[-1]
    products = per_n["depth_bound"] * per_n["delta"]
    width = lambda v: v["goldilocks_last"] / v["goldilocks_first"]
    lines += [
        "",
        "Finding: the separation "
        + claim(slope < 0, "shrinks", "does not shrink") + f" like n^{slope:.3f} (theory "
        f"n^{-2 / (config.dim - 1):.3f}), so the depth bound "
        + claim(b["depth_bound"] > a["depth_bound"], "grows", "does not grow")
        + f" from {a['depth_bound']:.0f} at n = {config.ns[0]} to "
        f"{b['depth_bound']:.0f} at n = {config.ns[-1]} (bound x delta_n between "
        f"{min(products):.2f} and {max(products):.2f}; 4.21 in the small-angle limit), while "
        f"stability needs {a['first_stable']:.1f} to {b['first_stable']:.1f} layers (mean over "
        f"datasets): the Goldilocks zone moves from depths "
        f"{a['goldilocks_first']:.1f}..{a['goldilocks_last']:.1f} (a factor {width(a):.1f}) to "
        f"{b['goldilocks_first']:.1f}..{b['goldilocks_last']:.1f} (a factor {width(b):.1f}).",
        "",
        "Files: fig8.png, goldilocks.csv (every dataset), results.json.",
    ]
    return "\n".join(lines)
