"""Figure 6: the norm of the projection term against depth, for bounded stopping times.

n points of a dataset: uniform on the sphere S^{d-1}, or MNIST images drawn
uniformly without replacement and normalized onto S^783 (the paper evaluates
the projection term on both, section 6.4; ``fig6-mnist`` runs this script on
MNIST). The predictor of the normalized NTK Thetabar^L has the projection
operator P_t = Thetabar^{-1} (I - exp(-t Thetabar)) with
|P_t| = max_i (1 - exp(-t lambda_i)) / lambda_i <= min(t, 1 / lambda_min).
Stopping at a bounded time keeps |P_t| <= t whatever the depth; at t = inf,
|P_inf| = 1 / lambda_min, which is large at shallow depth when points are
close or n > d (the images' Gram matrix is singular once n > 784), and
settles at 4/3 as Thetabar^L approaches its limit. On MNIST a few held-out
images measure what depth costs: their largest |Thetabar^L(x, x_i) - 1/4|
over the training images (Theorem 3's expressivity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import dataset_setting, mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import load_points, point_source
from ntkdepth.data.mnist import mnist_data_line
from ntkdepth.data.points import points_record
from ntkdepth.grids import log_grid
from ntkdepth.reporting import table
from ntkdepth.runs import RunDir
from ntkdepth.theory import depth_scan

NAME = "fig6"
DESCRIPTION = "norm of the projection operator P_t against depth for bounded stopping times"


@dataclass(frozen=True)
class Config:
    dataset: str = dataset_setting()
    ns: list[int] = setting([50, 200], help="dataset sizes n", min=2, max=20000)
    dim: int = setting(10, help="input dimension d (sphere: points on S^{d-1})", min=2)
    max_depth: int = setting(1000, help="deepest network", min=2)
    n_depths: int = setting(30, help="depths scanned, log-spaced in 1..max_depth", min=2)
    times: list[float] = setting([1.0, 10.0, 100.0], help="bounded stopping times t", min=0.0)
    n_test: int = setting(10, help="held-out MNIST images measuring the gap to 1/4", min=1, max=1000)
    data_dir: str = mnist_dir_setting()
    split: str = mnist_split_setting()
    seed: int = setting(0, help="seed of the draws", min=0)


def _draw(config, source, n, rng):
    """``(x [n, d], x_test [m, d])``. MNIST: n images drawn with seed (seed, n) and ``n_test``
    held-out ones; the sphere: n points from one generator shared by all n, and its first point
    as the (unused) test point."""
    if source.name == "mnist":
        sample = load_points("mnist", n, [config.seed, n], held_out=config.n_test,
                             data_dir=source.directory, split=source.split)
        return sample.x, sample.held_out
    x = load_points(source.name, n, rng, dim=source.dim).x
    return x, x[:1]


def run(config: Config, out: RunDir) -> dict:
    mnist = config.dataset == "mnist"
    source = point_source(config.dataset, dim=config.dim, data_dir=config.data_dir, split=config.split,
                          need=max(config.ns) + (config.n_test if mnist else 0))
    data = points_record(source, [n + config.n_test for n in config.ns])
    if data:
        out.record_data("mnist", data)
    depths = log_grid(config.max_depth, config.n_depths)
    rng = np.random.default_rng(config.seed)
    scans = {}
    for n in config.ns:
        x, x_test = _draw(config, source, n, rng)

        def compute(x=x, x_test=x_test):
            s = depth_scan(x, x_test, depths, config.times)
            return {"lambda_min": s.lambda_min, "projection_norm": s.projection_norm,
                    "projection_norm_inf": s.projection_norm_inf} | ({"gap": s.gap} if mnist else {})

        print(f"  n = {n}: {len(depths)} depths up to {config.max_depth}", flush=True)
        scans[n] = out.stage(f"scan_n{n}", compute)

    rows = []
    for n, s in scans.items():
        for k, d in enumerate(depths):
            rows.append([n, int(d), s["lambda_min"][k], *s["projection_norm"][k], s["projection_norm_inf"][k]]
                        + ([float(np.min(s["gap"][k]))] if mnist else []))
    results = {"data_dir": str(source.directory), "split": source.split, "data": data} if mnist else {}
    results |= {
        "dataset": source.name, "dim": source.dim, "depths": depths,
        # |P_t| of the limit (3/4) I + (1/4) 1 1^T at each of config.times, and at t = inf.
        "limit_norm": np.array([(1 - np.exp(-0.75 * t)) / 0.75 for t in config.times]), "limit_norm_inf": 4 / 3,
        # [n, depth] ([n, depth, time] for norm_P_t), n as config.ns and times as config.times.
        "lambda_min": np.stack([scans[n]["lambda_min"] for n in config.ns]),
        "norm_P_t": np.stack([scans[n]["projection_norm"] for n in config.ns]),
        "norm_P_inf": np.stack([scans[n]["projection_norm_inf"] for n in config.ns]),
    } | ({"min_gap_held_out": np.stack([np.min(scans[n]["gap"], axis=1) for n in config.ns])} if mnist else {})
    results |= {
        "tables": {"projection_norm.csv": table(
            ["n", "depth", "lambda_min", *[f"norm_P_t={t:g}" for t in config.times], "norm_P_inf"]
            + (["min_gap_held_out"] if mnist else []), rows)},
    }
    return results


def report(config: Config, results: dict, out) -> dict:
    figure = _plot(out, config, results)
    out.write_summary(_summary(config, results, figure))
    depths, scans = _scans(config, results)
    p_inf = scans[config.ns[-1]]["projection_norm_inf"]
    return {
        f"|P_inf| at depth 1 / {depths[-1]} (n={config.ns[-1]})": f"{p_inf[0]:.3g} / {p_inf[-1]:.4f}",
        "figure": str(out.file(figure)),
    }


def _scans(config, results) -> tuple[np.ndarray, dict]:
    """The depths ``[D]`` and, per n, ``lambda_min [D]``, ``projection_norm [D, times]``,
    ``projection_norm_inf [D]`` and (MNIST) ``gap [D]``, the held-out images' smallest gap."""
    def floats(key):  # inf and NaN come back from results.json as strings
        return np.asarray(results[key], dtype=np.float64)

    names = {"lambda_min": "lambda_min", "projection_norm": "norm_P_t", "projection_norm_inf": "norm_P_inf",
             "gap": "min_gap_held_out"}
    arrays = {name: floats(key) for name, key in names.items() if key in results}
    return np.asarray(results["depths"]), {n: {name: a[i] for name, a in arrays.items()}
                                           for i, n in enumerate(config.ns)}


def _plot(out, config, results) -> str:
    import matplotlib.pyplot as plt

    from ntkdepth.plotting import projection_norm_panels

    if results["dataset"] == "mnist":
        file, panel = "fig6_mnist.png", lambda n: f"$n = {n}$ MNIST images"
        title = (f"Figure 6 on MNIST ({results['split']} split, on $S^{{783}}$): "
                 "norm of the projection operator")
    else:
        file, panel = "fig6.png", lambda n: f"$n = {n}$ points on $S^{{{results['dim'] - 1}}}$"
        title = "Figure 6: norm of the projection operator"
    depths, scans = _scans(config, results)
    limit = dict(zip(config.times, results["limit_norm"]))
    fig = projection_norm_panels(depths, scans, config.times, limit, panel, title + " against depth")
    out.save_figure(fig, file)
    plt.close(fig)
    return file


def _marks(depths) -> tuple[int, int]:
    """The indices of the first depths at least 5 and 100 (the last depth if none)."""
    return tuple(min(int(np.searchsorted(depths, d)), len(depths) - 1) for d in (5, 100))


def _summary(config, results, figure) -> str:
    mnist = results["dataset"] == "mnist"
    depths, scans = _scans(config, results)
    if mnist:
        head = [
            "# Figure 6 on MNIST: norm of the projection term against depth", "",
            f"MNIST images from the {results['split']} split in {results['data_dir']}, drawn uniformly "
            "without replacement and normalized onto S^783;",
        ]
    else:
        head = ["# Figure 6: norm of the projection term against depth", "",
                f"Points uniform on S^{results['dim'] - 1},"]
    head[-1] += (
        f" n in {config.ns}, depths {depths[0]}..{depths[-1]} ({len(depths)} log-spaced), stopping "
        f"times {config.times} and infinity; kernel Thetabar^L."
        + (f" The last column: the smallest, over {config.n_test} held-out images x, of "
           "max_i abs(Thetabar^L(x, x_i) - 1/4)." if mnist else "")
    )
    lines = head + ["", mnist_data_line(results.get("data"))] * mnist + [
        "",
        "| n | depth | lambda_min | " + " | ".join(f"norm P_{t:g}" for t in config.times)
        + " | norm P_inf |" + (" held-out gap |" if mnist else ""),
        "|---|---|---|" + "---|" * (len(config.times) + 1 + mnist),
    ]
    for n, s in scans.items():
        for k in sorted({0, *_marks(depths), len(depths) - 1}):
            lines.append(
                f"| {n} | {depths[k]} | {s['lambda_min'][k]:.3e} | "
                + " | ".join(f"{v:.3f}" for v in s["projection_norm"][k])
                + f" | {s['projection_norm_inf'][k]:.3g} |"
                + (f" {s['gap'][k]:.3g} |" if mnist else "")
            )
    lines += ["", _finding(config, results), "", f"Files: {figure}, projection_norm.csv, results.json."]
    return "\n".join(lines)


def _finding(config, results) -> str:
    """The summary's finding, every claim in it checked against the numbers it quotes."""
    depths, scans = _scans(config, results)
    k5 = _marks(depths)[0]
    times = np.asarray(config.times)
    # |P_t| <= t in exact arithmetic; the slack allows for rounding.
    worst = max(float(np.max(s["projection_norm"] / np.maximum(times, 1e-300))) for s in scans.values())
    bounded = worst <= 1 + 1e-9
    n = config.ns[-1]
    s = scans[n]
    p_inf = s["projection_norm_inf"]
    falls = p_inf[-1] < p_inf[0]
    text = (
        "Finding: a bounded stopping time "
        + ("keeps" if bounded else "does not keep")
        + f" |P_t| at most t at every depth, for every n and t (largest |P_t| / t: {worst:.4g}); for "
        f"n = {n} at t = inf the norm is {p_inf[0]:.3g} at depth {depths[0]} (lambda_min "
        f"{s['lambda_min'][0]:.2g}), {p_inf[k5]:.3g} at depth {depths[k5]} and {p_inf[-1]:.4f} at depth "
        f"{depths[-1]}, " + ("falling" if falls else "not falling")
        + f" towards the limit 4/3 of (3/4) I + (1/4) 1 1^T ({abs(p_inf[-1] - 4 / 3):.2g} from it)."
    )
    if "gap" in s:
        gap = s["gap"]
        text += (
            f" The held-out images' gap to 1/4 {'shrinks' if gap[-1] < gap[0] else 'does not shrink'} "
            f"from {gap[0]:.3g} (depth {depths[0]}) to {gap[k5]:.3g} (depth {depths[k5]}) and "
            f"{gap[-1]:.3g} (depth {depths[-1]})"
            + (": depth stabilizes the predictor at the price of expressivity" if falls and gap[-1] < gap[0]
               else "") + "."
        )
    elif falls and bounded:
        text += " Depth stabilizes the predictor, early stopping bounds it at any depth."
    return text
