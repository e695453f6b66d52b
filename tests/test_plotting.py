"""The shared figure helpers: colors that show on white, labelled axes, legends that hide no data."""

import matplotlib
import numpy as np
import pytest

from ntkdepth.plotting import (PairGroup, depth_panels, pyplot, sequential_colors, style,
                               width_scaling_panel)


def _contrast_with_white(color) -> float:
    """The WCAG contrast ratio of ``color`` against white (1 to 21)."""
    rgb = np.array(matplotlib.colors.to_rgb(color))
    linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = linear @ [0.2126, 0.7152, 0.0722]
    return 1.05 / (luminance + 0.05)


@pytest.mark.parametrize("cmap", ["viridis", "plasma"])
def test_sequential_colors_stand_out_on_white_and_stay_apart(cmap):
    assert _contrast_with_white(matplotlib.colormaps[cmap](1.0)) < 1.3  # the yellow end the colors avoid
    for n in (1, 2, 6, 12):
        colors = sequential_colors(n, cmap)
        assert len(colors) == n
        assert min(_contrast_with_white(c) for c in colors) >= 2.0
    first, last = sequential_colors(2, cmap)
    assert np.abs(np.subtract(first, last)).max() > 0.3


def _bands(depths: int, lo: float, hi: float, curves: np.ndarray):
    return np.full(depths, lo), np.full(depths, hi), curves


def _figure():
    depths = np.arange(1, 51)
    dip = np.abs(np.linspace(-0.3, 0.3, 50))
    dip[24] = 1e-12  # where the curve crosses its limit
    panels = {
        "rho": ("correlation", {"inside": _bands(50, 0.2, 0.8, np.full((50, 3), 0.5)),
                                "star": _bands(50, 0.3, 0.7, np.full((50, 2), 0.4))}),
        "residual": ("distance to the limit", {"inside": _bands(50, 1e-3, 0.2, dip[:, None]),
                                               "star": _bands(50, 2e-3, 0.1, np.full((50, 1), 0.05))}),
    }
    groups = [PairGroup("inside", "pairs in X", "tab:blue", "-", 1225),
              PairGroup("star", "pairs with x*", "tab:red", "--", 50)]
    with style():
        fig = depth_panels(depths, panels, groups, title="t", ylabels={"rho": "rho"},
                           limits={"rho": 1.0}, log_y=("residual",))
    return fig


def test_depth_panels_label_every_axis_and_say_how_many_pairs_are_drawn():
    fig = _figure()
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_ylabel() for ax in axes] == ["rho", "distance to the limit"]
        assert all(ax.get_legend() is None for ax in axes)  # one legend, for the whole figure
        (legend,) = fig.legends
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts == ["pairs in X: 3 of 1,225 drawn", "pairs in X: 10%-90% of all 1,225",
                         "pairs with x*: 2 of 50 drawn", "pairs with x*: 10%-90% of all 50",
                         r"limit as $\ell \to \infty$"]
        fig.canvas.draw()
        box = legend.get_window_extent()
        assert all(box.y1 <= ax.get_window_extent().y0 for ax in axes)  # under the panels, not on them
    finally:
        pyplot().close(fig)


def test_depth_panels_cut_dips_on_a_log_axis_at_a_floor_below_the_bands():
    fig = _figure()
    try:
        ax = fig.axes[1]
        floor = 1e-3 / 3
        assert ax.get_yscale() == "log"
        assert ax.get_ylim()[0] == pytest.approx(floor)
        lowest = min(np.min(line.get_ydata()) for line in ax.get_lines())
        assert lowest == pytest.approx(floor)
        assert "cut" in ax.get_title()
        assert "cut" not in fig.axes[0].get_title()
    finally:
        pyplot().close(fig)


def test_width_scaling_panel_keeps_points_that_coincide_visible():
    plt = pyplot()
    fig, ax = plt.subplots()
    try:
        w = [64, 256]
        fit = {"exponent": -0.5, "prefactor": 1.0}
        width_scaling_panel(ax, w, {"NTK": ([1.0, 0.5], None, fit, "C0"), "muP": ([1.0, 0.8], None, None, "C3")},
                            ylabel="drift", title="t")
        ntk, mup = (c.lines[0] for c in ax.containers)
        assert ntk.get_marker() != mup.get_marker()
        assert mup.get_markersize() > ntk.get_markersize()  # the open marker rings the filled one
        assert mup.get_markerfacecolor() == "none" and ntk.get_markerfacecolor() != "none"
        assert ntk.get_zorder() > mup.get_zorder()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "256"]
    finally:
        plt.close(fig)


def test_style_applies_inside_and_restores_matplotlib_after():
    before = matplotlib.rcParams["font.size"]
    with style():
        assert matplotlib.rcParams["font.size"] == 11
    assert matplotlib.rcParams["font.size"] == before
