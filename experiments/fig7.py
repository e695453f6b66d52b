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
from ntkdepth.grids import log_grid
from ntkdepth.kernels import relu_kernel_trace
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

    per_n = {n: np.stack([lam[(n, s)] for s in range(config.seeds)]) for n in config.ns}
    rows = []
    for n, v in per_n.items():
        for k, d in enumerate(depths):
            rows.append([n, int(d), v[:, k].mean(), v[:, k].min(), v[:, k].max()])
    out.write_csv("lambda_min.csv", ["n", "depth", "mean", "min", "max"], rows)
    marks = [d for d in (1, 2, 3, 5, 10, 20, 50, 100, 1000) if d in depths]
    col = {int(d): k for k, d in enumerate(depths)}
    table = {
        str(n): {str(d): float(v[:, col[d]].mean()) for d in marks} for n, v in per_n.items()
    }
    results = {"data_dir": str(source.directory), "split": source.split,
               "dim": source.dim} if source.name == "mnist" else {}
    results |= {
        "depths": depths, "lambda_min_mean": table, "limit": 0.75,
        "median_correlation_depth1": float(np.median(correlations)),
        "n_greater_than_d": [n for n in config.ns if n > source.dim],
    }
    out.write_json("results.json", results)
    figure = _plot(out, source, depths, per_n)
    out.write_summary(_summary(config, source, per_n, marks, col, results, figure))
    n = config.ns[-1]
    return {
        f"lambda_min at depths {marks} (n={n})":
            " / ".join(f"{per_n[n][:, col[d]].mean():.3g}" for d in marks),
        "figure": str(out.file(figure)),
    }


def _plot(out, source, depths, per_n) -> str:
    import matplotlib.pyplot as plt

    from ntkdepth.plotting import lambda_min_panels

    if source.name == "mnist":
        file, title = "fig7_mnist.png", f"Figure 7 on MNIST ({source.split} split, on $S^{{783}}$): "
        tail = ""
    else:
        file, title, tail = "fig7.png", "Figure 7: ", f", points on $S^{{{source.dim - 1}}}$"
    fig = lambda_min_panels(
        depths, per_n, "log scale (depths where it is 0 up to rounding omitted)",
        title + "smallest eigenvalue of the normalized NTK" + tail,
    )
    out.save_figure(fig, file)
    plt.close(fig)
    return file


def _summary(config, source, per_n, marks, col, results, figure) -> str:
    if source.name == "mnist":
        title = "Figure 7 on MNIST"
        what = (f"MNIST images from the {source.split} split in {source.directory}, drawn uniformly "
                f"without replacement and normalized onto S^{source.dim - 1}")
    else:
        title, what = "Figure 7", f"Points uniform on S^{source.dim - 1}"
    lines = [
        f"# {title}: smallest eigenvalue of the normalized NTK against depth",
        "",
        f"{what}; n in {config.ns}, depths 1..{config.max_depth}, {config.seeds} draw(s) per n "
        "(mean shown).",
        "",
        "| n | " + " | ".join(f"L = {d}" for d in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for n, v in per_n.items():
        lines.append(f"| {n} | " + " | ".join(f"{v[:, col[d]].mean():.3g}" for d in marks) + " |")
    lines += ["", _finding(config, source, per_n, marks, col, results), "",
              f"Files: {figure}, lambda_min.csv, results.json."]
    return "\n".join(lines)


def _finding(config, source, per_n, marks, col, results) -> str:
    """The summary's finding, every claim in it checked against the numbers it quotes."""
    n = config.ns[-1]
    v = per_n[n].mean(0)
    d5 = 5 if 5 in col else marks[min(2, len(marks) - 1)]
    increasing = all(np.all(np.diff(per_n[m].mean(0)) > -1e-12) for m in config.ns)
    lowest_first = all(
        np.all(per_n[a].mean(0)[1:] >= per_n[b].mean(0)[1:] - 1e-12)
        for a, b in zip(config.ns, config.ns[1:])
    ) if sorted(config.ns) == list(config.ns) else None
    singular = results["n_greater_than_d"]
    points = "images" if source.name == "mnist" else "points"
    return (
        "Finding: lambda_min(Thetabar^L) "
        + ("increases with depth for every n" if increasing
           else "does not increase monotonically for every n")
        + f"; for n = {n} it goes from "
        + (f"0 (up to rounding: {v[0]:.1e})" if abs(v[0]) < 1e-10 else f"{v[0]:.2g}")
        + f" at depth 1 to {v[col[d5]]:.3g} ({v[col[d5]] / 0.75:.0%} of the limit 3/4) at depth {d5} "
        f"and {v[-1]:.3g} at depth {config.max_depth}"
        + (f"; at depth 1 the Gram matrix of n = {', '.join(map(str, singular))} {points} in "
           f"R^{source.dim} is singular" if singular else "")
        + (", and larger n lowers every curve beyond depth 1" if lowest_first
           else "; larger n does not lower every curve beyond depth 1" if lowest_first is False else "")
        + f". The median correlation of a pair of {points} is {results['median_correlation_depth1']:.2f} "
        "(uniform points on a sphere of high dimension give about 0)."
    )
