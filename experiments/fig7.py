"""Figure 7: the smallest eigenvalue of the normalized NTK against depth, for several n.

n points of a dataset (paper, section 6.4): uniform on the sphere S^{d-1}, or
MNIST images drawn uniformly without replacement and normalized onto S^783
(``fig7-mnist`` runs this script on MNIST). At depth 1, Thetabar^1 is the
Gram matrix of the data: singular once n > d and small whenever two points are
close (MNIST's pixels are non-negative, so all correlations of its images are
positive and many pairs are close). With depth, lambda_min(Thetabar^L)
*increases* towards 3/4, the smallest eigenvalue of the limit
(3/4) I + (1/4) 1 1^T (Theorem 2), and a few layers already lift it off zero
even for large n.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.config import dataset_setting, mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import load_points, point_source
from ntkdepth.data.mnist import mnist_data_line
from ntkdepth.data.points import points_record
from ntkdepth.grids import log_grid
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.reporting import table
from ntkdepth.runs import RunDir

NAME = "fig7"
DESCRIPTION = "lambda_min of the normalized NTK against depth for several dataset sizes"


@dataclass(frozen=True)
class Config:
    dataset: str = dataset_setting()
    ns: list[int] = setting([100, 300, 1000], help="dataset sizes n", min=2, max=20000)
    dim: int = setting(10, help="input dimension d (sphere: points on S^{d-1})", min=2)
    max_depth: int = setting(100, help="deepest network", min=2)
    n_depths: int = setting(
        0, help="depths computed, log-spaced in 1..max_depth (0: every depth)", min=0
    )
    seeds: int = setting(1, help="independent draws per n (mean and spread)", min=1)
    data_dir: str = mnist_dir_setting()
    split: str = mnist_split_setting()
    seed: int = setting(0, help="first seed", min=0)


def run(config: Config, out: RunDir) -> dict:
    from tqdm import tqdm

    source = point_source(config.dataset, dim=config.dim, data_dir=config.data_dir, split=config.split,
                          need=max(config.ns))
    if config.n_depths:
        depths = log_grid(config.max_depth, config.n_depths)
    else:
        depths = np.arange(1, config.max_depth + 1)
    lam, correlations = {}, []
    jobs = [(n, s) for n in config.ns for s in range(config.seeds)]
    data = points_record(source, [n for n, _ in jobs])
    if data:
        out.record_data("mnist", data)
    for n, s in tqdm(jobs, desc=f"fig7 draws ({config.dataset})", unit="set"):
        def compute(n=n, s=s):
            x = load_points(source.name, n, [config.seed, s, n], dim=source.dim,
                            data_dir=source.directory or "", split=source.split or "auto").x
            gram = x @ x.T
            with jax.enable_x64(True):
                tb = relu_kernel_trace(
                    x, depth=config.max_depth, layers=depths, get=("ntk_normalized",)
                ).ntk_normalized
                # One symmetric eigensolve per depth, batched on the accelerator if any.
                return {"lambda_min": np.asarray(jax.numpy.linalg.eigvalsh(tb)[:, 0]),
                        "median_correlation": np.median(gram[np.triu_indices(n, 1)])}

        stage = out.stage(f"lambda_n{n}_s{s}", compute)
        lam[(n, s)] = stage["lambda_min"]
        correlations.append(float(stage["median_correlation"]))

    # Over the draws of each n, at each depth: [n, depth], n as config.ns.
    draws = [np.stack([lam[(n, s)] for s in range(config.seeds)]) for n in config.ns]
    over_draws = {stat: np.array([[getattr(v[:, k], stat)() for k in range(len(depths))] for v in draws])
                  for stat in ("mean", "min", "max")}
    rows = [[n, int(d), *(over_draws[stat][i, k] for stat in over_draws)]
            for i, n in enumerate(config.ns) for k, d in enumerate(depths)]
    results = {"data_dir": str(source.directory), "split": source.split, "data": data} if data else {}
    results |= {
        "dataset": source.name, "dim": source.dim, "depths": depths,
        "lambda_min": over_draws,
        "limit": 0.75,
        "median_correlation_depth1": float(np.median(correlations)),
        "n_greater_than_d": [n for n in config.ns if n > source.dim],
        "tables": {"lambda_min.csv": table(["n", "depth", "mean", "min", "max"], rows)},
    }
    return results


def report(config: Config, results: dict, out) -> dict:
    figure = _plot(out, config, results)
    out.write_summary(_summary(config, results, figure))
    depths, curves = _curves(config, results)
    n, marks = config.ns[-1], _marks(depths)
    return {
        f"lambda_min at depths {marks} (n={n})":
            " / ".join(f"{curves[n][0][k]:.3g}" for k in _at(depths, marks)),
        "figure": str(out.file(figure)),
    }


def _marks(depths) -> list[int]:
    """The depths of the summary's table: those of 1, 2, 3, 5, 10, 20, 50, 100, 1000 computed."""
    return [d for d in (1, 2, 3, 5, 10, 20, 50, 100, 1000) if d in depths]


def _at(depths, marks) -> list[int]:
    """The indices of ``marks`` in ``depths``."""
    return [list(depths).index(d) for d in marks]


def _curves(config, results) -> tuple[np.ndarray, dict]:
    """The depths ``[D]`` and ``n -> (mean, min, max)`` of lambda_min over the draws, each ``[D]``."""
    stats = [np.asarray(results["lambda_min"][stat], dtype=np.float64) for stat in ("mean", "min", "max")]
    return np.asarray(results["depths"]), {n: tuple(s[i] for s in stats) for i, n in enumerate(config.ns)}


def _plot(out, config, results) -> str:
    import matplotlib.pyplot as plt

    from ntkdepth.plotting import lambda_min_panels

    if results["dataset"] == "mnist":
        file = "fig7_mnist.png"
        title, tail = f"Figure 7 on MNIST ({results['split']} split, on $S^{{783}}$): ", ""
    else:
        file, title, tail = "fig7.png", "Figure 7: ", f", points on $S^{{{results['dim'] - 1}}}$"
    depths, curves = _curves(config, results)
    fig = lambda_min_panels(
        depths, curves, "log scale (depths where it is 0 up to rounding omitted)",
        title + "smallest eigenvalue of the normalized NTK" + tail, band=config.seeds > 1,
    )
    out.save_figure(fig, file)
    plt.close(fig)
    return file


def _summary(config, results, figure) -> str:
    if results["dataset"] == "mnist":
        title = "Figure 7 on MNIST"
        what = (f"MNIST images from the {results['split']} split in {results['data_dir']}, drawn uniformly "
                f"without replacement and normalized onto S^{results['dim'] - 1}")
    else:
        title, what = "Figure 7", f"Points uniform on S^{results['dim'] - 1}"
    depths, curves = _curves(config, results)
    marks = _marks(depths)
    lines = [
        f"# {title}: smallest eigenvalue of the normalized NTK against depth",
        "",
        f"{what}; n in {config.ns}, depths 1..{config.max_depth}, {config.seeds} draw(s) per n "
        "(mean shown).",
        "",
        *([mnist_data_line(results.get("data")), ""] if results["dataset"] == "mnist" else []),
        "| n | " + " | ".join(f"L = {d}" for d in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for n in config.ns:
        lines.append(f"| {n} | " + " | ".join(f"{curves[n][0][k]:.3g}" for k in _at(depths, marks)) + " |")
    lines += ["", _finding(config, results), "", f"Files: {figure}, lambda_min.csv, results.json."]
    return "\n".join(lines)


def _finding(config, results) -> str:
    """The summary's finding, every claim in it checked against the numbers it quotes."""
    depths, curves = _curves(config, results)
    mean = {n: curves[n][0] for n in config.ns}
    marks = _marks(depths)
    n = config.ns[-1]
    v = mean[n]
    d5 = 5 if 5 in depths else marks[min(2, len(marks) - 1)]
    k5 = list(depths).index(d5)
    increasing = all(np.all(np.diff(mean[m]) > -1e-12) for m in config.ns)
    lowest_first = all(
        np.all(mean[a][1:] >= mean[b][1:] - 1e-12) for a, b in zip(config.ns, config.ns[1:])
    ) if sorted(config.ns) == list(config.ns) else None
    singular = results["n_greater_than_d"]
    points = "images" if results["dataset"] == "mnist" else "points"
    return (
        "Finding: lambda_min(Thetabar^L) "
        + ("increases with depth for every n" if increasing
           else "does not increase monotonically for every n")
        + f"; for n = {n} it goes from "
        + (f"0 (up to rounding: {v[0]:.1e})" if abs(v[0]) < 1e-10 else f"{v[0]:.2g}")
        + f" at depth 1 to {v[k5]:.3g} ({v[k5] / 0.75:.0%} of the limit 3/4) at depth {d5} "
        f"and {v[-1]:.3g} at depth {config.max_depth}"
        + (f"; at depth 1 the Gram matrix of n = {', '.join(map(str, singular))} {points} in "
           f"R^{results['dim']} is singular" if singular else "")
        + (", and larger n lowers every curve beyond depth 1" if lowest_first
           else "; larger n does not lower every curve beyond depth 1" if lowest_first is False else "")
        + f". The median correlation of a pair of {points} is {results['median_correlation_depth1']:.2f} "
        "(uniform points on a sphere of high dimension give about 0)."
    )
