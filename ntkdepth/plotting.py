"""Figures shared by the experiments: panels of pairs' kernels against depth, depth and width axes,
the projection-norm and ``lambda_min`` panels, the drift panels against width and along training.
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DRIFT_AXIS_LABELS", "DRIFT_TITLES", "STYLE", "PairGroup", "depth_axis", "depth_panels",
           "drift_curve_panels", "drift_scaling_panels", "label_axes", "lambda_min_panels", "legend_below",
           "pair_values", "plain_log_ticks", "projection_norm_panels", "pyplot", "save_figure", "sequential_colors",
           "style", "width_axis", "width_scaling_panel"]

#: The matplotlib settings of every figure, applied by :func:`style`. Text stays legible when a
#: figure is shrunk to page width, and margins keep reference lines off the frame.
STYLE = {
    "font.size": 11,
    "axes.titlesize": 11.5,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 13,
    "axes.xmargin": 0.03,
    "axes.ymargin": 0.08,
    "legend.framealpha": 0.9,
    "grid.alpha": 0.3,
}

#: The drift measures of :func:`ntkdepth.empirical.final_drift` and
#: :func:`~ntkdepth.empirical.drift_curves`, and the loss beside them, as panel titles (typeset).
DRIFT_TITLES = {"aggregate": r"aggregate $\|a_T(x) - a_0(x)\|_2$",
                "per_neuron_mean": r"per-neuron $|a_{T,i}(x) - a_{0,i}(x)|$, mean over $i$",
                "per_neuron_max": r"per-neuron $|a_{T,i}(x) - a_{0,i}(x)|$, max over $i$",
                "relative": r"relative $\|a_T(x) - a_0(x)\|_2 \,/\, \|a_0(x)\|_2$",
                "inner_product": r"inner products $|\langle a_T(x), a_T(x')\rangle - \langle a_0(x), a_0(x')\rangle| / n$",
                "loss": "training loss"}
#: The measures of :data:`DRIFT_TITLES` as axis labels.
DRIFT_AXIS_LABELS = {"aggregate": "aggregate drift", "per_neuron_mean": "mean per-neuron drift",
                     "per_neuron_max": "max per-neuron drift", "relative": "relative drift",
                     "inner_product": "inner-product change", "loss": "training loss"}


@contextlib.contextmanager
def style():
    """Draws the figures made inside with :data:`STYLE`; matplotlib's settings are restored after."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def sequential_colors(n: int, cmap: str = "viridis") -> list:
    """``n`` colors in order along ``cmap``, from its dark end to where it still stands out on white.

    The last quarter of viridis or plasma (light green to yellow) fades into a white background
    (contrast below 2:1); the colors stop short of it.
    """
    import matplotlib

    stops = np.linspace(0.0, 0.75, n) if n > 1 else np.zeros(1)
    return [matplotlib.colormaps[cmap](float(x)) for x in stops]


@dataclass(frozen=True)
class PairGroup:
    """How a group of pairs is drawn: its name in the results, legend label, color, line style,
    and how many pairs it holds in all (the curves drawn are a few of them)."""

    name: str
    label: str
    color: str
    linestyle: str = "-"
    total: int | None = None


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


def label_axes(ax, xlabel: str, ylabel: str, title: str, *, title_size=None, legend_size=None,
               legend_loc: str = "best", grid: str = "major") -> None:
    """Labels, title, legend and a light grid (``"major"`` or ``"both"`` ticks) of one panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    ax.legend(**({} if legend_size is None else {"fontsize": legend_size}), loc=legend_loc)
    ax.grid(alpha=0.3, which=grid)


def legend_below(fig, handles=None, labels=None, *, ncol: int = 3):
    """One legend for the whole figure, under its panels, where it hides no data.

    Without ``handles`` it collects the labelled artists of every panel, each label once.
    Call it after the layout is fixed (:func:`save_figure` saves the legend with the figure).
    """
    if handles is None:
        seen = {}
        for ax in fig.axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, h)
        labels, handles = list(seen), list(seen.values())
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                      frameon=False)


def save_figure(out, fig, file: str, title: str, *, rect=None, legend=None, **title_kw) -> str:
    """Gives ``fig`` its title, lays it out (within ``rect``, default the whole figure), saves it
    as ``file`` in the run folder ``out`` and closes it; returns ``file``.

    ``legend``: ``(handles, labels, ncol)`` of a figure legend drawn under the panels
    (:func:`legend_below`), or ``"collect"`` to gather the panels' labelled artists into it.
    """
    fig.suptitle(title, **title_kw)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" keeps it
        fig.tight_layout(rect=rect)
    if legend == "collect":
        legend_below(fig)
    elif legend is not None:
        legend_below(fig, *legend[:2], ncol=legend[2])
    out.save_figure(fig, file)
    pyplot().close(fig)
    return file


def depth_panels(
    layers: np.ndarray,
    panels: Mapping[str, tuple[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]],
    groups: Sequence[PairGroup],
    *,
    title: str,
    ylabels: Mapping[str, str] | None = None,
    limits: Mapping[str, float] | None = None,
    from_layer_two: Sequence[str] = ("sigmadot",),
    log_y: Sequence[str] = (),
    columns: int = 2,
):
    """One panel per quantity against depth (log axis), a quantile band and curves per group.

    The panels stand ``columns`` to a row; one legend under them says what each line, band
    and limit is and how many of each group's pairs are drawn. On a log-scaled y axis values
    near 0 (where a curve crosses its limit) are cut at a floor below the bands, so that each
    dip ends on the axis instead of stretching it.

    Args:
      layers: ``[D]`` the depths.
      panels: ``name -> (title, {group name: (lo [D], hi [D], curves [D, c])})`` in
        panel order: each group's band between ``lo`` and ``hi`` (the 10% and
        90% quantiles over all its pairs) and ``c`` of its pairs as curves.
      groups: how each group is drawn.
      title: the figure's title.
      ylabels: ``name -> y-axis label`` (default: the panel's title).
      limits: ``name -> value`` drawn as a dotted line (panels not named get none).
      from_layer_two: panels drawn from the second depth on (``Sigmadot^1`` is
        undefined: no nonlinearity precedes the first layer).
      log_y: panels drawn with a log-scaled y axis.
      columns: panels per row.

    Returns:
      The matplotlib figure (the caller saves and closes it).
    """
    import matplotlib.lines
    import matplotlib.patches

    plt = pyplot()
    layers = np.asarray(layers)
    ncols = min(columns, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    shown = {}
    for ax, (name, (panel_title, bands)) in zip(axes.flat, panels.items()):
        start = 1 if name in from_layer_two else 0
        x = layers[start:]
        drawn = {g.name: [np.asarray(a, dtype=np.float64)[start:] for a in bands[g.name]] for g in groups}
        floor, cut = None, False
        if name in log_y:
            lows = np.concatenate([lo[lo > 0] for lo, _, _ in drawn.values()])
            floor = lows.min() / 3 if lows.size else None
        for group in groups:
            lo, hi, curves = drawn[group.name]
            if floor is not None:
                cut = cut or bool((curves < floor).any())
                lo, hi, curves = (np.maximum(a, floor) for a in (lo, hi, curves))
            shown[group.name] = max(shown.get(group.name, 0), curves.shape[1])
            ax.fill_between(x, lo, hi, color=group.color, alpha=0.18, lw=0)
            ax.plot(x, curves, color=group.color, lw=0.9, alpha=0.8, ls=group.linestyle)
        if limits and name in limits:
            ax.axhline(limits[name], color="k", lw=1.2, ls=":")
        depth_axis(ax, x)
        if name in log_y:
            ax.set_yscale("log")
            if floor is not None:
                ax.set_ylim(bottom=floor)
        ax.set_xlabel(r"depth $\ell$")
        ax.set_ylabel((ylabels or {}).get(name, panel_title))
        ax.set_title(panel_title + ("\n(dips below the axis cut at it)" if cut else ""))
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for g in groups:
        of = f" of {g.total:,}" if g.total is not None else ""
        handles += [matplotlib.lines.Line2D([], [], color=g.color, ls=g.linestyle, lw=1.2),
                    matplotlib.patches.Patch(color=g.color, alpha=0.3, lw=0)]
        labels += [f"{g.label}: {shown.get(g.name, 0)}{of} drawn",
                   f"{g.label}: 10%-90% of all {g.total:,}" if g.total is not None
                   else f"{g.label}: 10%-90% of all"]
    if limits:
        handles.append(matplotlib.lines.Line2D([], [], color="k", lw=1.2, ls=":"))
        labels.append(r"limit as $\ell \to \infty$")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, handles, labels, ncol=len(groups) + bool(limits))
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


def plain_log_ticks(axis) -> None:
    """Labels a log-scaled axis (``ax.yaxis``) with plain numbers (``20``, ``0.3``), not ``2 x 10^1``.

    Which ticks carry a label is matplotlib's choice, as on any log axis.
    """
    import matplotlib.ticker

    class Plain(matplotlib.ticker.LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    axis.set_major_formatter(Plain())
    axis.set_minor_formatter(Plain(labelOnlyBase=False))


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
    ``prefactor`` (:func:`ntkdepth.stats.power_law_fits`), drawn as a line. The first
    series has filled circles, the others larger open markers of other shapes drawn
    beneath it, so that points that coincide (two parameterizations are one network at
    their base width) all stay visible.
    """
    w = np.asarray(widths, dtype=float)
    markers = ("o", "s", "D", "^", "v", "P")
    for i, (label, (mean, sd, fit, color)) in enumerate(series.items()):
        ax.errorbar(w, mean, yerr=sd, fmt=markers[i % len(markers)], ms=6 if i == 0 else 9,
                    mfc=color if i == 0 else "none", mew=1.4, color=color, capsize=3, zorder=3 - 0.01 * i,
                    label=label if fit is None else f"{label}: slope {fit['exponent']:+.2f}")
        if fit:
            ax.plot(w, fit["prefactor"] * w ** fit["exponent"], "-", color=color, lw=1, zorder=2)
    width_axis(ax, w)
    ax.set_yscale("log")
    ax.set_xlabel("width $n$")
    ax.set_ylabel(ylabel)
    ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    ax.grid(alpha=0.3)


def _panel_grid(count: int, columns: int = 2, size: tuple[float, float] = (5.4, 4.2), spare: bool = True):
    """``(fig, axes, spare_axis)``: ``count`` panels, ``columns`` to a row; an unused slot, if any, is
    returned (blank) for a legend, the others are hidden."""
    plt = pyplot()
    ncols = min(columns, count)
    nrows = -(-count // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    slots = list(grid.flat)
    for ax in slots[count:]:
        ax.axis("off")
    return fig, slots[:count], (slots[count] if spare and len(slots) > count else None)


def _figure_legend(fig, spare, handles, labels) -> None:
    """The figure's one legend: in the spare slot of its grid if there is one, else under the panels."""
    if spare is not None:
        spare.legend(handles, labels, loc="center")
    else:
        legend_below(fig, handles, labels, ncol=min(5, len(handles)))


def projection_norm_panels(depths, scans: dict, times, limit: dict, panel_title, suptitle: str):
    """Figure 6's panels: ``|P_t|`` against depth, one panel per dataset size ``n``.

    ``scans[n]`` holds ``projection_norm [depths, times]`` and
    ``projection_norm_inf [depths]``; ``limit[t]`` is the deep limit at time t;
    ``panel_title(n)`` names a panel. Returns the figure.
    """
    import matplotlib.lines

    fig, axes, spare = _panel_grid(len(scans))
    colors = sequential_colors(len(times))
    for ax, (n, s) in zip(axes, scans.items()):
        # t = inf first, wide, dashed and with open markers: a large finite t that coincides
        # with it stays visible on top.
        p_inf = np.where(np.isfinite(s["projection_norm_inf"]), s["projection_norm_inf"], np.nan)
        ax.plot(depths, p_inf, "s--", ms=7, mfc="none", lw=1.6, alpha=0.6, color="k", zorder=1)
        ax.axhline(4 / 3, color="k", ls=":", lw=1)
        for i, t in enumerate(times):
            ax.plot(depths, s["projection_norm"][:, i], "o-", ms=3, color=colors[i], zorder=2)
            ax.axhline(limit[t], color=colors[i], ls=":", lw=1)
        depth_axis(ax, depths)
        ax.set_yscale("log")
        ax.set_xlabel(r"depth $L$")
        ax.set_ylabel(r"$\|P_t\|_2$ of $\bar\Theta^L$")
        ax.set_title(panel_title(n))
        ax.grid(alpha=0.3)
    handles = [matplotlib.lines.Line2D([], [], marker="o", ms=3, color=c) for c in colors]
    labels = [f"$t = {t:g}$" for t in times]
    handles += [matplotlib.lines.Line2D([], [], marker="s", ms=7, mfc="none", ls="--", lw=1.6, alpha=0.6,
                                        color="k"),
                matplotlib.lines.Line2D([], [], color="0.3", ls=":", lw=1)]
    labels += [r"$t = \infty$: $1/\lambda_{\min}$", r"dotted: each one's limit as $L \to \infty$"]
    fig.suptitle(suptitle)
    fig.tight_layout()
    _figure_legend(fig, spare, handles, labels)
    return fig


def lambda_min_panels(depths, curves: dict, log_title: str, suptitle: str, *, band: bool = False):
    """Figure 7's panels: ``lambda_min(Thetabar^L)`` against depth, linear and log scale.

    ``curves[n]`` is ``(mean [D], lo [D], hi [D])`` over the draws at the
    ``depths [D]``; with ``band`` the band from ``lo`` to ``hi`` is drawn
    around each mean. Returns the figure.
    """
    import matplotlib.lines
    import matplotlib.patches

    plt = pyplot()
    depths = np.asarray(depths)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = sequential_colors(len(curves), "plasma")
    for (n, (mean, lo, hi)), c in zip(curves.items(), colors):
        for ax, positive in zip(axes, (False, True)):
            # On the log axis, eigenvalues that are zero up to rounding are left out.
            keep = (mean > 1e-12) if positive else np.ones_like(mean, bool)
            ax.plot(depths[keep], mean[keep], color=c, lw=1.6)
            if band:
                ax.fill_between(depths[keep], lo[keep], hi[keep], color=c, alpha=0.2, lw=0)
    for ax in axes:
        ax.axhline(0.75, color="k", ls=":", lw=1.2)
        ax.axvline(5, color="grey", ls="--", lw=0.8)
        depth_axis(ax, depths)
        ax.set_xlabel(r"depth $L$")
        ax.set_ylabel(r"$\lambda_{\min}(\bar\Theta^L)$")
        ax.grid(alpha=0.3)
    axes[0].set_title("linear scale")
    axes[1].set_yscale("log")
    plain_log_ticks(axes[1].yaxis)
    axes[1].set_title(log_title)
    handles = [matplotlib.lines.Line2D([], [], color=c, lw=1.6) for c in colors]
    labels = [f"$n = {n}$" + (" (mean over draws)" if band and i == 0 else "") for i, n in enumerate(curves)]
    if band:
        handles.append(matplotlib.patches.Patch(color="0.5", alpha=0.3, lw=0))
        labels.append("range over the draws")
    handles += [matplotlib.lines.Line2D([], [], color="k", ls=":", lw=1.2),
                matplotlib.lines.Line2D([], [], color="grey", ls="--", lw=0.8)]
    labels += [r"limit 3/4 as $L \to \infty$", "depth 5"]
    fig.suptitle(suptitle)
    fig.tight_layout()
    legend_below(fig, handles, labels, ncol=min(4, len(handles)))
    return fig


def drift_scaling_panels(widths, measures: Sequence[str], stats: Mapping[str, Mapping], fits: Mapping[str, Mapping],
                         predicted: Mapping[str, Sequence[float]]):
    """Table 1's panels against width: a panel for each of ``measures``, a series for each
    parameterization.

    ``stats[par][m]`` is ``{"mean": [W], "sd": [W]}`` at the ``[W]`` ``widths``
    (:func:`~ntkdepth.empirical.final_drift`), ``fits[par][m]`` its power law
    (:func:`width_scaling_panel`) or absent; ``predicted[m]`` (``[W]``) is the kernel's
    prediction for the NTK network, dashed where ``stats`` has one. Returns the figure.
    """
    from ntkdepth.models import PARAMETERIZATION_NAMES as names

    plt = pyplot()
    rows = -(-len(measures) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11.5, 4.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(measures):]:
        ax.set_visible(False)
    w = np.asarray(widths, dtype=float)
    colors = {"ntk": "C0", "mup": "C3", "standard": "C2"}
    for ax, m in zip(axes.ravel(), measures):
        width_scaling_panel(ax, w, {names.get(par, par): (
                                        np.asarray(by_measure[m]["mean"]), np.asarray(by_measure[m]["sd"]),
                                        fits.get(par, {}).get(m), colors.get(par))
                                    for par, by_measure in stats.items()},
                            ylabel=DRIFT_AXIS_LABELS[m], title=DRIFT_TITLES[m])
        if m in predicted and "ntk" in stats:
            ax.plot(w, predicted[m], "k--", lw=1.2, label="kernel prediction (NTK)")
        ax.legend()
    return fig


def drift_curve_panels(steps, widths, curves: Mapping[str, Mapping], predicted: Sequence[float] | None,
                       measures: Sequence[str] = ("aggregate", "per_neuron_mean", "relative", "loss")):
    """Table 1's panels along training: a row for each of ``measures``, a column for each
    parameterization, a color for each width.

    ``curves[par][m]`` is ``[W, R]`` at the ``[W]`` ``widths`` and the ``[R]`` recorded
    ``steps`` (:func:`~ntkdepth.empirical.drift_curves`); step 0 is left off the log axes.
    ``predicted`` (``[R]`` or ``None``) is the kernel's aggregate drift for the NTK network,
    dashed. Returns the figure and its legend, ``(handles, labels, ncol)`` for :func:`save_figure`.
    """
    from matplotlib.lines import Line2D

    from ntkdepth.models import PARAMETERIZATION_NAMES as names

    plt = pyplot()
    steps = np.asarray(steps)
    fig, axes = plt.subplots(len(measures), len(curves), figsize=(5.4 * len(curves), 3.4 * len(measures)),
                             squeeze=False)
    colors = sequential_colors(len(widths))
    for col, (par, by_measure) in enumerate(curves.items()):
        for row, k in enumerate(measures):
            ax = axes[row, col]
            for i, c in enumerate(colors):
                ax.plot(steps[1:], by_measure[k][i][1:], "o-", ms=3, color=c)
            if par == "ntk" and k == "aggregate" and predicted is not None:
                ax.plot(steps[1:], predicted[1:], "k--", lw=1.2)
            ax.set(xscale="log", yscale="log", ylabel=DRIFT_AXIS_LABELS[k])
            depth_axis(ax, steps[1:])
            ax.set_xlabel("SGD step")
            ax.set_title(f"{names.get(par, par)}: {DRIFT_TITLES[k]}")
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker="o", ms=3) for c in colors]
    labels = [f"$n = {w:,}$" for w in widths]
    if "ntk" in curves and predicted is not None:
        handles.append(Line2D([], [], color="k", ls="--", lw=1.2))
        labels.append(r"kernel ($n = \infty$, NTK)")
    return fig, (handles, labels, min(4, len(handles)))
