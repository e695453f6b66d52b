"""Proposition 7: the union bound on close pairs of random points, against Monte Carlo.

n points drawn uniformly on the sphere S^{d-1}. Proposition 7 bounds the
probability that some pair is closer than an angle delta by the union bound
n(n-1)/2 * F_d(delta), with F_d the law of the angle between two uniform
points (Cai, Fan & Jiang 2013), and the probability that some pair has
|<x_i, x_j>| > cos delta by twice that. For a grid of n, d and delta (chosen per
(n, d) so that the bound runs from ``bound_min`` to ``bound_max``) both events are
also estimated by Monte Carlo, with binomial standard errors. The bound can only
be exceeded by sampling error; it is tight when small (the events of different
pairs are rarely simultaneous) and loose near 1, where the true probability is
close to the Poisson value 1 - exp(-bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.plotting import pyplot, save_figure, sequential_colors
from ntkdepth.reporting import as_numbers, claim, table
from ntkdepth.runs import RunDir
from ntkdepth.theory.separation_bounds import (
    compare_with_monte_carlo,
    comparison_statistics,
    delta_grid,
    monte_carlo_close_pair,
    union_bound_close_pair,
    union_bound_near_colinear,
)

NAME = "prop7"
DESCRIPTION = (
    "Proposition 7's union bound on close / near-colinear pairs of uniform points vs Monte Carlo"
)

@dataclass(frozen=True)
class Config:
    n: list[int] = setting([10, 100, 1000], help="numbers of points", min=2, max=20000)
    dims: list[int] = setting(
        [3, 10, 100, 784], help="ambient dimensions d (points on S^{d-1})", min=2
    )
    trials: list[int] = setting(
        [100000, 10000, 1000], help="Monte Carlo trials, one entry per n", min=10
    )
    n_delta: int = setting(
        10, help="angles delta per (n, d), plus two where the bound is 1/2 and 1", min=2, max=200
    )
    bound_min: float = setting(1e-3, help="union bound at the smallest delta", min=1e-12, max=1.0)
    bound_max: float = setting(
        5.0, help="raw union bound at the largest delta (above 1 the bound is vacuous)", min=1e-3
    )
    seed: int = setting(0, help="seed of the Monte Carlo samples", min=0)
    max_mb: int = setting(64, help="memory per Monte Carlo batch, MiB", min=1)

    def check(self):
        if len(self.trials) != len(self.n):
            raise ValueError(
                f"trials needs one entry per n: {len(self.n)} n, {len(self.trials)} trials"
            )
        if self.bound_max <= self.bound_min:
            raise ValueError(
                f"bound_max ({self.bound_max}) must exceed bound_min ({self.bound_min})"
            )


def run(config: Config, out: RunDir) -> dict:
    rows = []
    timings = {}
    for n, trials in zip(config.n, config.trials):
        for d in config.dims:
            delta = delta_grid(n, d, config.bound_min, config.bound_max, config.n_delta)

            def compute(n=n, d=d, trials=trials, delta=delta):
                rng = np.random.default_rng([config.seed, n, d])
                t0 = time.perf_counter()
                mc = monte_carlo_close_pair(n, d, delta, trials, rng, max_bytes=config.max_mb << 20)
                return {
                    "min_angle": mc.min_angle, "min_colinear_angle": mc.min_colinear_angle,
                    "seconds": time.perf_counter() - t0,
                }

            print(f"  n={n:<6} d={d:<5} {trials} trials", flush=True)
            arrays = out.stage(f"mc_n{n}_d{d}", compute)
            timings[f"n={n},d={d}"] = float(arrays["seconds"])
            rows += compare_with_monte_carlo(n, d, delta, arrays["min_angle"], arrays["min_colinear_angle"])
    header = list(rows[0])
    return {"statistics": comparison_statistics(rows), "mc_seconds": timings, "rows": rows,
            "tables": {"prop7.csv": table(header, [[r[h] for h in header] for r in rows])}}


def report(config: Config, results: dict, out) -> dict:
    stats = as_numbers(results["statistics"])
    _plot(out, config, results["rows"])
    out.write_summary(_summary(config, stats))
    return {
        "cells (n, d, delta, event)": stats["cells"],
        "MC above bound by > 4 s.e.":
            f"{stats['exceed_4se']} (exact binomial test: {stats['exceed_exact']})",
        "MC / bound where bound <= 0.01": _fmt_ratio(stats["tight"]),
        "figure": str(out.file("prop7.png")),
    }


def _fmt_ratio(t) -> str:
    if not t["hits"]:
        return f"no hits in the {t['cells']} cells"
    return (f"{t['pooled_ratio']:.3f} +- {t['pooled_ratio_se']:.3f} ({t['hits']} hits pooled over "
            f"{t['cells']} cells)")


def _plot(out, config, rows):
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter

    events = (("close", r"some pair at angle $<\delta$", "a close pair"),
              ("colinear", r"some pair with $|\langle x_i,x_j\rangle| > \cos\delta$", "a near-colinear pair"))
    dims = list(config.dims)
    # One row per dimension, the two events side by side: the figure stays two panels wide.
    fig, axes = plt.subplots(len(dims), 2, figsize=(10.5, 3.5 * len(dims) + 0.4), squeeze=False)
    colors = sequential_colors(len(config.n))
    floor = 0.3 * config.bound_min
    for col, (event, title, short) in enumerate(events):
        for row, d in enumerate(dims):
            ax = axes[row, col]
            for color, n in zip(colors, config.n):
                sel = [r for r in rows if r["event"] == event and r["n"] == n and r["d"] == d]
                delta = np.array([r["delta"] for r in sel])
                # The bound on a fine grid between the Monte Carlo angles.
                fine = np.geomspace(delta.min(), delta.max(), 300)
                bound = (union_bound_close_pair if event == "close" else union_bound_near_colinear)(
                    n, d, fine
                )
                ax.plot(fine, bound.clipped, color=color, lw=1.6)
                ax.plot(fine, -np.expm1(-bound.raw), color=color, lw=0.9, ls=":")
                hit = np.array([r["mc_count"] > 0 for r in sel])
                mc = np.array([r["mc"] for r in sel])
                se = np.array([r["mc_se"] for r in sel])
                lower = np.minimum(2 * se, mc - floor * 0.999)  # keep bars on the log axis
                ax.errorbar(delta[hit], mc[hit], yerr=[lower[hit], 2 * se[hit]], fmt="o", ms=4,
                            color=color, capsize=2, lw=1)
                # No hit: the estimate is 0; mark the 95% upper limit 3/T instead.
                ax.plot(delta[~hit], np.full((~hit).sum(), 3.0 / sel[0]["trials"]), "v", ms=5,
                        mfc="none", color=color)
            ax.axhline(1.0, color="0.5", lw=0.8)
            ax.set_xscale("log")
            lo, hi = ax.get_xlim()
            if hi / lo < 30:  # less than ~a decade and a half: plain numbers, not 1.4 x 10^0
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_yscale("log")
            ax.set_ylim(floor, 1.6)
            ax.grid(alpha=0.3, which="both")
            ax.set_title(f"{short}, $d = {d}$ (points on $S^{{{d - 1}}}$)")
            if row == len(dims) - 1:
                ax.set_xlabel(r"angle $\delta$ (rad)")
            ax.set_ylabel(f"P({title})", fontsize=10)
    handles = [
        Line2D([], [], color=c, lw=1.6, label=f"$n = {n}$") for c, n in zip(colors, config.n)
    ]
    handles += [
        Line2D([], [], color="k", lw=1.6,
               label=r"union bound, clipped at 1 (left: $\binom{n}{2} F_d(\delta)$, "
               r"right: twice that)"),
        Line2D([], [], color="k", lw=0.9, ls=":", label=r"Poisson $1 - e^{-\mathrm{bound}}$"),
        Line2D([], [], color="k", marker="o", ls="", ms=4, label=r"Monte Carlo $\pm 2$ s.e."),
        Line2D([], [], color="k", marker="v", mfc="none", ls="", ms=5,
               label=r"Monte Carlo: no hit (at $3/T$)"),
    ]
    save_figure(out, fig, "prop7.png",
                "Proposition 7: union bound vs Monte Carlo for uniform points on the sphere\n"
                f"(Monte Carlo: T = {', '.join(map(str, config.trials))} trials for n = "
                f"{', '.join(map(str, config.n))})",
                legend=(handles, [h.get_label() for h in handles], 3))


def _summary(config, stats) -> str:
    t, near = stats["tight"], stats["near_one"]
    lines = [
        "# Proposition 7: union bound vs Monte Carlo",
        "",
        f"n in {list(config.n)} uniform points on S^(d-1), d in {list(config.dims)}, "
        f"{config.n_delta} log-spaced angles per (n, d) where the union bound runs from "
        f"{config.bound_min:g} to {config.bound_max:g}, plus the two where it is 1/2 and 1; "
        f"Monte Carlo trials {list(config.trials)} (one entry per n). "
        f"Two events: some pair at angle < delta, and some pair with |<x_i, x_j>| > cos delta.",
        "",
        "| cells | MC > bound + 4 s.e. | exact binomial p < 3.2e-5 | smallest p-value | "
        "MC / bound where bound <= 0.01 | MC where raw bound = 1 | Poisson 1 - exp(-bound) there |",
        "|---|---|---|---|---|---|---|",
        f"| {stats['cells']} | {stats['exceed_4se']} | {stats['exceed_exact']} | "
        f"{stats['min_binom_p_value']:.3g} | {_fmt_ratio(t)} | "
        f"{near['mc_mean']:.3f} (range {near['mc_min']:.3f}-{near['mc_max']:.3f}, "
        f"bound {near['bound_raw_mean']:.2f}, {near['cells']} cells) "
        f"| {near['poisson_mean']:.3f} |",
        "",
        "Finding: " + _finding(stats),
        "",
        "Files: prop7.png (top row: close pair, bottom: near-colinear; one panel per d, one "
        "colour per n), prop7.csv and results.json (bound, Monte Carlo estimate, standard "
        "error, hit count and exact binomial p-value per cell).",
    ]
    return "\n".join(lines)


def _finding(stats) -> str:
    t, near = stats["tight"], stats["near_one"]
    if stats["exceed_4se"] == 0 and stats["exceed_exact"] == 0:
        first = (
            f"the Monte Carlo frequency never exceeds the union bound beyond sampling error (0 of "
            f"{stats['cells']} cells above bound + 4 s.e., 0 by an exact binomial test; "
            f"the largest excess is {stats['largest_excess_in_se']:.1f} s.e., the smallest p-value "
            f"{stats['min_binom_p_value']:.2g})."
        )
    else:
        first = (
            f"the Monte Carlo frequency exceeds the union bound beyond sampling error in "
            f"{stats['exceed_4se']} of {stats['cells']} cells (exact binomial test: "
            f"{stats['exceed_exact']}), which a valid bound should not allow: see prop7.csv."
        )
    if t["hits"]:
        word = ("tight" if t["pooled_ratio"] >= 0.8
                else "loose by a factor " + format(1 / t["pooled_ratio"], ".2g"))
        second = (
            f" Where the bound is at most 0.01 it is {word}: pooled over those {t['cells']} cells, "
            f"Monte Carlo / bound = {t['pooled_ratio']:.3f} +- {t['pooled_ratio_se']:.3f} "
            f"({t['hits']} hits)."
        )
    else:
        second = " Where the bound is at most 0.01 the Monte Carlo run saw no hits at all."
    if near["cells"]:
        third = (
            claim(near["bound_raw_mean"] > near["mc_mean"], " Near 1 it is loose: ", " Near 1: ")
            + f"where the raw bound is {near['bound_raw_mean']:.3g}, the "
            f"measured probability is {near['mc_mean']:.3f} "
            f"(range {near['mc_min']:.3f}-{near['mc_max']:.3f} "
            f"over {near['cells']} (n, d, event) curves; Poisson value 1 - exp(-bound) = "
            f"{near['poisson_mean']:.3f}), so the bound overstates it by a factor "
            f"{near['bound_raw_mean'] / near['mc_mean']:.2f}; above that it is vacuous "
            f"({stats['vacuous_cells']} cells, Monte Carlo between "
            f"{stats['vacuous_mc_min']:.2f} and 1)."
        )
    else:
        third = ""
    return first + second + third
