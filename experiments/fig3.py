"""Figure 3: the correlation map f of a ReLU layer and its iterates (paper, Definition 5, Lemma 1).

On the sphere with W_std^2 = 2 and no bias, one ReLU layer maps the
correlation of two inputs through

    f(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi,    f'(rho) = (pi - arccos rho) / pi.

f is increasing, f(-1) = 0, f(1) = 1 and f(rho) > rho on [-1, 1), so its
iterates rho_{l+1} = f(rho_l) climb to the unique fixed point 1 (Lemma 1),
where f'(1) = 1: the approach is slow, 1 - rho_l ~ 9 pi^2 / (2 l^2). Four
panels: f with the diagonal and a cobweb; f'; rho_l against l; and 1 - rho_l
against l on log-log axes with Lemma 1's asymptote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.config import setting
from ntkdepth.kernels import correlation_map, correlation_map_derivative, correlation_trace
from ntkdepth.plotting import depth_axis, label_axes, pyplot, save_figure, sequential_colors
from ntkdepth.reporting import claim, table, table_column
from ntkdepth.runs import RunDir
from ntkdepth.theory.depth import RHO_DECAY_CONSTANT, iterations_to_reach, one_minus_rho_asymptote, rho_decay_ratio

NAME = "fig3"
DESCRIPTION = "the ReLU correlation map f, its fixed point 1 and its iterates rho_l = f^(l-1)(rho_1)"


@dataclass(frozen=True)
class Config:
    starts: list[float] = setting(
        [-1.0, -0.5, 0.0, 0.5, 0.9], help="starting correlations rho_1 of the iterates",
        min=-1.0, max=1.0,
    )
    iterations: int = setting(50, help="layers l = 1..this shown for the iterates", min=2)
    cobweb_starts: list[float] = setting(
        [-1.0, -0.6], help="starting correlations drawn as cobwebs on f", min=-1.0, max=1.0
    )
    cobweb_steps: int = setting(8, help="steps of each cobweb", min=1, max=200)
    grid_points: int = setting(2001, help="points of the grid on [-1, 1] for f and f'", min=11)
    count_starts: list[float] = setting(
        [-1.0, 0.0, 0.5], help="starting correlations for the iteration counts", min=-1.0, max=1.0
    )
    count_threshold: float = setting(
        1e-2, help="count the iterations until 1 - rho < this", min=1e-12, max=1.0
    )
    count_max_depth: int = setting(
        100_000, help="give up counting beyond this many layers", min=10, max=10_000_000
    )

    def check(self):
        if not self.starts:
            raise ValueError("starts: give at least one starting correlation")


def run(config: Config, out: RunDir) -> dict:
    def compute():
        with jax.enable_x64(True):
            grid = np.linspace(-1.0, 1.0, config.grid_points)
            f = np.asarray(correlation_map(grid))
            fp = np.asarray(correlation_map_derivative(grid))
            it = correlation_trace(np.array(config.starts), depth=config.iterations)
            cnt = correlation_trace(np.array(config.count_starts), depth=config.count_max_depth)
            cob = correlation_trace(np.array(config.cobweb_starts), depth=config.cobweb_steps + 1)
            return {
                "grid": grid, "f": f, "fprime": fp,
                "iter_rho": it.rho, "iter_omr": it.one_minus_rho,
                "count_omr": cnt.one_minus_rho, "cobweb": cob.rho,
                "ends": np.asarray(correlation_map(np.array([-1.0, 1.0]))),
                "ends_prime": np.asarray(correlation_map_derivative(np.array([-1.0, 1.0]))),
            }

    a = out.stage("map", compute)
    grid, f, fp = a["grid"], a["f"], a["fprime"]
    inner = grid < 1.0
    gap = f - grid  # f(rho) - rho
    diffs = np.diff(f)
    counts = iterations_to_reach(a["count_omr"], config.count_threshold)
    layers = np.arange(1, config.iterations + 1)
    checks = {
        "f(-1)": float(a["ends"][0]), "f(1)": float(a["ends"][1]),
        "f'(-1)": float(a["ends_prime"][0]), "f'(1)": float(a["ends_prime"][1]),
        "min of f(rho_(i+1)) - f(rho_i) on the grid": float(diffs.min()),
        "f increasing on the grid": bool(np.all(diffs > 0)),
        "min of f(rho) - rho on [-1, 1) (grid)": float(gap[inner].min()),
        "f(rho) > rho on [-1, 1) (grid)": bool(np.all(gap[inner] > 0)),
        "max of f'(rho) on [-1, 1) (grid)": float(fp[inner].max()),
        "argmin of f(rho) - rho on [-1, 1) (grid)": float(grid[inner][np.argmin(gap[inner])]),
        "fixed points on the grid": [float(x) for x in grid[np.abs(gap) <= 1e-15]],
    }
    iterates = {"rho": a["iter_rho"].T, "one_minus_rho": a["iter_omr"].T}  # [start, layer], as config.starts
    results = {
        "checks": checks,
        "map": {"rho": grid, "f": f, "fprime": fp, "f_minus_rho": gap},  # [grid_points] each
        "iterates": iterates,
        # Iterations from each of config.count_starts; 1 - rho ~ 9 pi^2 / (2 l^2) alone reaches the
        # threshold after sqrt(9 pi^2 / (2 threshold)) - 1 of them.
        "iterations_to_threshold": {"iterations": counts, "threshold": config.count_threshold,
                                    "asymptote_estimate": math.sqrt(RHO_DECAY_CONSTANT / config.count_threshold) - 1},
        "at_last_layer": {  # [start] each, as config.starts
            "layer": config.iterations,
            "one_minus_rho": iterates["one_minus_rho"][:, -1],
            "L2_one_minus_rho_over_9pi2_2": rho_decay_ratio([config.iterations], iterates["one_minus_rho"][:, -1])[0],
        },
        "cobweb": a["cobweb"].T,  # [start, step]: rho_1 .. rho_(steps + 1)
    }
    results["tables"] = _tables(config, results)
    return results


def _tables(config, results) -> dict:
    """``map.csv`` (f, f' and f - rho on the grid) and ``iterates.csv`` (rho_l of every start), from
    the results' arrays."""
    m, it = results["map"], results["iterates"]
    layers = np.arange(1, config.iterations + 1)
    asymptote = one_minus_rho_asymptote(layers)
    return {
        "map.csv": table(["rho", "f", "fprime", "f_minus_rho"], zip(m["rho"], m["f"], m["fprime"], m["f_minus_rho"])),
        "iterates.csv": table(
            ["rho1", "layer", "rho", "one_minus_rho", "one_minus_rho_asymptote"],
            [[float(r), int(ell), it["rho"][j, k], it["one_minus_rho"][j, k], asymptote[k]]
             for j, r in enumerate(config.starts) for k, ell in enumerate(layers)]),
    }


def report(config: Config, results: dict, out) -> dict:
    checks, counts = results["checks"], results["iterations_to_threshold"]
    _plot(out, config, results)
    out.write_summary(_summary(config, checks, counts, results["at_last_layer"]))
    return {
        "f(-1), f(1), f'(1)": ", ".join(f"{checks[k]:.3g}" for k in ("f(-1)", "f(1)", "f'(1)")),
        f"iterations to 1 - rho < {config.count_threshold:g}":
            ", ".join(f"{c} from {r:g}" for c, r in zip(counts["iterations"], config.count_starts)),
        "figure": str(out.file("fig3.png")),
    }


def _plot(out, config, results):
    grid, f, fp = (np.asarray(results["map"][c]) for c in ("rho", "f", "fprime"))
    rho, omr = (np.asarray(results["iterates"][c]).T for c in ("rho", "one_minus_rho"))  # [layer, start]
    layers = np.arange(1, config.iterations + 1)
    plt = pyplot()
    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(11.5, 10))

    ax1.plot(grid, f, color="tab:blue", lw=1.8, label=r"$f(\rho)$")
    ax1.plot(grid, grid, color="k", lw=0.8, ls="--", label=r"diagonal $f(\rho) = \rho$")
    cob_colors = ["tab:red", "tab:purple", "tab:orange", "tab:brown"]
    for j, (r1, r) in enumerate(zip(config.cobweb_starts, results["cobweb"])):
        # Start on the diagonal at (rho_1, rho_1), go up to f, across to the diagonal, ...
        xs, ys = [r[0]], [r[0]]
        for k in range(len(r) - 1):
            xs += [r[k], r[k + 1]]
            ys += [r[k + 1], r[k + 1]]
        ax1.plot(xs, ys, color=cob_colors[j % len(cob_colors)], lw=1.1,
                 ls="-" if j % 2 == 0 else (0, (3, 2)),
                 label=rf"cobweb from $\rho_1 = {r1:g}$ ({config.cobweb_steps} steps)")
    ax1.plot([1], [1], "o", color="k", ms=6, label=r"fixed point $f(1) = 1$")
    ax1.plot([-1], [0], "s", color="tab:green", ms=6, label=r"$f(-1) = 0$")
    ax1.set_xlim(-1.05, 1.05)
    ax1.set_ylim(-1.05, 1.05)
    ax1.set_aspect("equal")
    label_axes(ax1, r"$\rho$", r"$f(\rho)$", r"correlation map $f$ (Definition 5)", legend_loc="lower right")

    ax2.plot(grid, fp, color="tab:blue", lw=1.8, label=r"$f'(\rho) = (\pi - \arccos\rho)/\pi$")
    ax2.axhline(1.0, color="k", lw=0.8, ls=":", label=r"$f'(1) = 1$")
    ax2.plot([1], [1], "o", color="k", ms=6)
    for ax in (ax1, ax2):
        ax.set_xticks(np.linspace(-1.0, 1.0, 5))
    label_axes(ax2, r"$\rho$", r"$f'(\rho) = \dot\Sigma^{\ell+1}$", r"derivative $f'$",
               legend_loc="upper left")

    colors = sequential_colors(len(config.starts))
    for j, r1 in enumerate(config.starts):
        ax3.plot(layers, rho[:, j], "o-", ms=2.5, lw=1, color=colors[j], label=rf"$\rho_1 = {r1:g}$")
        ax4.loglog(layers, omr[:, j], "o-", ms=2.5, lw=1, color=colors[j], label=rf"$\rho_1 = {r1:g}$")
    ax3.axhline(1.0, color="k", lw=1, ls=":", label="fixed point 1")
    label_axes(ax3, r"layer $\ell$", r"$\rho_\ell = f^{\circ(\ell-1)}(\rho_1)$",
               r"iterates $\rho_{\ell+1} = f(\rho_\ell)$", legend_loc="lower right")

    depth_axis(ax3, layers)
    ax4.loglog(layers, one_minus_rho_asymptote(layers), color="k", lw=1, ls="--",
               label=r"Lemma 1: $9\pi^2 / (2\ell^2)$")
    ax4.axhline(config.count_threshold, color="tab:red", lw=0.8, ls=":",
                label=rf"$1 - \rho = {config.count_threshold:g}$")
    depth_axis(ax4, layers)
    label_axes(ax4, r"layer $\ell$", r"$1 - \rho_\ell$", r"distance to the fixed point",
               legend_loc="upper right")
    save_figure(out, fig, "fig3.png", r"Figure 3: the ReLU correlation map on the sphere ($\sigma_w^2 = 2$, no bias)")


def _summary(config, checks, counts, last) -> str:
    reached = "; ".join(
        f"{c} from rho = {r:g}" if c >= 0 else f"not within {config.count_max_depth} layers from rho = {r:g}"
        for c, r in zip(counts["iterations"], config.count_starts)
    )
    l2 = last["L2_one_minus_rho_over_9pi2_2"]
    lines = [
        "# Figure 3: the correlation map f and its iterates",
        "",
        f"Grid of {config.grid_points} points on [-1, 1]; iterates from "
        f"{', '.join(f'{r:g}' for r in config.starts)} for l = 1..{config.iterations}.",
        "",
        "| check | value |",
        "|---|---|",
    ]
    for key, value in checks.items():
        lines.append(f"| {key} | {value if not isinstance(value, float) else format(value, '.6g')} |")
    lines += [
        "",
        "## Finding",
        "",
        _finding(checks)
        + f"Iterations to reach 1 - rho < {config.count_threshold:g}: {reached} "
        f"(Lemma 1's 9 pi^2 / (2 l^2) alone predicts about "
        f"{counts['asymptote_estimate']:.0f}). At l = {last['layer']}, l^2 (1 - rho_l) is "
        f"{min(l2):.3f}..{max(l2):.3f} times 9 pi^2 / 2.",
        "",
        "Files: fig3.png; map.csv (f, f' and f - rho on the grid); iterates.csv (rho_l for every "
        "start and layer); results.json.",
    ]
    return "\n".join(lines)


def _finding(checks) -> str:
    """What the grid shows of f, each claim checked against the numbers it quotes."""
    fp_max, fp_one = checks["max of f'(rho) on [-1, 1) (grid)"], checks["f'(1)"]
    step, gap = checks["min of f(rho_(i+1)) - f(rho_i) on the grid"], checks["min of f(rho) - rho on [-1, 1) (grid)"]
    climbs = checks["f(rho) > rho on [-1, 1) (grid)"] and fp_max < 1
    return (
        claim(checks["f increasing on the grid"], "f is increasing", "f is not increasing")
        + f" (smallest step on the grid {step:.2e}"
        + claim(step > 0, " > 0), ", "), ")
        + f"f(-1) = {checks['f(-1)']:.3g} and "
        + claim(checks["f(rho) > rho on [-1, 1) (grid)"], "f(rho) > rho", "not f(rho) > rho everywhere")
        + f" on [-1, 1) (smallest gap on the grid {gap:.2e}, at rho = "
        f"{checks['argmin of f(rho) - rho on [-1, 1) (grid)']:.6g}); "
        + claim(fp_max < 1, "since f'(rho) < 1 there", "yet f'(rho) reaches 1 there")
        + f" (largest {fp_max:.6f}), "
        + claim(climbs, "f(rho) - rho decreases to its only zero, the fixed point 1, where f'(1) = ",
                "the grid does not show a single fixed point at 1; f'(1) = ")
        + f"{fp_one:.3g}"
        + claim(climbs and fp_one == 1, ": the iterates climb to 1 but ever more slowly. ", ". ")
    )
