"""Figure 2: the normalized NTK converges to 1/4 with depth, slowly (paper, section 6; Theorem 2).

For pairs of points on the sphere with starting correlations rho_1, the
normalized NTK Thetabar^L(x, x') of a depth-L ReLU network (W_std^2 = 2, no
bias) is traced to large depths with the float64 angle recursion
(``correlation_trace``). Three panels:

1. Thetabar^L against L (log axis), with the limit 1/4;
2. |Thetabar^L - 1/4| against L on log-log axes, with the law
   (a log L + b) / L fitted over the deepest decades (the recursion predicts
   a = 3/8 for every pair; ``ntkdepth.theory.depth``), compared with a plain
   power law c L^-p;
3. Corollary 1: the onset depth of the decay (the first depth past the peak of
   |Thetabar^L - 1/4| where it has halved) against 1 - rho_1, log-log, with
   the fitted law C (1 - rho_1)^-q and the continuum prediction
   2.974 (1 - rho_1)^-1/2.

Also checked: Lemma 1, L^2 (1 - rho_L) -> 9 pi^2 / 2, at decades of depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.config import setting
from ntkdepth.grids import trace_depths
from ntkdepth.kernels import correlation_trace
from ntkdepth.plotting import depth_axis, label_axes, pyplot, save_figure, sequential_colors
from ntkdepth.reporting import as_numbers, claim, table, table_column
from ntkdepth.runs import RunDir
from ntkdepth.theory.depth import (
    LOG_LAW_SLOPE,
    ONSET_CONSTANT,
    ONSET_THETA_CONSTANT,
    OnsetLaw,
    continuum_onset,
    continuum_profile,
    decay_fit_table,
    decay_onset_depth,
    fit_decays_past_onset,
    fit_onset_law,
    predicted_log_law,
    rho_decay_ratio,
)

NAME = "fig2"
DESCRIPTION = "Thetabar^L -> 1/4 with depth for several pairs: the rate and the onset of the decay"


@dataclass(frozen=True)
class Config:
    correlations: list[float] = setting(
        [-1.0, -0.5, 0.0, 0.5, 0.9, 0.99, 0.999],
        help="starting correlations rho_1 = <x, x'> of the pairs traced", min=-1.0, max=1.0,
    )
    depth: int = setting(100_000, help="deepest network L", min=10, max=10_000_000)
    samples: int = setting(
        600, help="log-spaced depths kept for the curves (rounded; duplicates dropped)", min=20
    )
    fit_decades: float = setting(
        2.0, help="fit the decay over the last this many decades of depth", min=0.5, max=7.0
    )
    fit_after_onset: float = setting(
        20.0, help="and only beyond this multiple of the pair's onset depth", min=1.0
    )
    onset_min_one_minus_rho: float = setting(
        1e-6, help="smallest 1 - rho_1 of the onset panel", min=1e-12, max=1e-1
    )
    onset_points: int = setting(40, help="starting correlations in the onset panel", min=5)
    onset_fit_max: float = setting(
        1e-2, help="fit the onset law over 1 - rho_1 <= this", min=1e-10, max=2.0
    )

    def check(self):
        if len(self.correlations) == 0:
            raise ValueError("correlations: give at least one starting correlation")
        if len(set(self.correlations)) != len(self.correlations):
            raise ValueError("correlations: values must be distinct")
        if self.onset_fit_max <= self.onset_min_one_minus_rho:
            raise ValueError("onset_fit_max must exceed onset_min_one_minus_rho")


def run(config: Config, out: RunDir) -> dict:
    rho1 = np.array(config.correlations, dtype=np.float64)
    layers = trace_depths(config.depth, config.samples)

    def trace_stage():
        with jax.enable_x64(True):
            tr = correlation_trace(rho1, depth=config.depth, layers=layers)
            return {
                "layers": tr.layers, "thetabar": tr.ntk_normalized,
                "one_minus_rho": tr.one_minus_rho, "fprime": tr.fprime,
            }

    omr_grid = np.logspace(math.log10(config.onset_min_one_minus_rho), math.log10(2.0),
                           config.onset_points)

    def onset_stage():
        grid = decay_onset_depth(1.0 - omr_grid)
        pairs = decay_onset_depth(rho1)
        return {
            "onset": grid.onset, "peak_depth": grid.peak_depth, "peak_dev": grid.peak_deviation,
            "pair_onset": pairs.onset, "pair_peak_depth": pairs.peak_depth,
        }

    print(f"  tracing {len(rho1)} pairs through depths 1..{config.depth}", flush=True)
    tr = out.stage("trace", trace_stage)
    print(f"  onset depths for {config.onset_points} starting correlations", flush=True)
    on = out.stage("onset", onset_stage)

    L = tr["layers"]
    tb, omr = tr["thetabar"], tr["one_minus_rho"]
    dev = tb - 0.25
    decay_ratio = rho_decay_ratio(L, omr)  # -> 1
    predicted = predicted_log_law(omr, L)
    fits = fit_decays_past_onset(L, dev, rho1, on["pair_onset"], predicted["b"],
                                 fit_decades=config.fit_decades, after_onset=config.fit_after_onset)
    law = fit_onset_law(omr_grid, on["onset"], max_one_minus_rho=config.onset_fit_max)

    at_depth = [{"depth": int(L[k]), "thetabar": tb[k], "thetabar_minus_quarter": dev[k],
                 "L_times_deviation": L[k] * dev[k], "one_minus_rho": omr[k],
                 "L2_one_minus_rho_over_9pi2_2": decay_ratio[k]}
                for k, ell in enumerate(L) if ell in {10**p for p in range(8)} or ell == config.depth]
    # [depth, pair] at the sampled depths, the pairs as config.correlations.
    trace = {"depths": L, "thetabar": tb, "thetabar_minus_quarter": dev, "one_minus_rho": omr,
             "L2_one_minus_rho_over_9pi2_2": decay_ratio, "fprime": tr["fprime"]}
    # [onset_points] each, along 1 - rho_1.
    onset = {"one_minus_rho1": omr_grid, "onset_depth": on["onset"], "peak_depth": on["peak_depth"].astype(int),
             "peak_deviation": on["peak_dev"], "fitted_law": law(omr_grid), "continuum_prediction": continuum_onset(omr_grid)}
    results = {
        "depth": config.depth,
        "correlations": rho1,
        "theory": {
            "log_law": "Thetabar^L - 1/4 = (a log L + b)/L + O(log^2 L / L^2), a = 3/8, "
                       "b = 3 pi C / 4 - 1/8, C = lim 1/theta_L - L/(3 pi) - log(L)/(2 pi)",
            "a": LOG_LAW_SLOPE, "C": predicted["C"], "b": predicted["b"],
            "onset_law": "L_onset ~ 4.206 / theta_1 ~ 2.974 (1 - rho_1)^(-1/2) as rho_1 -> 1",
            "onset_theta_constant": ONSET_THETA_CONSTANT, "onset_constant": ONSET_CONSTANT,
        },
        "decay_fits": fits,
        "onset_law": law.as_dict(),
        "at_depth": at_depth,
        "trace": trace,
        "onset": onset,
    }
    results["tables"] = {
        "thetabar.csv": table(
            ["rho1", "depth", *(k for k in trace if k != "depths")],
            [[float(r), int(ell), *(trace[k][i, j] for k in trace if k != "depths")]
             for j, r in enumerate(rho1) for i, ell in enumerate(L)]),
        "onset.csv": table(
            ["one_minus_rho1", "rho1", *(k for k in onset if k != "one_minus_rho1")],
            zip(omr_grid, 1.0 - omr_grid, *(onset[k] for k in onset if k != "one_minus_rho1"))),
        "fits.csv": table(*decay_fit_table(fits)),
    }
    return results


def report(config: Config, results: dict, out) -> dict:
    law, last = results["onset_law"], results["at_depth"][-1]
    _plot(out, config, results)
    out.write_summary(_summary(config, results))
    a = [f["fit"]["log_a"] for f in results["decay_fits"] if f["fit"]]
    decay_ratio, dev = (np.asarray(last[k]) for k in ("L2_one_minus_rho_over_9pi2_2", "thetabar_minus_quarter"))
    return {
        f"L^2 (1 - rho_L) / (9 pi^2/2) at L={config.depth}": f"{decay_ratio.min():.5f}..{decay_ratio.max():.5f}",
        f"max |Thetabar - 1/4| at L={config.depth}": f"{np.abs(dev).max():.3e}",
        "onset law": f"{law['C']:.3f} (1 - rho_1)^-{law['q']:.4f}",
        "figure": str(out.file("fig2.png")),
    } | ({"fitted a (theory 3/8)": f"{min(a):.4f}..{max(a):.4f}"} if a else {})


def _plot(out, config, results):
    fits = results["decay_fits"]
    law = OnsetLaw(**results["onset_law"])
    trace, onset = results["trace"], as_numbers(results["onset"])
    L = np.asarray(trace["depths"], dtype=np.float64)
    tb, dev = (np.asarray(trace[c]) for c in ("thetabar", "thetabar_minus_quarter"))  # [depth, pair]
    omr_grid, onset_depth = (np.asarray(onset[c], dtype=np.float64) for c in ("one_minus_rho1", "onset_depth"))
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 9.0))
    (ax1, ax2), (ax3, key) = axes
    colors = sequential_colors(len(fits))
    for j, f in enumerate(fits):
        label = rf"$\rho_1 = {f['rho1']:g}$"
        ax1.plot(L, tb[:, j], color=colors[j], lw=1.5, label=label)
        ax2.loglog(L, np.abs(dev[:, j]), color=colors[j], lw=1.5)
    fitted = [f["fit"] for f in fits if f["fit"]]
    for i, g in enumerate(fitted):
        Lw = np.geomspace(*g["window"], 50)
        ax2.loglog(Lw, g["log_a"] * np.log(Lw) / Lw + g["log_b"] / Lw, color="tab:orange", lw=1.5, ls=(0, (3, 2)),
                   label=r"fit $(a\log L + b)/L$ over its window" if i == 0 else None)
    # Corollary 1's continuum profile for the pair closest to 1.
    top = max(f["rho1"] for f in fits)
    if 0.9 <= top < 1.0:
        ax1.plot(L, continuum_profile(L, 1.0 - top), color="tab:red", lw=1.6,
                 ls=(0, (2, 2)), label=rf"continuum profile, $\rho_1={top:g}$")
    ax1.axhline(0.25, color="k", lw=1.2, ls=":", label="limit 1/4")
    depth_axis(ax1, L)
    ax1.set(xlabel=r"depth $L$", ylabel=r"$\bar\Theta^{L}(x, x')$", title=r"normalized NTK against depth")
    ax1.grid(alpha=0.3)
    a_txt = (f"fitted $a$ = {min(g['log_a'] for g in fitted):.4f}..{max(g['log_a'] for g in fitted):.4f} "
             "(theory 3/8)") if fitted else "no pair fitted"
    ax2.set_ylim(bottom=max(np.abs(dev).min() / 2, 1e-12))
    depth_axis(ax2, L)
    ax2.set(xlabel=r"depth $L$", ylabel=r"$|\bar\Theta^{L}(x, x') - 1/4|$",
            title="distance to the limit (dips: crossings of 1/4)\n" + a_txt)
    ax2.grid(alpha=0.3)

    finite = np.isfinite(onset_depth)
    ax3.loglog(omr_grid[finite], onset_depth[finite], "o", ms=4, color="tab:blue",
               label=r"onset depth $L_{\rm onset}(\rho_1)$")
    xs = np.geomspace(*law.range_one_minus_rho, 50)
    ax3.loglog(xs, law(xs), color="k", lw=1.3, label=rf"fit ${law.C:.3f}\,(1-\rho_1)^{{-{law.q:.4f}}}$")
    xt = np.geomspace(omr_grid.min(), omr_grid.max(), 100)
    ax3.loglog(xt, ONSET_CONSTANT * xt**-0.5, color="tab:red", lw=1.2, ls="--",
               label=rf"continuum ${ONSET_CONSTANT:.3f}\,(1-\rho_1)^{{-1/2}}$")
    ax3.axvspan(*law.range_one_minus_rho, color="0.85", alpha=0.5, lw=0, label="fit range")
    label_axes(ax3, r"$1 - \rho_1$", r"$L_{\rm onset}$",
               "Corollary 1: depth where the distance\nhas halved from its peak", legend_loc="upper right")
    # The fourth slot holds the legend of the first two panels.
    key.axis("off")
    handles, labels = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    key.legend(handles + h2, labels + l2, loc="center", title="the pairs, in both upper panels")
    save_figure(out, fig, "fig2.png", r"Figure 2: ReLU NTK on the sphere, $\sigma_w^2 = 2$, no bias, "
                f"depths 1..{config.depth:,}")


def _summary(config, results) -> str:
    fits, law, at_depth = results["decay_fits"], results["onset_law"], results["at_depth"]
    last = at_depth[-1]
    lines = [
        "# Figure 2: the normalized NTK against depth",
        "",
        f"Pairs on the sphere with starting correlations {', '.join(f'{r:g}' for r in results['correlations'])}; "
        f"ReLU, W_std^2 = 2, no bias; depths 1..{config.depth} (float64 angle recursion).",
        "",
        "## Decay of Thetabar^L - 1/4",
        "",
        "Law fitted on log scale: (a log L + b) / L (theory: a = 3/8, b = 3 pi C/4 - 1/8, "
        "C read off the trace) against a power law c L^-p.",
        "",
        "| rho_1 | onset | window | a | b | b (theory) | log law: max rel. resid. | p "
        "| power law: max rel. resid. | better | local exponent at L | abs(e_{L+1}) / abs(e_L) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fits:
        g = f["fit"]
        if g is None:
            lines.append(f"| {f['rho1']:g} | {float(f['onset']):g} | skipped: {f['skipped']} "
                         "| | | | | | | | | |")
            continue
        lines.append(
            f"| {f['rho1']:g} | {float(f['onset']):g} | {g['window'][0]}..{g['window'][1]} "
            f"| {g['log_a']:.4f} | {g['log_b']:.4f} | {float(f['predicted_b']):.4f} "
            f"| {g['log_max_rel']:.1e} | {g['power_p']:.4f} | {g['power_max_rel']:.1e} "
            f"| {g['better']} | {g['local_exponent']:.4f} | {g['step_ratio']:.8f} |"
        )
    lines += [
        "",
        "## At decades of depth",
        "",
        "| depth | min..max Thetabar - 1/4 | min..max L (Thetabar - 1/4) "
        "| min..max L^2 (1 - rho_L) / (9 pi^2 / 2) |",
        "|---|---|---|---|",
    ]
    for row in at_depth:
        d, ld, lm = (np.asarray(row[k]) for k in
                     ("thetabar_minus_quarter", "L_times_deviation", "L2_one_minus_rho_over_9pi2_2"))
        lines.append(f"| {row['depth']} | {d.min():.3e}..{d.max():.3e} | {ld.min():.4g}..{ld.max():.4g} "
                     f"| {lm.min():.6f}..{lm.max():.6f} |")
    lines += ["", "## Finding", "", *_finding(config, fits, law, last), "",
              "Files: fig2.png; thetabar.csv (every sampled depth and pair); fits.csv (the decay fits); "
              "onset.csv (onset depths against 1 - rho_1); results.json."]
    return "\n".join(lines)


def _finding(config, fits, law, last) -> list[str]:
    """The summary's findings, each computed from the numbers it quotes."""
    lines = []
    fitted = [f["fit"] for f in fits if f["fit"]]
    lm = np.asarray(last["L2_one_minus_rho_over_9pi2_2"])
    if fitted:
        a, ps, ratios = ([g[k] for g in fitted] for k in ("log_a", "power_p", "step_ratio"))
        lmax = max(g["log_max_rel"] for g in fitted)
        pmin, pmax = min(g["power_max_rel"] for g in fitted), max(g["power_max_rel"] for g in fitted)
        db = max(abs(f["fit"]["log_b"] - float(f["predicted_b"])) for f in fits if f["fit"])
        n_log = sum(g["better"] == "log" for g in fitted)
        lines.append(
            f"Fitting (a log L + b)/L to abs(Thetabar^L - 1/4) beyond {config.fit_after_onset:g} "
            f"onset depths and within the last {config.fit_decades:g} decades gives "
            f"a = {min(a):.4f}..{max(a):.4f} over the {len(fitted)} pairs fitted (the recursion "
            f"predicts 3/8 = 0.375 for every pair, asymptotically) and b within {db:.2g} of "
            f"3 pi C/4 - 1/8, with relative residuals at most {lmax:.1e}; the best power laws "
            f"c L^-p (p = {min(ps):.3f}..{max(ps):.3f}) leave {pmin:.1e}..{pmax:.1e}. The log law "
            f"fits better for {n_log} of {len(fitted)} pairs. "
            # Sublinear: each layer gains less than 2/L, as a decay slower than L^-2 does.
            + claim(all(0 < 1 - r < 2 / (config.depth - 1) for r in ratios),
                    "The convergence is sublinear ('logarithmic' in the sense of Definition 7): ",
                    "The convergence is not visibly sublinear at this depth: ")
            + f"abs(e_(L+1)) / abs(e_L) = {min(ratios):.8f}..{max(ratios):.8f} at L = {config.depth - 1}."
        )
    lines.append(
        f"At L = {last['depth']}, L^2 (1 - rho_L) is {lm.min():.5f}..{lm.max():.5f} times "
        f"Lemma 1's 9 pi^2 / 2, and max abs(Thetabar - 1/4) = "
        f"{np.abs(np.asarray(last['thetabar_minus_quarter'])).max():.3e}."
    )
    lo, hi = law["range_one_minus_rho"]
    lines.append(
        f"Corollary 1: the decay starts (deviation halved from its peak) at L_onset = "
        f"{law['C']:.3f} (1 - rho_1)^-{law['q']:.4f} (fit over 1 - rho_1 in {lo:.1e}..{hi:.1e}, "
        f"residuals <= {law['max_rel']:.1e}); at the smallest 1 - rho_1, theta_1 L_onset = "
        f"{law['theta_onset']:.4f} against the continuum limit {ONSET_THETA_CONSTANT:.4f} "
        f"(= {ONSET_CONSTANT:.4f} (1 - rho_1)^-1/2)."
    )
    return lines
