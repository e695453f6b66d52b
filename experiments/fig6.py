"""Figure 6: the norm of the projection term against depth, for bounded stopping times.

n points uniform on the sphere S^{d-1}; the predictor of the normalized NTK
Thetabar^L (paper, section 6.4; MATH.md, section 4) has the projection
operator P_t = Thetabar^{-1} (I - exp(-t Thetabar)) with
|P_t| = max_i (1 - exp(-t lambda_i)) / lambda_i <= min(t, 1 / lambda_min).
Stopping at a bounded time keeps |P_t| <= t whatever the depth; at t = inf,
|P_inf| = 1 / lambda_min, which is large at shallow depth when points are
close (or n > d), and settles at 4/3 as Thetabar^L approaches its limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.data import load_points
from ntkdepth.grids import log_grid
from ntkdepth.runs import RunDir
from ntkdepth.theory import depth_scan

NAME = "fig6"
DESCRIPTION = "norm of the projection operator P_t against depth for bounded stopping times"


@dataclass(frozen=True)
class Config:
    ns: list[int] = setting([50, 200], help="dataset sizes n", min=2, max=5000)
    dim: int = setting(10, help="input dimension d (points on S^{d-1})", min=2)
    max_depth: int = setting(1000, help="deepest network", min=2)
    n_depths: int = setting(30, help="depths scanned, log-spaced in 1..max_depth", min=2)
    times: list[float] = setting([1.0, 10.0, 100.0], help="bounded stopping times t", min=0.0)
    seed: int = setting(0, help="seed of the data sample", min=0)


def run(config: Config, out: RunDir) -> dict:
    depths = log_grid(config.max_depth, config.n_depths)
    rng = np.random.default_rng(config.seed)
    scans = {}
    for n in config.ns:
        x = load_points("sphere", n, rng, dim=config.dim).x

        def compute(x=x):
            s = depth_scan(x, x[:1], depths, config.times)
            return {"lambda_min": s.lambda_min, "projection_norm": s.projection_norm,
                    "projection_norm_inf": s.projection_norm_inf}

        print(f"  n = {n}: {len(depths)} depths up to {config.max_depth}", flush=True)
        scans[n] = out.stage(f"scan_n{n}", compute)

    rows = []
    for n, s in scans.items():
        for k, d in enumerate(depths):
            rows.append([n, int(d), s["lambda_min"][k], *s["projection_norm"][k], s["projection_norm_inf"][k]])
    out.write_csv(
        "projection_norm.csv",
        ["n", "depth", "lambda_min", *[f"norm_P_t={t:g}" for t in config.times], "norm_P_inf"], rows,
    )
    limit = {t: (1 - np.exp(-0.75 * t)) / 0.75 for t in config.times}
    results = {
        "depths": depths,
        "limit_norm": {f"{t:g}": v for t, v in limit.items()} | {"inf": 4 / 3},
        "per_n": {
            str(n): {
                "lambda_min": s["lambda_min"],
                "norm_P_t": {f"{t:g}": s["projection_norm"][:, i] for i, t in enumerate(config.times)},
                "norm_P_inf": s["projection_norm_inf"],
            }
            for n, s in scans.items()
        },
    }
    out.write_json("results.json", results)
    _plot(out, config, depths, scans, limit)
    out.write_summary(_summary(config, depths, scans))
    n_big = config.ns[-1]
    return {
        f"|P_inf| at depth 1 / {depths[-1]} (n={n_big})":
            f"{scans[n_big]['projection_norm_inf'][0]:.3g} / {scans[n_big]['projection_norm_inf'][-1]:.4f}",
        "figure": str(out.file("fig6.png")),
    }


def _plot(out, config, depths, scans, limit):
    import matplotlib.pyplot as plt

    from ntkdepth.plotting import projection_norm_panels

    fig = projection_norm_panels(
        depths, scans, config.times, limit, lambda n: f"$n = {n}$ points on $S^{{{config.dim - 1}}}$",
        "Figure 6: norm of the projection operator against depth",
    )
    out.save_figure(fig, "fig6.png")
    plt.close(fig)


def _summary(config, depths, scans) -> str:
    lines = [
        "# Figure 6: norm of the projection term against depth",
        "",
        f"Points uniform on S^{config.dim - 1}, n in {config.ns}, depths {depths[0]}..{depths[-1]} "
        f"({len(depths)} log-spaced), stopping times {config.times} and infinity; kernel Thetabar^L.",
        "",
        "| n | depth | lambda_min | " + " | ".join(f"norm P_{t:g}" for t in config.times) + " | norm P_inf |",
        "|---|---|---|" + "---|" * (len(config.times) + 1),
    ]
    for n, s in scans.items():
        for k in sorted({0, int(np.searchsorted(depths, 5)), len(depths) - 1}):
            lines.append(
                f"| {n} | {depths[k]} | {s['lambda_min'][k]:.3e} | "
                + " | ".join(f"{v:.3f}" for v in s["projection_norm"][k])
                + f" | {s['projection_norm_inf'][k]:.3g} |"
            )
    n = config.ns[-1]
    s = scans[n]
    t_max = config.times[-1]
    lines += [
        "",
        f"Finding: with a bounded stopping time the norm stays below t at every depth "
        f"(for n = {n}, |P_{t_max:g}| is at most {np.max(s['projection_norm'][:, -1]):.3g}), while "
        f"at t = inf it is {s['projection_norm_inf'][0]:.3g} at depth {depths[0]} and falls to "
        f"{s['projection_norm_inf'][-1]:.4f} at depth {depths[-1]}, near the limit 4/3 of "
        "(3/4) I + (1/4) 1 1^T: depth stabilizes the predictor, early stopping bounds it at any depth.",
        "",
        "Files: fig6.png, projection_norm.csv, results.json.",
    ]
    return "\n".join(lines)
