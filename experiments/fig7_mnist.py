"""Figure 7 on MNIST: the smallest eigenvalue of the normalized NTK against depth, for several n.

Figure 7's experiment (paper, section 6.4) on MNIST images drawn uniformly
without replacement and normalized onto S^783. At depth 1, Thetabar^1 is the
Gram matrix of the images: all their correlations are positive (pixels are
non-negative) and many pairs are close, so lambda_min is small for moderate n
and 0 once n > 784. With depth, lambda_min(Thetabar^L) increases towards
3/4, the smallest eigenvalue of the limit (3/4) I + (1/4) 1 1^T (Theorem 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from ntkdepth.config import mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import load_points, point_source
from ntkdepth.grids import log_grid
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.runs import RunDir

NAME = "fig7-mnist"
DESCRIPTION = "lambda_min of the normalized NTK against depth on MNIST for several dataset sizes"


@dataclass(frozen=True)
class Config:
    ns: list[int] = setting([100, 300, 1000], help="dataset sizes n", min=2, max=20000)
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

    source = point_source("mnist", data_dir=config.data_dir, split=config.split, need=max(config.ns))
    directory, split, dim = source.directory, source.split, source.dim
    if config.n_depths:
        depths = log_grid(config.max_depth, config.n_depths)
    else:
        depths = np.arange(1, config.max_depth + 1)
    lam, correlations = {}, []
    jobs = [(n, s) for n in config.ns for s in range(config.seeds)]
    for n, s in tqdm(jobs, desc="fig7-mnist draws", unit="set"):
        def compute(n=n, s=s):
            sample = load_points("mnist", n, [config.seed, s, n], data_dir=directory, split=split)
            gram = sample.x @ sample.x.T
            with jax.enable_x64(True):
                tb = relu_kernel_trace(
                    sample.x, depth=config.max_depth, layers=depths, get=("ntk_normalized",)
                ).ntk_normalized
                # One symmetric eigensolve per depth, batched on the accelerator if any.
                return {"lambda_min": np.asarray(jax.numpy.linalg.eigvalsh(tb)[:, 0]),
                        "indices": sample.indices,
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
    out.write_json("results.json", {
        "data_dir": str(directory), "split": split, "dim": dim, "depths": depths,
        "lambda_min_mean": table, "limit": 0.75,
        "median_correlation_depth1": float(np.median(correlations)),
        "n_greater_than_d": [n for n in config.ns if n > dim],
    })
    _plot(out, config, split, depths, per_n)
    out.write_summary(
        _summary(config, directory, split, dim, per_n, marks, col, float(np.median(correlations)))
    )
    n = config.ns[-1]
    return {
        f"lambda_min at depths {marks} (n={n})":
            " / ".join(f"{per_n[n][:, col[d]].mean():.3g}" for d in marks),
        "figure": str(out.file("fig7_mnist.png")),
    }


def _plot(out, config, split, depths, per_n):
    import matplotlib.pyplot as plt

    from ntkdepth.plotting import lambda_min_panels

    fig = lambda_min_panels(
        depths, per_n, "log scale (depths where it is 0 up to rounding omitted)",
        f"Figure 7 on MNIST ({split} split, on $S^{{783}}$): smallest eigenvalue of the normalized NTK",
    )
    out.save_figure(fig, "fig7_mnist.png")
    plt.close(fig)


def _summary(config, directory, split, dim, per_n, marks, col, median_correlation) -> str:
    lines = [
        "# Figure 7 on MNIST: smallest eigenvalue of the normalized NTK against depth",
        "",
        f"MNIST images from the {split} split in {directory}, drawn uniformly without replacement and "
        f"normalized onto S^{dim - 1}; n in {config.ns}, depths 1..{config.max_depth}, "
        f"{config.seeds} draw(s) per n (mean shown).",
        "",
        "| n | " + " | ".join(f"L = {d}" for d in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for n, v in per_n.items():
        lines.append(f"| {n} | " + " | ".join(f"{v[:, col[d]].mean():.3g}" for d in marks) + " |")
    n = config.ns[-1]
    v = per_n[n].mean(0)
    d5 = 5 if 5 in col else marks[min(2, len(marks) - 1)]
    increasing = all(np.all(np.diff(per_n[m].mean(0)) > -1e-12) for m in config.ns)
    lowest_first = all(
        np.all(per_n[a].mean(0)[1:] >= per_n[b].mean(0)[1:] - 1e-12)
        for a, b in zip(config.ns, config.ns[1:])
    ) if sorted(config.ns) == list(config.ns) else None
    singular = [m for m in config.ns if m > dim]
    lines += [
        "",
        "Finding: lambda_min(Thetabar^L) "
        + ("increases with depth for every n" if increasing
           else "does not increase monotonically for every n")
        + f"; for n = {n} it goes from "
        + (f"0 (up to rounding: {v[0]:.1e})" if abs(v[0]) < 1e-10 else f"{v[0]:.2g}")
        + f" at depth 1 to {v[col[d5]]:.3g} at depth {d5} and "
        f"{v[-1]:.3g} at depth {config.max_depth} (limit 3/4)"
        + (f"; at depth 1 the Gram matrix of n = {', '.join(map(str, singular))} images in R^{dim} is "
           "singular" if singular else "")
        + (", and larger n lowers every curve beyond depth 1" if lowest_first else "")
        + f". The images are strongly correlated (median correlation of a pair {median_correlation:.2f}, "
        "where uniform points on the sphere give about 0), so the shallow kernel is badly "
        "conditioned, yet a few layers lift lambda_min off zero, as on uniform data.",
        "",
        "Files: fig7_mnist.png, lambda_min.csv, results.json.",
    ]
    return "\n".join(lines)
