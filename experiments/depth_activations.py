"""Depth for every activation: the normalized NTK and the correlation in the ordered phase, at the edge
of chaos and in the chaotic phase, with the phase diagram (docs/activations.md#the-edge-of-chaos).

For each activation and bias scale, three weight scales: below the edge of chaos (ordered), on it,
and above it (chaotic). For pairs of inputs at the variance fixed point with starting correlations
``rho_1``, the exact kernels at depths up to ``max_depth`` give ``rho_L`` and ``Thetabar^L``; their
approach to the theory's limit (``ntkdepth.theory.edge_of_chaos.ntk_depth_limit``) is fitted: the
ratio per layer where it is geometric, the exponent in ``L`` at the edge. The phase diagram shows
the correlation depth scale ``xi_c`` over ``(W_std^2, b_std^2)`` with the edge ``chi_1 = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.plotting import depth_axis, pyplot, save_figure
from ntkdepth.reporting import as_numbers, claim, table
from ntkdepth.runs import RunDir

NAME = "depth-activations"
DESCRIPTION = "normalized NTK and correlation against depth for every activation: ordered, edge of chaos, chaotic"

PHASES = ("ordered", "edge", "chaotic")


@dataclass(frozen=True)
class Config:
    activations: list[str] = setting(["relu", "tanh", "erf", "gelu", "silu"], help="activations (names)")
    b_std: float = setting(0.1, help="bias scale of the three settings of each activation", min=0.0, max=10.0)
    phase_factor: float = setting(1.25, help="W_std of the ordered / chaotic settings: the edge's divided / "
                                             "multiplied by this", min=1.01, max=4.0)
    starts: list[float] = setting([-0.5, 0.0, 0.5, 0.9], help="starting correlations rho_1", min=-1.0, max=0.999999)
    max_depth: int = setting(10_000, help="the deepest network", min=10, max=10_000_000)
    n_depths: int = setting(40, help="depths recorded, log-spaced in 1..max_depth", min=5, max=400)
    grid: int = setting(24, help="points per axis of the phase diagram", min=4, max=200)
    w2_max: float = setting(4.0, help="the phase diagram's largest W_std^2", min=0.5, max=50.0)
    b2_max: float = setting(0.5, help="the phase diagram's largest b_std^2", min=0.01, max=10.0)

    def check(self):
        from ntkdepth.kernels import activation

        for name in self.activations:
            activation(name)


def _depths(config) -> np.ndarray:
    return np.unique(np.round(np.geomspace(1, config.max_depth, config.n_depths)).astype(int))


def _pair_inputs(rho1: np.ndarray, W: float, b: float, q: float) -> np.ndarray:
    """``[1 + S, 2]``: a reference input and one per starting correlation, all with ``Sigma^1(x, x) = q``."""
    r2 = 2.0 * (q - b * b) / (W * W) if math.isfinite(q) and q > b * b else 2.0
    t = np.arccos(rho1)
    pts = np.stack([np.cos(t), np.sin(t)], 1)
    return math.sqrt(r2) * np.vstack([[1.0, 0.0], pts])


def run(config: Config, out: RunDir) -> dict:
    import jax

    from ntkdepth.kernels import activation, kernel_trace
    from ntkdepth.theory.edge_of_chaos import edge_of_chaos, mean_field, ntk_depth_limit

    depths = _depths(config)
    starts = np.asarray(config.starts, np.float64)
    b = config.b_std
    settings, curves = {}, {}
    for name in config.activations:
        act = activation(name)

        def compute(act=act):
            w_edge = float(edge_of_chaos(act, b))
            if not math.isfinite(w_edge):
                w_edge = math.sqrt(2.0)
            ws = {"ordered": w_edge / config.phase_factor, "edge": w_edge, "chaotic": w_edge * config.phase_factor}
            arrays = {}
            for phase, W in ws.items():
                mf = mean_field(act, W, b)
                limit = ntk_depth_limit(act, W, b)
                x = _pair_inputs(starts, W, b, float(mf.q_star))
                with jax.enable_x64(True):
                    tr = kernel_trace(x, depth=int(depths.max()), layers=depths, activation=act, W_std=W, b_std=b,
                                      get=("rho", "ntk_normalized"), dtype="float64")
                bound = tr.error_bound
                arrays.update({
                    f"{phase}_error_bound": float("nan") if bound is None else float(bound),
                    f"{phase}_W": W, f"{phase}_q_star": float(mf.q_star), f"{phase}_c_star": float(mf.c_star),
                    f"{phase}_chi_1": float(mf.chi_1), f"{phase}_chi_c": float(mf.chi_c),
                    f"{phase}_xi_c": float(mf.xi_c), f"{phase}_phase": str(mf.phase),
                    f"{phase}_limit": limit.value, f"{phase}_ratio": limit.ratio,
                    f"{phase}_rho": np.asarray(tr.rho)[:, 0, 1:], f"{phase}_tbar": np.asarray(tr.ntk_normalized)[:, 0, 1:],
                })
            return arrays

        # The stage's name changes with what it stores (here: with the Hermite tail), so that a
        # folder's older stage files are computed anew rather than read.
        a = out.stage(f"kernels-{name}", compute)
        settings[name], curves[name] = {}, {}
        for phase in PHASES:
            s = {k: (a[f"{phase}_{k}"].item() if a[f"{phase}_{k}"].ndim == 0 else a[f"{phase}_{k}"])
                 for k in ("W", "q_star", "c_star", "chi_1", "chi_c", "xi_c", "phase", "limit", "ratio",
                           "error_bound")}
            s["phase"] = str(s["phase"])
            s.update(_fit(depths, a[f"{phase}_tbar"], a[f"{phase}_rho"], s))
            settings[name][phase] = s
            curves[name][phase] = {"rho": a[f"{phase}_rho"], "ntk_normalized": a[f"{phase}_tbar"]}

    diagram = out.stage("phase-diagram", lambda: _phase_diagram(config))
    rows = [[name, phase, s["W"], s["phase"], s["q_star"], s["chi_1"], s["c_star"], s["limit"],
             s["deepest_finite_depth"], s["measured_at_max_depth"], s["fitted_ratio"], s["ratio"],
             s["fitted_exponent"], s["error_bound"]]
            for name, by_phase in settings.items() for phase, s in by_phase.items()]
    columns = ["activation", "setting", "W_std", "phase", "q_star", "chi_1", "c_star", "limit",
               "deepest_finite_depth", "Thetabar_there", "fitted_ratio", "theory_ratio", "fitted_exponent",
               "hermite_tail_per_layer"]
    return {"depths": depths, "starts": starts, "settings": settings, "curves": curves,
            "phase_diagram": {k: np.asarray(v) for k, v in diagram.items()},
            "tables": {"depth_activations.csv": table(columns, rows)}}


def _fit(depths, tbar, rho, s) -> dict:
    """How ``Thetabar^L`` approaches its limit: the geometric ratio per layer, or the exponent in ``L``.

    Only the depths up to the first whose kernels are not finite count: where the variance grows
    without bound it overflows float64 at some depth (``deepest_finite_depth``), and the kernels
    past it are not numbers.
    """
    finite = np.all(np.isfinite(tbar), axis=1) & np.all(np.isfinite(rho), axis=1)
    n_ok = int(np.argmin(finite)) if not finite.all() else len(depths)
    deepest = int(depths[n_ok - 1]) if n_ok else 0
    out = {"measured_at_max_depth": float(np.mean(tbar[n_ok - 1])) if n_ok else float("nan"),
           "deepest_finite_depth": deepest, "fitted_ratio": float("nan"), "fitted_exponent": float("nan")}
    limit = s["limit"]
    if not math.isfinite(limit) or n_ok == 0:
        return out
    depths, tbar = depths[:n_ok], tbar[:n_ok]
    gap = np.abs(tbar - limit).mean(1)
    ok = (gap > 1e-13) & (depths >= 4)
    if ok.sum() < 3:
        return out
    L, g = depths[ok].astype(float), gap[ok]
    if s["phase"] == "edge" or s["phase"] == "unbounded":
        half = L >= np.sqrt(L.max())
        if half.sum() >= 3:
            out["fitted_exponent"] = float(np.polyfit(np.log(L[half]), np.log(g[half]), 1)[0])
    else:
        # log gap = a + b log L + L log r: a geometric approach with a power-law prefactor, fitted
        # before rounding takes over.
        first = g > 1e-10 * g.max()
        if first.sum() >= 4:
            A = np.stack([np.ones(first.sum()), np.log(L[first]), L[first]], 1)
            coef = np.linalg.lstsq(A, np.log(g[first]), rcond=None)[0]
            out["fitted_ratio"] = float(np.exp(coef[2]))
    return out


def _phase_diagram(config) -> dict:
    from ntkdepth.theory.edge_of_chaos import edge_of_chaos, mean_field

    w2 = np.linspace(config.w2_max / config.grid, config.w2_max, config.grid)
    b2 = np.linspace(0.0, config.b2_max, config.grid)
    W, B = np.meshgrid(np.sqrt(w2), np.sqrt(b2))
    out = {"w2": w2, "b2": b2}
    b_line = np.sqrt(np.linspace(0.0, config.b2_max, 4 * config.grid))
    out["edge_b2"] = b_line**2
    for name in config.activations:
        mf = mean_field(name, W, B)
        out[f"{name}_xi_c"] = mf.xi_c
        out[f"{name}_chi_1"] = mf.chi_1
        out[f"{name}_edge_w2"] = edge_of_chaos(name, b_line, W_max=math.sqrt(config.w2_max) * 1.5) ** 2
    return out


def report(config: Config, results: dict, out) -> dict:
    results = as_numbers(results)  # NaN and inf come back from JSON as strings
    _plot_depth(out, config, results)
    _plot_phases(out, config, results)
    out.write_summary(_summary(config, results))
    return {f"{name} {phase} Thetabar(L_max)": round(s["measured_at_max_depth"], 4)
            for name, by_phase in results["settings"].items() for phase, s in by_phase.items()}


def _plot_depth(out, config, results):
    from matplotlib.lines import Line2D

    plt = pyplot()
    names = list(results["settings"])
    depths = np.array(results["depths"], float)
    # One row per activation: the normalized NTK and the correlation side by side.
    fig, axes = plt.subplots(len(names), 2, figsize=(10.5, 3.5 * len(names) + 0.3), squeeze=False)
    colors = {"ordered": "C0", "edge": "k", "chaotic": "C3"}
    styles = ["-", "--", "-.", ":"]
    for row, name in enumerate(names):
        ax, ax_rho = axes[row]
        for phase in PHASES:
            s = results["settings"][name][phase]
            c = results["curves"][name][phase]
            tbar = np.array(c["ntk_normalized"])
            rho = np.array(c["rho"])
            label = f"{phase}: $\\sigma_w^2 = {s['W'] ** 2:.2f}$" + ("" if s["phase"] == phase else f" (phase: {s['phase']})")
            for i in range(tbar.shape[1]):
                ls = styles[i % len(styles)]
                ax.plot(depths, tbar[:, i], ls=ls, color=colors[phase], lw=1.3, alpha=0.85,
                        label=label if i == 0 else None)
                ax_rho.plot(depths, np.maximum(1.0 - rho[:, i], 1e-17), ls=ls, color=colors[phase], lw=1.3,
                            alpha=0.85)
            if s["limit"] is not None and math.isfinite(s["limit"]):
                ax.axhline(s["limit"], color=colors[phase], ls=":", lw=1)
        ax.set(xscale="log", ylim=(-0.05, 1.05), xlabel="depth $L$", ylabel=r"$\bar\Theta^L(x, x')$",
               title=f"{name}: normalized NTK")
        ax_rho.set(xscale="log", yscale="log", xlabel="depth $L$", ylabel=r"$1 - \rho_L(x, x')$",
                   title=f"{name}: correlation")
        ax_rho.legend(*ax.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.02, 0.5),
                      title=f"{name}: the weight scales")
        for a_ in (ax, ax_rho):
            depth_axis(a_, depths)
            a_.grid(alpha=0.3)
    starts = results["starts"]
    handles = [Line2D([], [], color="0.3", ls=styles[i % len(styles)], lw=1.3) for i in range(len(starts))]
    labels = [f"$\\rho_1 = {r:g}$" for r in starts]
    handles.append(Line2D([], [], color="0.3", ls=":", lw=1))
    labels.append("dotted: the theory's limit of $\\bar\\Theta^L$")
    save_figure(out, fig, "depth_activations.png",
                f"Depth for every activation, $\\sigma_b = {config.b_std:g}$: input pairs in three settings "
                "of the weight scale", legend=(handles, labels, len(handles)))


def _plot_phases(out, config, results):
    import matplotlib.colors

    plt = pyplot()
    d = results["phase_diagram"]
    names = list(results["settings"])
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols + 1.2, 3.7 * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    w2, b2 = np.array(d["w2"]), np.array(d["b2"])
    for ax, name in zip(axes.flat, names):
        xi = np.array(d[f"{name}_xi_c"], float)
        xi = np.where(np.isfinite(xi), xi, np.nan)
        mesh = ax.pcolormesh(w2, b2, np.clip(xi, 0.5, 1e3), shading="nearest", cmap="viridis",
                             norm=matplotlib.colors.LogNorm(0.5, 1e3))
        ax.plot(np.array(d[f"{name}_edge_w2"], float), np.array(d["edge_b2"]), "-", color="C1", lw=2.5,
                label=r"edge of chaos $\chi_1 = 1$")
        ax.set(xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$", title=f"{name}: depth scale $\\xi_c$",
               xlim=(w2.min(), w2.max()), ylim=(b2.min(), b2.max()))
    fig.colorbar(mesh, ax=axes.ravel().tolist(), label=r"$\xi_c$ in layers (white: infinite)", shrink=0.9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    save_figure(out, fig, "depth_activations_phases.png",
                r"Phase diagrams: the correlation depth scale $\xi_c$ over $(\sigma_w^2, \sigma_b^2)$",
                legend=(handles, labels, 1))


def _summary(config, results) -> str:
    depths = results["depths"]
    L = depths[-1]
    lines = [
        "# Depth for every activation",
        "",
        f"Exact kernels (float64) of networks at depths 1..{L:,} for input pairs at the variance fixed point with "
        f"rho_1 in {results['starts']}, bias scale {config.b_std}; the weight scale on the edge of chaos "
        f"(chi_1 = 1) and {config.phase_factor}x below and above it. Limits and rates from the mean-field theory "
        "(docs/activations.md#the-depth-limit).",
        "",
        "| activation | setting | W_std | phase | chi_1 | c* | limit of Thetabar | deepest finite L | Thetabar there "
        "| fitted ratio per layer | theory | fitted exponent in L |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"
    findings, limits = [], []
    for name, by_phase in results["settings"].items():
        for phase, s in by_phase.items():
            deepest = s.get("deepest_finite_depth", L)
            lines.append(f"| {name} | {phase} | {s['W']:.4g} | {s['phase']} | {fmt(s['chi_1'])} | {fmt(s['c_star'])} | "
                         f"{fmt(s['limit'])} | {deepest:,} | {fmt(s['measured_at_max_depth'])} | "
                         f"{fmt(s['fitted_ratio'])} | {fmt(s['ratio'])} | {fmt(s['fitted_exponent'])} |")
            if deepest < L:
                limits.append(f"- {name} at the {phase} setting: the variance grows without bound and overflows "
                              f"float64 past depth {deepest:,}; its kernels are reported to that depth.")
            bound = s.get("error_bound")
            if bound is not None and math.isfinite(bound) and bound > 1e-10:
                limits.append(f"- {name} at the {phase} setting: the Hermite expansion's relative tail reaches "
                              f"{bound:.1e} per layer at the variances this network reaches; its kernels are "
                              "accurate to about that per layer, not to rounding.")
            lim = s["limit"]
            if lim is not None and math.isfinite(lim) and math.isfinite(s["measured_at_max_depth"]):
                gap = abs(s["measured_at_max_depth"] - lim)
                findings.append((name, phase, s, gap))
    lines += ["", "## Findings", ""]
    for name, phase, s, gap in findings:
        at = s.get("deepest_finite_depth", L)
        if s["phase"] in ("edge", "unbounded"):
            lines.append(f"- {name} at the {phase} setting ({s['phase']}): Thetabar at L = {at:,} is "
                         f"{s['measured_at_max_depth']:.4f}, {gap:.2g} from the limit {s['limit']:.4g}; "
                         + claim(math.isfinite(s["fitted_exponent"]) and s["fitted_exponent"] < -0.5,
                                 f"the gap falls like L^{s['fitted_exponent']:.2f} (theory: log L / L).",
                                 "the gap does not yet fall like 1/L at these depths."))
        else:
            ratio, theory = s["fitted_ratio"], s["ratio"]
            agree = math.isfinite(ratio) and math.isfinite(theory) and abs(ratio - theory) <= 0.02 * theory
            lines.append(f"- {name}, {s['phase']}: Thetabar tends to {s['limit']:.4g} "
                         f"({s['measured_at_max_depth']:.4g} at L = {at:,}); fitted ratio per layer {fmt(ratio)} "
                         f"against the theory's {fmt(theory)}: "
                         + claim(agree, "they agree within 2%.", "they differ by more than 2%."))
    edges = [s for _, _, s, _ in findings if s["phase"] == "edge"]
    if edges:
        smooth = [s for s in edges if abs(s["limit"] - 1 / 3) < 1e-12]
        lines.append(f"- At the edge of chaos the smooth activations' normalized NTK tends to 1/3 and ReLU's to 1/4 "
                     f"(docs/activations.md#the-depth-limit): {len(smooth)} of {len(edges)} edge settings have the "
                     "smooth limit.")
    lines += limits
    lines += ["", "Files: depth_activations.png (Thetabar and 1 - rho against depth), depth_activations_phases.png "
              "(phase diagrams), depth_activations.csv."]
    return "\n".join(lines)
