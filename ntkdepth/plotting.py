"""Figures shared by the experiments: panels of pairs' kernels against depth, depth and width axes,
the projection-norm and ``lambda_min`` panels. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairGroup", "depth_axis", "depth_panels", "label_axes", "lambda_min_panels", "pair_values", "projection_norm_panels", "pyplot", "save_figure", "width_axis",
           "width_scaling_panel"]


@dataclass(frozen=True)
class PairGroup:
    """How a group of pairs is drawn: its name in the results, legend label, color, line style."""

    name: str
    label: str
    color: str
    linestyle: str = "-"


def pair_values(array: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``[depth, n_pairs]``: the entries ``array[:, i, j]`` of a ``[depth, n, n]`` trace."""
    idx = np.asarray(pairs)
    if idx.ndim != 2 or idx.shape[1] != 2:
        raise ValueError(f"pairs must be a sequence of (i, j); got shape {list(idx.shape)}")
    return np.asarray(array)[:, idx[:, 0], idx[:, 1]]


def pyplot():
    """``matplotlib.pyplot``, drawing off screen (the Agg backend): figures go to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_axes(ax, xlabel: str, ylabel: str, title: str, *, title_size=None, legend_size=8,
               legend_loc: str = "best", grid: str = "major") -> None:
    """Labels, title, legend and a light grid (``"major"`` or ``"both"`` ticks) of one panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    ax.legend(fontsize=legend_size, loc=legend_loc)
    ax.grid(alpha=0.3, which=grid)


def save_figure(out, fig, file: str, title: str, *, rect=None, **title_kw) -> str:
    """Gives ``fig`` its title, lays it out (within ``rect``, default the whole figure), saves it
    as ``file`` in the run folder ``out`` and closes it; returns ``file``."""
    fig.suptitle(title, **title_kw)
    fig.tight_layout(rect=rect)
    out.save_figure(fig, file)
    pyplot().close(fig)
    return file


def depth_panels(
    layers: np.ndarray,
    panels: Mapping[str, tuple[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    groups: Sequence[PairGroup],
    *,
    title: str,
    limits: Mapping[str, float] | None = None,
    from_layer_two: Sequence[str] = ("sigmadot",),
    legend_loc: str | Mapping[str, str] = "lower right",
    log_y: Sequence[str] = (),
):
    """One panel per quantity against depth (log axis), a quantile band and curves per group.

    Args:
      layers: ``[D]`` the depths.
      panels: ``name -> (title, {group name: (lo [D], hi [D], curves [D, c])})`` in
        panel order: each group's band between ``lo`` and ``hi`` (the 10% and
        90% quantiles over all its pairs) and ``c`` of its pairs as curves.
      groups: how each group is drawn.
      title: the figure's title.
      limits: ``name -> value`` drawn as a dotted line (panels not named get none).
      from_layer_two: panels drawn from the second depth on (``Sigmadot^1`` is
        undefined: no nonlinearity precedes the first layer).
      legend_loc: where the legends go: one matplotlib location, or one per panel name.
      log_y: panels drawn with a log-scaled y axis.

    Returns:
      The matplotlib figure (the caller saves and closes it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = np.asarray(layers)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.3))
    axes = np.atleast_1d(axes)
    for ax, (name, (panel_title, bands)) in zip(axes, panels.items()):
        start = 1 if name in from_layer_two else 0
        for group in groups:
            lo, hi, curves = (np.asarray(a, dtype=np.float64)[start:] for a in bands[group.name])
            ax.fill_between(layers[start:], lo, hi, color=group.color, alpha=0.12, lw=0)
            for c in range(curves.shape[1]):
                ax.plot(layers[start:], curves[:, c], color=group.color, lw=0.8, alpha=0.7,
                        ls=group.linestyle, label=group.label if c == 0 else None)
        if limits and name in limits:
            ax.axhline(limits[name], color="k", lw=1, ls=":", label=f"limit {limits[name]:g}")
        depth_axis(ax, layers[start:])
        if name in log_y:
            ax.set_yscale("log")
        ax.set_xlabel(r"depth $\ell$")
        ax.set_title(panel_title)
        ax.grid(alpha=0.3, which="both")
    for ax, name in zip(axes, panels):
        loc = legend_loc if isinstance(legend_loc, str) else legend_loc.get(name, "best")
        ax.legend(loc=loc, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def depth_axis(ax, depths) -> None:
    """A log-scaled x axis of depths labelled with plain numbers that never overlap.

    Ticks at 1, 10, 100, ...; over less than two decades also at 2 and 5
    times those. Minor ticks stay unlabelled.
    """
    import matplotlib.ticker

    ax.set_xscale("log")
    d = np.asarray(depths, dtype=np.float64)
    span = np.log10(d.max() / d.min()) if d.size and d.min() > 0 else 0.0
    subs = (1.0, 2.0, 5.0) if span < 2 else (1.0,)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def width_axis(ax, widths) -> None:
    """A log-scaled x axis labelled at exactly the given widths."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks([float(w) for w in widths])
    ax.set_xticklabels([f"{int(w):,}" for w in widths], rotation=45 if len(widths) > 5 else 0)


def width_scaling_panel(ax, widths, series: Mapping[str, tuple], *, ylabel: str, title: str,
                        title_size: float | None = None) -> None:
    """Measures against width on log-log axes, each with its fitted power law.

    ``series`` maps a legend label to ``(mean [W], sd [W] or None, fit, color)``
    at the ``[W]`` ``widths``; ``fit`` is ``None`` or a dict with ``exponent`` and
    ``prefactor`` (:func:`ntkdepth.stats.power_law_fits`), drawn as a line.
    """
    w = np.asarray(widths, dtype=float)
    for label, (mean, sd, fit, color) in series.items():
        ax.errorbar(w, mean, yerr=sd, fmt="o", color=color, capsize=3,
                    label=label if fit is None else f"{label}: slope {fit['exponent']:+.2f}")
        if fit:
            ax.plot(w, fit["prefactor"] * w ** fit["exponent"], "-", color=color, lw=1)
    width_axis(ax, w)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))


def projection_norm_panels(depths, scans: dict, times, limit: dict, panel_title, suptitle: str):
    """Figure 6's panels: ``|P_t|`` against depth, one panel per dataset size ``n``.

    ``scans[n]`` holds ``projection_norm [depths, times]`` and
    ``projection_norm_inf [depths]``; ``limit[t]`` is the deep limit at time t;
    ``panel_title(n)`` names a panel. Returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scans), figsize=(5.2 * len(scans), 4.2), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(times) + 1))
    for ax, (n, s) in zip(axes[0], scans.items()):
        # t = inf first, wide, dashed and with open markers: a large finite t that coincides
        # with it stays visible on top.
        p_inf = np.where(np.isfinite(s["projection_norm_inf"]), s["projection_norm_inf"], np.nan)
        inf_line = ax.plot(depths, p_inf, "s--", ms=7, mfc="none", lw=1.6, alpha=0.6, color="k",
                           label=r"$t = \infty$ ($1/\lambda_{\min}$)", zorder=1)
        inf_limit = ax.axhline(4 / 3, color="k", ls=":", lw=1, label="limit (dotted)")
        for i, t in enumerate(times):
            ax.plot(depths, s["projection_norm"][:, i], "o-", ms=3, color=colors[i], label=f"$t = {t:g}$",
                    zorder=2)
            ax.axhline(limit[t], color=colors[i], ls=":", lw=1)
        depth_axis(ax, depths)
        ax.set_yscale("log")
        ax.set_xlabel(r"depth $L$")
        ax.set_ylabel(r"$\|P_t\|_2$ for $\bar\Theta^L$")
        ax.set_title(panel_title(n))
        ax.grid(alpha=0.3, which="both")
        handles = [h for h in ax.get_legend_handles_labels()[0] if h not in (inf_line[0], inf_limit)]
        ax.legend(handles=handles + [inf_line[0], inf_limit], fontsize=8)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def lambda_min_panels(depths, curves: dict, log_title: str, suptitle: str, *, band: bool = False):
    """Figure 7's panels: ``lambda_min(Thetabar^L)`` against depth, linear and log scale.

    ``curves[n]`` is ``(mean [D], lo [D], hi [D])`` over the draws at the
    ``depths [D]``; with ``band`` the band from ``lo`` to ``hi`` is drawn
    around each mean. Returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = np.asarray(depths)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(curves)))
    for (n, (mean, lo, hi)), c in zip(curves.items(), colors):
        for ax, positive in zip(axes, (False, True)):
            # On the log axis, eigenvalues that are zero up to rounding are left out.
            keep = (mean > 1e-12) if positive else np.ones_like(mean, bool)
            ax.plot(depths[keep], mean[keep], color=c, label=f"$n = {n}$")
            if band:
                ax.fill_between(depths[keep], lo[keep], hi[keep], color=c, alpha=0.2, lw=0)
    for ax in axes:
        ax.axhline(0.75, color="k", ls=":", lw=1, label="limit 3/4")
        ax.axvline(5, color="grey", ls="--", lw=0.8)
        depth_axis(ax, depths)
        ax.set_xlabel(r"depth $L$")
        ax.set_ylabel(r"$\lambda_{\min}(\bar\Theta^L)$")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title("linear scale")
    axes[1].set_yscale("log")
    axes[1].set_title(log_title)
    axes[0].legend(fontsize=8)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
