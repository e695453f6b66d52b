"""Table 2: NTK regression on MNIST with early stopping (paper, Appendix D).

The paper trains the infinite-width NTK predictor on a small MNIST subset at
a moderate depth, with one-hot targets and early stopping, and reports on
held-out images the average error (with its standard deviation), the
accuracy and the F1 score. Here the predictor is the gradient-flow mean
predictor of the normalized NTK (Propositions 3 and 6; docs/predictor.md)

    mu_t(x) = Thetabar^L(x, X) P_t Y,    P_t = Thetabar^{-1} (I - exp(-t Thetabar)),

with Thetabar^L = Theta^L / Theta^L(x, x) exact in float64 (relu_kernel_trace;
W_std^2 = 2, no bias, images on S^783) and Y the one-hot labels. Using the
normalized kernel measures time in units where the kernel's diagonal is 1: for
the raw NTK, whose diagonal is 2L/784, t corresponds to gradient-flow time
t * 784 / (2L). The predictor is the mean over initializations (f_0 = 0).

For each of several random subsets, n_train training, n_val validation and
n_test held-out images are drawn disjointly, uniformly without replacement
from one MNIST split. The stopping time is chosen by the validation MSE;
the table compares it with no early stopping (t = inf) and with Theorem 3's
t = 1 / lambda_min(Thetabar^L). Metrics (ntkdepth.metrics): the mean squared
error of the 10 outputs against the one-hot targets (the "average error"),
the misclassification rate and accuracy of the largest output, and the macro
F1 score; each is averaged over subsets, with its standard deviation across
subsets. A sweep over depth x stopping time shows where the metrics are best.

Every method's test outputs are kept per subset (stages/), so that other
predictors trained on the same subsets can be evaluated with the same
evaluate() and added as rows of the table.

Finite networks (``widths``): alongside the kernel, ReLU networks of depth L at
NTK parameterization (W_std^2 = 2, no bias, ``ntkdepth.models.MLP``) are trained
by full-batch gradient descent on the same training images, centered
(f_theta - f_theta0, whose infinite-width limit is the mean predictor above
with f_0 = 0). The network sees the images on the sphere of radius sqrt(784),
where Sigma^1(x, x) = W_std^2 = 2 and Theta^L(x, x) = 2L for every input
(checked against relu_kernel_trace), so Theta^L = 2L Thetabar^L and gradient
flow on Theta^L for the time t / (2L) is the normalized kernel's flow for the
time t. Each network is trained for its subset's validation-chosen t at the
table's depth, in steps of dt = step_fraction / lambda_max(Theta^L) (learning
rate N dt for the batch-mean loss); a t that is infinite or needs more than
``max_steps`` steps is replaced by the largest time of the grid within
``max_steps`` (reported). Rows "network n = ..." give the same metrics (over
subsets x initializations); the relative distance of the held-out outputs to
the kernel predictor's at the same t measures the approach to the limit, with a
power law fitted in the width (about n^{-1/2} expected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np

from ntkdepth.config import mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import load_mnist, mnist_dir, resolve_split, sample_on_sphere
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.metrics import macro_f1, mse, one_hot, predicted_classes
from ntkdepth.runs import RunDir
from ntkdepth.theory import GradientFlowPredictor, SingularKernelError, stopping_time

NAME = "table2"
DESCRIPTION = "NTK regression on MNIST with early stopping: error, accuracy, macro F1; depth x time sweep"

NUM_CLASSES = 10
METRICS = ("mse", "error_rate", "accuracy", "macro_f1")


@dataclass(frozen=True)
class Config:
    n_train: int = setting(500, help="training images per subset", min=2, max=20000)
    n_val: int = setting(200, help="validation images per subset (choose the stopping time)", min=1)
    n_test: int = setting(1000, help="held-out images per subset (the reported metrics)", min=1)
    subsets: int = setting(5, help="random subsets (train, validation, held-out drawn disjointly)", min=1)
    depth: int = setting(10, help="depth L of the table's NTK", min=1, max=100000)
    depths: list[int] = setting(
        [1, 2, 3, 5, 10, 20, 50, 100], help="depths of the sweep (the table's depth is added)",
        min=1, max=100000,
    )
    times: list[float] = setting(
        [0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0],
        help="finite stopping times t of the sweep, for Thetabar^L (t = inf is added)", min=0.0,
    )
    data_dir: str = mnist_dir_setting()
    split: str = mnist_split_setting()
    seed: int = setting(0, help="seed of the subsets", min=0)
    widths: list[int] = setting(
        [64, 256, 1024],
        help="hidden widths of the finite networks trained alongside the kernel ([]: no networks)",
        min=1, max=1_000_000, min_len=0, distinct="exponents are fitted over distinct widths",
    )
    network_seeds: int = setting(1, help="networks (initializations) per subset and width", min=1)
    network_subsets: int = setting(
        2, help="subsets that also train networks: the first ones (0: all)", min=0,
    )
    step_fraction: float = setting(
        0.9, help="gradient step of the networks as dt * lambda_max(Theta^L) (< 1: stable)",
        min=1e-6, max=1.0,
    )
    max_steps: int = setting(
        700, help="most gradient steps per network; a stopping time needing more is replaced by the "
                  "largest time of the grid within it", min=1,
    )

    def check(self):
        if not self.times or len(set(self.times)) != len(self.times):
            raise ValueError(f"times must be a non-empty list of distinct times; got {self.times}")
        if not self.depths:
            raise ValueError("depths must not be empty")
        if len(set(self.widths)) != len(self.widths):
            raise ValueError(f"widths must be distinct; got {self.widths}")
        if self.widths and self.depth < 2:
            raise ValueError("finite networks need depth >= 2 (one hidden layer); set widths = []")
        if self.network_subsets > self.subsets:
            raise ValueError(
                f"network_subsets = {self.network_subsets} exceeds subsets = {self.subsets}"
            )


class Subset(NamedTuple):
    """One random subset: unit vectors ``x_*`` ``[n_*, 784]`` and integer labels ``[n_*]``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    indices: np.ndarray  # [n_train + n_val + n_test] dataset indices: train, then validation, then test


def draw_subset(images: np.ndarray, labels: np.ndarray, config: Config, s: int) -> Subset:
    """Subset ``s``: one uniform draw without replacement, split into train, validation and test."""
    a, b = config.n_train, config.n_train + config.n_val
    total = b + config.n_test
    sample = sample_on_sphere(np.random.default_rng([config.seed, s]), images, labels, total)
    x, y = sample.x, sample.labels
    return Subset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], sample.indices)


# Kernel rows held at once: every depth of a group of depths (float64), and one block of rows
# while relu_kernel_trace computes them.
_GROUP_BYTES = 1.5e9
_BLOCK_ENTRIES = 8_000_000


def kernel_outputs(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    depths: Sequence[int],
    times: Sequence[float],
    theorem3_depth: int | None = None,
    progress: bool = False,
):
    """Outputs of the mean NTK predictor ``mu_t(x) = Thetabar^L(x, X) P_t Y`` at every depth and time.

    Args:
      x_train: ``[n, p]`` training inputs on the sphere; y_train: ``[n]`` labels (one-hot inside).
      x_eval: ``[m, p]`` inputs to predict.
      depths: ``[D]`` distinct increasing depths; times: ``[T]`` stopping times (``np.inf`` allowed).
      theorem3_depth: also predict at Theorem 3's ``t = 1 / lambda_min`` at this depth (one of
        ``depths``), from the same factorization.

    Returns:
      ``(outputs [D, T, m, 10], lambda_min [D])``, and the Theorem 3 outputs ``[m, 10]`` when
      ``theorem3_depth`` is given; outputs at ``t = inf`` are NaN at a depth whose training
      kernel is singular (n > 784 at depth 1).

    Memory: the kernels of a group of depths (as many as fit in ``_GROUP_BYTES``; all of them
    for small n), computed ``_BLOCK_ENTRIES`` entries at a time, and one eigendecomposition
    overwriting its training kernel (the kernel plus one ``[n, n]`` matrix).
    """
    from tqdm import tqdm

    depths = [int(d) for d in depths]
    times = np.asarray(times, dtype=np.float64)
    n, m = len(x_train), len(x_eval)
    targets = one_hot(y_train, NUM_CLASSES)
    x_all = np.vstack([x_train, x_eval])  # rows [:n]: Thetabar(X, X), rows [n:]: Thetabar(x, X)
    per_depth = (n + m) * n * 8
    size = max(1, int(_GROUP_BYTES // per_depth))
    groups = [depths[i:i + size] for i in range(0, len(depths), size)]
    rows = max(1, _BLOCK_ENTRIES // n)
    outputs = np.full((len(depths), len(times), m, NUM_CLASSES), np.nan)
    lam = np.empty(len(depths))
    theorem3 = np.full((m, NUM_CLASSES), np.nan)
    finite = np.isfinite(times)
    bar = tqdm(total=len(depths), desc="kernel regression, depths", unit="depth", leave=False,
               disable=not progress)
    d = 0
    for group in groups:
        k = np.empty((len(group), n + m, n))
        with jax.enable_x64(True):
            for r in range(0, n + m, rows):
                k[:, r:r + rows] = np.asarray(relu_kernel_trace(
                    x_all[r:r + rows], x_train, depth=group[-1], layers=group, get=("ntk_normalized",),
                ).ntk_normalized)
        for j, depth in enumerate(group):
            # The training block is factorized in place: only the rows [n:] are needed after.
            pred = GradientFlowPredictor(k[j, :n], targets, overwrite_k=True)
            lam[d] = pred.lambda_min
            if finite.any():
                outputs[d, finite] = pred.predict(times[finite], k[j, n:])
            extra = [np.inf] if not finite.all() else []
            if depth == theorem3_depth:
                extra.append(stopping_time(lam[d]) if lam[d] > 0 else np.inf)
            for e, t in enumerate(extra):
                try:
                    out = pred.predict(t, k[j, n:])
                except SingularKernelError:
                    continue  # left NaN: interpolation needs an invertible kernel
                if e == 0 and not finite.all():
                    outputs[d, ~finite] = out
                else:
                    theorem3[:] = out
            d += 1
            bar.update()
        del k
    bar.close()
    if theorem3_depth is None:
        return outputs, lam
    return outputs, lam, theorem3


def evaluate(outputs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of ``outputs [..., m, 10]`` against integer ``labels [m]``: arrays ``[...]``.

    NaN outputs (a singular kernel at ``t = inf``) give NaN metrics.
    """
    outputs = np.asarray(outputs)
    lead = outputs.shape[:-2]
    targets = one_hot(labels, NUM_CLASSES)
    result = {name: np.full(lead, np.nan) for name in METRICS}
    for idx in np.ndindex(*lead):
        out = outputs[idx]
        if not np.all(np.isfinite(out)):
            continue
        pred = predicted_classes(out)
        result["mse"][idx] = mse(out, targets)
        result["accuracy"][idx] = float(np.mean(pred == labels))
        result["error_rate"][idx] = 1.0 - result["accuracy"][idx]
        result["macro_f1"][idx] = macro_f1(labels, pred, NUM_CLASSES)
    return result


def network_time(
    lambda_max: float, times: Sequence[float], chosen: int, step_fraction: float, max_steps: int
) -> tuple[int, int, bool]:
    """The grid time a network trains for: ``(time index, steps, capped)``.

    ``times[chosen]`` if it is finite and reachable in ``max_steps`` steps of
    ``dt = step_fraction / lambda_max`` (normalized-kernel time), else the largest
    finite time of the grid that is, no later than ``times[chosen]`` (``capped``).
    """
    times = np.asarray(times, dtype=np.float64)

    def steps(t):
        return max(1, int(np.ceil(t * lambda_max / step_fraction - 1e-9)))

    t = times[chosen]
    if np.isfinite(t) and steps(t) <= max_steps:
        return int(chosen), steps(t), False
    ok = [k for k, tk in enumerate(times) if np.isfinite(tk) and tk <= t and steps(tk) <= max_steps]
    if not ok:
        raise ValueError(
            f"no time of the grid is reachable in max_steps = {max_steps} steps "
            f"(lambda_max(Thetabar) = {lambda_max:.3g}, smallest time {np.min(times):g} needs "
            f"{steps(np.min(times))}); raise max_steps or add a smaller time"
        )
    k = max(ok, key=lambda i: times[i])
    return int(k), steps(times[k]), True


def network_kernel_check(x_train: np.ndarray, depth: int) -> dict[str, float]:
    """Theta^L on the training images scaled to radius sqrt(p): its diagonal, its ratio to Thetabar^L.

    Returns ``lambda_max`` of Thetabar^L, the largest ``|Theta^L(x, x) - 2L|`` and
    the largest ``|Theta^L - 2L Thetabar^L| / (2L)``.
    """
    radius = np.sqrt(x_train.shape[1])
    with jax.enable_x64(True):
        tr = relu_kernel_trace(x_train * radius, x_train * radius, depth=depth, layers=[depth],
                               get=("ntk", "ntk_normalized"))
        theta, bar = np.asarray(tr.ntk[0]), np.asarray(tr.ntk_normalized[0])
    return {
        "lambda_max": float(np.linalg.eigvalsh(bar)[-1]),
        "diag_error": float(np.max(np.abs(np.diag(theta) - 2 * depth))),
        "ratio_error": float(np.max(np.abs(theta - 2 * depth * bar)) / (2 * depth)),
    }


def train_networks(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    depth: int,
    t: float,
    steps: int,
    widths: Sequence[int],
    seeds: Sequence[int],
    workdir,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Centered networks trained for normalized-kernel time ``t``: ``(outputs [W, K, m, 10], learning rate)``.

    Inputs ``x_*`` are unit vectors; the networks see them scaled to radius
    ``sqrt(p)``, where Theta^L = 2L Thetabar^L, so ``steps`` steps of full-batch
    gradient descent cover the gradient-flow time ``t / (2L)`` of Theta^L. The
    outputs are ``f_theta(x) - f_theta0(x)`` on ``x_eval`` after the last step.
    """
    import jax.numpy as jnp

    from ntkdepth.models import MLP
    from ntkdepth.training import FullBatchData, TrainSpec, run_width_sweep

    n, p = x_train.shape
    radius = np.sqrt(p)
    dt = t / (2 * depth) / steps  # Theta^L time per step
    lr = n * dt  # the batch loss is the mean over the n images
    spec = TrainSpec(steps=steps, learning_rate=lr, center_output=True)
    data = FullBatchData(jnp.asarray(x_train * radius, jnp.float32),
                         jnp.asarray(one_hot(y_train, NUM_CLASSES), jnp.float32))

    def make_model(width, seed):
        return MLP(p, [width] * (depth - 1), NUM_CLASSES, parameterization="ntk", W_std=2.0**0.5,
                   rngs=seed)

    runs = run_width_sweep(make_model, data, spec, jnp.asarray(x_eval * radius, jnp.float32),
                           widths, seeds, workdir, progress=progress)
    outputs = np.stack([
        np.stack([runs[(w, sd)].outputs[-1].astype(np.float64) - runs[(w, sd)].outputs[0]
                  for sd in seeds])
        for w in widths
    ])
    return outputs, lr


def run(config: Config, out: RunDir) -> dict:
    directory = mnist_dir(config.data_dir)
    split = resolve_split(config.data_dir, config.split)
    images, labels = load_mnist(config.data_dir, split)
    need = config.n_train + config.n_val + config.n_test
    if need > len(images):
        raise ValueError(
            f"n_train + n_val + n_test = {need} exceeds the {len(images)} images of the {split} split"
        )
    depths = sorted(set(config.depths) | {config.depth})
    times = [*sorted(config.times), np.inf]
    d_table = depths.index(config.depth)

    def ntk_stage(s: int):
        def compute():
            sub = draw_subset(images, labels, config, s)
            x_eval = np.vstack([sub.x_val, sub.x_test])
            outputs, lam, theorem3 = kernel_outputs(
                sub.x_train, sub.y_train, x_eval, depths, times, theorem3_depth=config.depth,
                progress=True,
            )
            val, test = outputs[:, :, : config.n_val], outputs[:, :, config.n_val:]
            val_metrics = evaluate(val, sub.y_val)
            test_metrics = evaluate(test, sub.y_test)
            # Early stopping: the time with the smallest validation MSE, at every depth.
            chosen = np.nanargmin(val_metrics["mse"], axis=1)  # [D]
            t_theorem3 = stopping_time(lam[d_table]) if lam[d_table] > 0 else np.inf
            return {
                "indices": sub.indices, "y_test": sub.y_test, "lambda_min": lam,
                "chosen_time_index": chosen, "t_theorem3": t_theorem3,
                **{f"val_{k}": v for k, v in val_metrics.items()},
                **{f"test_{k}": v for k, v in test_metrics.items()},
                # Test outputs at the table's depth, kept for comparisons with other predictors.
                "test_outputs": test[d_table], "test_outputs_theorem3": theorem3[config.n_val:],
            }

        return out.stage(f"ntk_subset{s}", compute)

    from tqdm import tqdm

    print(f"  {config.subsets} subsets of {config.n_train} training images from the {split} split, "
          f"depths {depths}, {len(times)} times", flush=True)
    stages = [ntk_stage(s) for s in tqdm(range(config.subsets), desc="table2 subsets", unit="subset")]

    sweep = {m: np.stack([st[f"test_{m}"] for st in stages]) for m in METRICS}  # [S, D, T]
    val_mse = np.stack([st["val_mse"] for st in stages])  # [S, D, T]
    lam = np.stack([st["lambda_min"] for st in stages])  # [S, D]
    chosen = np.stack([st["chosen_time_index"] for st in stages])  # [S, D]
    # Early stopping at every depth: each subset stopped at its validation-chosen time.
    early = {m: np.take_along_axis(sweep[m], chosen[:, :, None], axis=2)[:, :, 0] for m in METRICS}  # [S, D]
    theorem3 = [evaluate(st["test_outputs_theorem3"], st["y_test"]) for st in stages]
    # The table: one row per method, each metric per subset at the table's depth ([S] arrays).
    # Other predictors trained on the same subsets add rows here.
    rows = {
        "ntk_early_stopping": {m: early[m][:, d_table] for m in METRICS},
        "ntk_t_inf": {m: sweep[m][:, d_table, -1] for m in METRICS},
        "ntk_theorem3_time": {m: np.array([float(ev[m]) for ev in theorem3]) for m in METRICS},
    }
    chosen_times = [times[k] for k in chosen[:, d_table]]
    t_theorem3 = [float(st["t_theorem3"]) for st in stages]

    # Finite networks on the first subsets, each trained for its subset's chosen time (or the cap).
    def network_stage(s: int):
        def compute():
            sub = draw_subset(images, labels, config, s)
            check = network_kernel_check(sub.x_train, config.depth)
            k, steps, capped = network_time(check["lambda_max"], times, int(chosen[s, d_table]),
                                            config.step_fraction, config.max_steps)
            # Every setting (one width's runs do not depend on the list of widths), and
            # what the subset's kernel stage chose.
            identity = out.settings(exclude=("widths",), subset=s, split=split, t=times[k],
                                    steps=steps)
            seeds = [1000 * s + j for j in range(config.network_seeds)]
            outputs, lr = train_networks(sub.x_train, sub.y_train, sub.x_test, config.depth, times[k],
                                         steps, config.widths, seeds,
                                         out.cache_dir(f"networks_subset{s}", identity))
            return {"time_index": k, "steps": steps, "capped": capped, "learning_rate": lr,
                    "outputs": outputs, **check}

        return out.stage(f"networks_subset{s}", compute)

    networks = None
    if config.widths:
        n_net = config.network_subsets or config.subsets
        print(f"  networks: widths {config.widths} x {config.network_seeds} seed(s) on {n_net} subset(s), "
              f"depth {config.depth}", flush=True)
        net = [network_stage(s) for s in range(n_net)]
        networks = _network_results(config, times, d_table, stages, sweep, net)

    table_rows = [
        [method, config.depth, m, *_mean_sd(per[m]), *per[m]] for method, per in rows.items() for m in METRICS
    ]
    if networks is not None:
        for method, per in networks["rows"].items():
            for m in METRICS:
                cols = networks["per_subset"][method][m]
                table_rows.append([method, config.depth, m, *_mean_sd(per[m]), *cols,
                                   *[""] * (config.subsets - len(cols))])
        out.write_csv("networks.csv", ["width", "subset", "seed", "t", "capped", "steps", "learning_rate",
                                       *METRICS, *[f"kernel_{m}" for m in METRICS],
                                       "relative_output_distance"], networks["csv"])
    out.write_csv("table2.csv", ["method", "depth", "metric", "mean", "std_over_subsets",
                                 *[f"subset{s}" for s in range(config.subsets)]], table_rows)
    sweep_rows = [
        [depth, time, *[_nanmean(sweep[m][:, d, t]) for m in METRICS], _nanmean(val_mse[:, d, t])]
        for d, depth in enumerate(depths) for t, time in enumerate(times)
    ]
    out.write_csv("sweep.csv", ["depth", "t", *[f"test_{m}" for m in METRICS], "val_mse"], sweep_rows)

    mean_acc = _nanmean(sweep["accuracy"], axis=0)  # [D, T]
    mean_mse = _nanmean(sweep["mse"], axis=0)
    best_acc = np.unravel_index(np.nanargmax(mean_acc), mean_acc.shape)
    best_mse = np.unravel_index(np.nanargmin(mean_mse), mean_mse.shape)
    val_choice = np.nanargmin(_nanmean(val_mse, axis=0), axis=1)  # [D]: by mean validation MSE
    results = {
        "data_dir": str(directory), "split": split,
        "n_train": config.n_train, "n_val": config.n_val, "n_test": config.n_test,
        "subsets": config.subsets, "depth": config.depth, "depths": depths, "times": times,
        "table": {
            method: {m: dict(zip(("mean", "std"), _mean_sd(v)), per_subset=v) for m, v in per.items()}
            for method, per in rows.items()
        },
        "chosen_times": chosen_times, "theorem3_times": t_theorem3,
        "lambda_min_at_depth": {str(d): float(np.mean(lam[:, k])) for k, d in enumerate(depths)},
        "sweep_mean": {m: _nanmean(sweep[m], axis=0) for m in METRICS},
        "best_accuracy": {"depth": depths[best_acc[0]], "t": times[best_acc[1]],
                          "accuracy": float(mean_acc[best_acc])},
        "best_mse": {"depth": depths[best_mse[0]], "t": times[best_mse[1]],
                     "mse": float(mean_mse[best_mse])},
        "validation_choice_per_depth": {str(d): times[int(val_choice[k])] for k, d in enumerate(depths)},
        "early_stopping_per_depth": {m: np.mean(early[m], axis=0) for m in METRICS},
    }
    if networks is not None:
        results["networks"] = networks["json"]
        results["table"].update({
            method: {m: dict(zip(("mean", "std"), _mean_sd(v)), per_subset_and_seed=v) for m, v in per.items()}
            for method, per in networks["rows"].items()
        })
    out.write_json("results.json", results)
    _plot_sweep(out, config, split, depths, times, mean_acc, mean_mse, best_acc, best_mse, val_choice)
    _plot_confusion(out, config, stages, d_table)
    if networks is not None:
        _plot_networks(out, config, networks)
    out.write_summary(_summary(config, directory, split, depths, times, rows, chosen_times, t_theorem3,
                               mean_acc, mean_mse, best_acc, best_mse, lam, early, networks))
    es = rows["ntk_early_stopping"]
    result = {
        f"accuracy at depth {config.depth} (early stopping)": f"{np.mean(es['accuracy']):.4f}",
        "best sweep accuracy": f"{mean_acc[best_acc]:.4f} at depth {depths[best_acc[0]]}, "
                               f"t = {times[best_acc[1]]:g}",
        "figure": str(out.file("table2_sweep.png")),
    }
    if networks is not None:
        nj = networks["json"]
        result["network output distance to the kernel"] = ", ".join(
            f"{d['mean']:.3g} (n = {w})" for w, d in zip(nj["widths"], nj["relative_output_distance"]))
        if nj["fit"] is not None:
            f = nj["fit"]
            result["fitted exponent in width"] = f"{f['exponent']:.2f}" + (
                f" +- {f['stderr']:.2f}" if np.isfinite(f["stderr"]) else "")
        result["network figure"] = str(out.file("table2_networks.png"))
    return result


def _network_results(config, times, d_table, stages, sweep, net) -> dict:
    """Metrics of the networks, the kernel's at the same times, and their output distances."""
    from ntkdepth.empirical import fit_power_law

    widths = list(config.widths)
    n_net, n_seeds = len(net), config.network_seeds
    tidx = np.array([int(n["time_index"]) for n in net])
    ref = np.stack([stages[s]["test_outputs"][tidx[s]] for s in range(n_net)])  # [S', m, 10]
    outs = np.stack([n["outputs"] for n in net])  # [S', W, K, m, 10]
    ev = [evaluate(n["outputs"], stages[s]["y_test"]) for s, n in enumerate(net)]
    metrics = {m: np.stack([e[m] for e in ev]) for m in METRICS}  # [S', W, K]
    kernel = {m: sweep[m][np.arange(n_net), d_table, tidx] for m in METRICS}  # [S']
    dist = (np.linalg.norm(outs - ref[:, None, None], axis=(-2, -1))
            / np.linalg.norm(ref, axis=(-2, -1))[:, None, None])  # [S', W, K]
    rows = {"ntk_network_time": kernel}
    per_subset = {"ntk_network_time": kernel}
    for i, w in enumerate(widths):
        rows[f"network_n{w}"] = {m: metrics[m][:, i].ravel() for m in METRICS}
        per_subset[f"network_n{w}"] = {m: metrics[m][:, i].mean(axis=1) for m in METRICS}
    dist_ms = [_mean_sd(dist[:, i].ravel()) for i in range(len(widths))]
    fit = None
    if len(widths) >= 2:
        pl = fit_power_law(widths, [d[0] for d in dist_ms])
        fit = {"exponent": pl.exponent, "prefactor": pl.prefactor, "stderr": pl.stderr}
    csv_rows = [
        [w, s, 1000 * s + j, times[tidx[s]], bool(net[s]["capped"]), int(net[s]["steps"]),
         float(net[s]["learning_rate"]), *[metrics[m][s, i, j] for m in METRICS],
         *[kernel[m][s] for m in METRICS], dist[s, i, j]]
        for i, w in enumerate(widths) for s in range(n_net) for j in range(n_seeds)
    ]
    t_used = [times[k] for k in tidx]
    t_chosen = [times[int(stages[s]["chosen_time_index"][d_table])] for s in range(n_net)]
    info = {
        "widths": widths, "depth": config.depth, "subsets": n_net, "seeds_per_subset": n_seeds,
        "step_fraction": config.step_fraction, "max_steps": config.max_steps,
        "t": t_used, "t_chosen_on_validation": t_chosen, "capped": [bool(n["capped"]) for n in net],
        "steps": [int(n["steps"]) for n in net], "learning_rate": [float(n["learning_rate"]) for n in net],
        "lambda_max_thetabar": [float(n["lambda_max"]) for n in net],
        "theta_diagonal_max_error": max(float(n["diag_error"]) for n in net),
        "theta_over_2L_thetabar_max_error": max(float(n["ratio_error"]) for n in net),
        "metrics": {m: {str(w): dict(zip(("mean", "std"), _mean_sd(metrics[m][:, i].ravel())))
                        for i, w in enumerate(widths)} for m in METRICS},
        "kernel_at_same_time": {m: dict(zip(("mean", "std"), _mean_sd(kernel[m]))) for m in METRICS},
        "relative_output_distance": [{"mean": a, "std": b} for a, b in dist_ms],
        "relative_output_distance_per_run": dist,
        "fit": fit,
    }
    return {"rows": rows, "per_subset": per_subset, "csv": csv_rows, "json": info,
            "metrics": metrics, "kernel": kernel, "dist": dist}


def _mean_sd(values) -> tuple[float, float]:
    """Mean and standard deviation (n - 1 in the denominator; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else 0.0


def _nanmean(a, axis=None):
    a = np.asarray(a, dtype=np.float64)
    finite = np.isfinite(a)
    count = finite.sum(axis=axis)
    total = np.where(finite, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _time_label(t: float, tex: bool = False) -> str:
    if np.isinf(t):
        return r"$\infty$" if tex else "inf"
    return f"{t:g}"


def _plot_sweep(out, config, split, depths, times, mean_acc, mean_mse, best_acc, best_mse, val_choice):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 2, figsize=(6.2 + 0.62 * len(times), 0.45 * len(depths) + 2.4))
    acc = mean_acc[np.isfinite(mean_acc)]
    err = mean_mse[np.isfinite(mean_mse)]
    # Accuracy: the color scale spans the top 0.3 so that the good region shows its structure
    # (lower cells take the lowest color; every cell is labelled with its value).
    acc_norm = Normalize(vmin=max(acc.min(), acc.max() - 0.3), vmax=acc.max())
    # MSE: a log scale, since an ill-conditioned kernel at t = inf can be off by orders of magnitude.
    mse_norm = LogNorm(vmin=err.min(), vmax=err.max())
    panels = [
        (axes[0], mean_acc, "test accuracy", "viridis", acc_norm, best_acc, "{:.3f}",
         "min" if acc.min() < acc_norm.vmin else "neither"),
        (axes[1], mean_mse, "test MSE (outputs vs one-hot)", "viridis_r", mse_norm, best_mse, "{:.4f}",
         "neither"),
    ]
    for ax, values, title, cmap, norm, best, fmt, extend in panels:
        im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
        for (d, t), v in np.ndenumerate(values):
            if np.isfinite(v):
                r, g, b, _ = im.cmap(im.norm(v))
                color = "w" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "k"
                ax.text(t, d, fmt.format(v), ha="center", va="center", fontsize=7, color=color)
            else:
                ax.text(t, d, "singular", ha="center", va="center", fontsize=7)
        ax.add_patch(Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, ec="red", lw=2))
        ax.plot(val_choice, np.arange(len(depths)), "o", mfc="none", mec="red", ms=15, mew=1.0)
        ax.set_xticks(range(len(times)), [_time_label(t, tex=True) for t in times])
        ax.set_yticks(range(len(depths)), [str(d) for d in depths])
        ax.set_xlabel(r"stopping time $t$ (kernel $\bar\Theta^L$)")
        ax.set_ylabel("depth $L$")
        ax.set_title(f"{title}\nbox: best; circle: t chosen on validation", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85, extend=extend)
    fig.suptitle(
        f"NTK regression on MNIST ({split} split): {config.n_train} training images, mean over "
        f"{config.subsets} subsets of {config.n_test} held-out images"
    )
    fig.tight_layout()
    out.save_figure(fig, "table2_sweep.png")
    plt.close(fig)


def _plot_confusion(out, config, stages, d_table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ntkdepth.metrics import confusion_matrix

    cm = sum(
        confusion_matrix(
            st["y_test"],
            predicted_classes(st["test_outputs"][int(st["chosen_time_index"][d_table])]),
            NUM_CLASSES,
        )
        for st in stages
    )
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), c in np.ndenumerate(cm):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                    color="w" if rates[i, j] > 0.5 else "k")
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_yticks(range(NUM_CLASSES))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"depth {config.depth}, early stopping: counts over {config.subsets} subsets\n"
                 "(color: fraction of the true digit)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.85)
    fig.tight_layout()
    out.save_figure(fig, "table2_confusion.png")
    plt.close(fig)


def _plot_networks(out, config, networks):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info, metrics, kernel, dist = networks["json"], networks["metrics"], networks["kernel"], networks["dist"]
    widths = np.asarray(info["widths"], dtype=np.float64)
    t_text = _times_text(info["t"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, m, label in ((axes[0], "accuracy", "test accuracy"),
                         (axes[1], "mse", "test MSE (outputs vs one-hot)")):
        per = metrics[m].transpose(1, 0, 2).reshape(len(widths), -1)  # [W, S' K]
        mean = per.mean(axis=1)
        sd = per.std(axis=1, ddof=1) if per.shape[1] > 1 else np.zeros_like(mean)
        ax.errorbar(widths, mean, yerr=sd, fmt="o-", capsize=3, label="finite networks (mean, s.d.)")
        k_mean, k_sd = _mean_sd(kernel[m])
        ax.axhline(k_mean, color="k", ls="--", label="kernel predictor, same t")
        if k_sd > 0:
            ax.axhspan(k_mean - k_sd, k_mean + k_sd, color="k", alpha=0.08)
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(int(w)) for w in widths])
        ax.set_xlabel("width n")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[2]
    per = dist.transpose(1, 0, 2).reshape(len(widths), -1)
    for i, w in enumerate(widths):
        ax.plot(np.full(per.shape[1], w), per[i], ".", color="0.6", ms=4)
    mean = per.mean(axis=1)
    ax.plot(widths, mean, "o-", label="mean over subsets x seeds")
    if info["fit"] is not None:
        f = info["fit"]
        grid = np.geomspace(widths.min(), widths.max(), 50)
        ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "r--",
                label=f"fit: n^({f['exponent']:.2f} +- {f['stderr']:.2f})"
                if np.isfinite(f["stderr"]) else f"fit: n^({f['exponent']:.2f})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.set_xlabel("width n")
    ax.set_title("|f_net - mu_t| / |mu_t| on held-out images\n(kernel predictor: 0)", fontsize=10)
    ax.legend(fontsize=8)
    capped = any(info["capped"])
    fig.suptitle(
        f"Centered ReLU networks of depth {config.depth} (NTK parameterization) vs the NTK predictor, "
        f"{config.n_train} training images, t = {t_text}"
        + (" (capped by max_steps)" if capped else " (chosen on validation)"),
        fontsize=11,
    )
    fig.tight_layout()
    out.save_figure(fig, "table2_networks.png")
    plt.close(fig)


def _network_text(config, networks) -> list[str]:
    info, dist = networks["json"], networks["dist"]
    widths = info["widths"]
    acc = info["metrics"]["accuracy"]
    k_acc = info["kernel_at_same_time"]["accuracy"]["mean"]
    t_used = info["t"]
    n_capped = sum(info["capped"])
    t_text = _times_text(t_used)
    chosen_text = ", ".join(_time_label(t) for t in info["t_chosen_on_validation"])
    lines = [
        "",
        f"Finite networks: ReLU networks of depth {config.depth} at NTK parameterization (W_std^2 = 2, no "
        f"bias), {info['seeds_per_subset']} initialization(s) per width on each of the first "
        f"{info['subsets']} subset(s), see the images on the sphere of radius sqrt(784), where "
        f"Theta^L(x, x) = 2L = {2 * config.depth} (largest deviation {info['theta_diagonal_max_error']:.1e}) "
        f"and Theta^L = 2L Thetabar^L (largest deviation {info['theta_over_2L_thetabar_max_error']:.1e}). "
        "They train centered (f_theta - f_theta0) by full-batch gradient descent on the MSE for the "
        f"normalized-kernel time t = {t_text} (Theta^L time t / {2 * config.depth}), in "
        f"{', '.join(str(k) for k in info['steps'])} steps of dt * lambda_max(Theta^L) = "
        f"{config.step_fraction:g}. "
        + (f"The validation-chosen times ({chosen_text}) need more than max_steps = {config.max_steps} "
           f"steps on {n_capped} of {info['subsets']} subset(s) (lambda_max(Thetabar^{config.depth}) about "
           f"{np.mean(info['lambda_max_thetabar']):.3g}), so those networks, and the kernel row they are "
           "compared with, stop at the largest time of the grid within the cap."
           if n_capped else "These are the validation-chosen times.")
        + " Network rows: mean (s.d.) over subsets x initializations.",
        "",
        "| width n | accuracy | MSE | macro F1 | relative distance of outputs to the kernel predictor |",
        "|---|---|---|---|---|",
    ]
    m = info["metrics"]
    for i, w in enumerate(widths):
        d = info["relative_output_distance"][i]
        lines.append(
            f"| {w} | {m['accuracy'][str(w)]['mean']:.4f} ({m['accuracy'][str(w)]['std']:.4f}) "
            f"| {m['mse'][str(w)]['mean']:.4f} ({m['mse'][str(w)]['std']:.4f}) "
            f"| {m['macro_f1'][str(w)]['mean']:.4f} ({m['macro_f1'][str(w)]['std']:.4f}) "
            f"| {d['mean']:.4f} ({d['std']:.4f}) |"
        )
    kt = info["kernel_at_same_time"]
    lines.append(f"| kernel (infinite width), same t | {kt['accuracy']['mean']:.4f} ({kt['accuracy']['std']:.4f}) "
                 f"| {kt['mse']['mean']:.4f} ({kt['mse']['std']:.4f}) "
                 f"| {kt['macro_f1']['mean']:.4f} ({kt['macro_f1']['std']:.4f}) | 0 |")
    d0, d1 = info["relative_output_distance"][0]["mean"], info["relative_output_distance"][-1]["mean"]
    gap0 = acc[str(widths[0])]["mean"] - k_acc
    gap1 = acc[str(widths[-1])]["mean"] - k_acc
    text = (
        f"Finding (finite networks): trained for the same time t = {t_text} on the same images, "
        f"networks of width {widths[0]} reach accuracy {acc[str(widths[0])]['mean']:.4f} "
        f"({gap0:+.4f} from the kernel's {k_acc:.4f}) and of width {widths[-1]} "
        f"{acc[str(widths[-1])]['mean']:.4f} ({gap1:+.4f}); their held-out outputs differ from the "
        f"kernel predictor's by {d0:.3g} and {d1:.3g} (relative, mean over runs)"
    )
    if info["fit"] is not None:
        f = info["fit"]
        err = f" +- {f['stderr']:.2f}" if np.isfinite(f["stderr"]) else ""
        text += f", a distance falling as n^({f['exponent']:.2f}{err}) (n^-0.5 expected)"
    text += "."
    lines += ["", text]
    return lines


def _times_text(ts) -> str:
    """One time if every subset used it, else the list per subset."""
    ts = [float(t) for t in ts]
    if len(set(ts)) == 1:
        return _time_label(ts[0])
    return ", ".join(_time_label(t) for t in ts) + " (per subset)"


def _lambda_text(lam: float) -> str:
    return f"0 up to rounding: {lam:.1e}" if abs(lam) < 1e-10 else f"{lam:.2g}"


def _fmt(per: np.ndarray, spec: str) -> str:
    if not np.all(np.isfinite(per)):
        return "n/a (singular kernel)"
    mean, sd = _mean_sd(per)
    return f"{mean:{spec}} ({sd:{spec}})"


def _summary(config, directory, split, depths, times, rows, chosen_times, t_theorem3,
             mean_acc, mean_mse, best_acc, best_mse, lam, early, networks=None) -> str:
    names = {
        "ntk_early_stopping": "NTK, early stopping (t chosen on validation MSE)",
        "ntk_t_inf": "NTK, t = inf (kernel interpolation)",
        "ntk_theorem3_time": "NTK, Theorem 3's t = 1/lambda_min",
    }
    source = (
        "the training split" if split == "train" else
        "the test split (the training split is not available here, so training, validation and "
        "held-out images are all drawn from the test split, disjointly within each subset)"
    )
    d_table = depths.index(config.depth)
    lines = [
        "# Table 2: NTK regression on MNIST with early stopping",
        "",
        f"Images from {source} in {directory}, normalized onto S^783. {config.subsets} random subsets "
        f"(seed {config.seed}), each of {config.n_train} training, {config.n_val} validation and "
        f"{config.n_test} held-out images, drawn uniformly without replacement. Mean predictor of the "
        f"normalized NTK Thetabar^L (float64, W_std^2 = 2, no bias) at depth L = {config.depth}, "
        "one-hot targets. MSE: mean over held-out images and the 10 outputs of (output - one-hot)^2; "
        "error rate: fraction of held-out images whose largest output is not their digit; accuracy = "
        "1 - error rate; macro F1: the mean of the 10 per-digit F1 scores. Mean (standard deviation "
        "across subsets).",
        "",
        "| method | MSE | error rate | accuracy | macro F1 |",
        "|---|---|---|---|---|",
    ]
    table = dict(rows)
    if networks is not None:
        t_text = _times_text(networks["json"]["t"])
        names["ntk_network_time"] = f"NTK at the networks' time (t = {t_text})"
        for w in networks["json"]["widths"]:
            names[f"network_n{w}"] = f"network n = {w}, same t (gradient descent)"
        table.update(networks["rows"])
    for method, per in table.items():
        lines.append(
            f"| {names[method]} | {_fmt(per['mse'], '.4f')} | {_fmt(per['error_rate'], '.4f')} "
            f"| {_fmt(per['accuracy'], '.4f')} | {_fmt(per['macro_f1'], '.4f')} |"
        )
    lines += [
        "",
        f"Stopping times chosen on validation: {', '.join(_time_label(t) for t in chosen_times)}; "
        f"Theorem 3's 1/lambda_min: {', '.join(f'{t:.3g}' for t in t_theorem3)} "
        f"(lambda_min(Thetabar^{config.depth}) = {np.mean(lam[:, d_table]):.3g} on average).",
        "",
        "Sweep (mean test accuracy over subsets; rows: depth, columns: stopping time; last column: "
        "each subset stopped at its validation-chosen time):",
        "",
        "| depth | lambda_min | " + " | ".join(f"t = {_time_label(t)}" for t in times)
        + " | early stopping |",
        "|---|---|" + "---|" * (len(times) + 1),
    ]
    for d, depth in enumerate(depths):
        lines.append(f"| {depth} | {np.mean(lam[:, d]):.3g} | " + " | ".join(
            "singular" if not np.isfinite(v) else f"{v:.3f}" for v in mean_acc[d])
            + f" | {np.mean(early['accuracy'][:, d]):.3f} |")
    es, inf, th3 = rows["ntk_early_stopping"], rows["ntk_t_inf"], rows["ntk_theorem3_time"]
    es_acc = np.mean(early["accuracy"], axis=0)  # [D]
    peak = int(np.argmax(es_acc))
    deepest = len(depths) - 1
    sd = _mean_sd(es["accuracy"])[1]
    text = (
        f"Finding: at depth {config.depth}, the NTK predictor trained on {config.n_train} images "
        f"classifies held-out digits with accuracy {np.mean(es['accuracy']):.4f} (s.d. {sd:.4f} over "
        f"subsets), macro F1 {np.mean(es['macro_f1']):.4f} and MSE {np.mean(es['mse']):.4f} when stopped "
        f"at the time chosen on validation; t = inf gives accuracy "
        + (f"{np.mean(inf['accuracy']):.4f}" if np.all(np.isfinite(inf["accuracy"])) else "n/a (singular)")
        + (f" and Theorem 3's t = 1/lambda_min (about {np.mean(t_theorem3):.3g}) "
           f"{np.mean(th3['accuracy']):.4f}" if np.all(np.isfinite(th3["accuracy"])) else "")
        + "."
    )
    if depths[0] == 1 and len(depths) > 1:
        inf1 = mean_acc[0, -1]
        gain = np.inf if not np.isfinite(inf1) else es_acc[0] - inf1
        text += (
            (" Early stopping matters where the kernel is ill-conditioned: at" if gain > 0.01 else " At")
            + f" depth 1 (lambda_min {_lambda_text(np.mean(lam[:, 0]))}) it gives {es_acc[0]:.3f} "
            "against "
            + ("a singular kernel" if not np.isfinite(inf1) else f"{inf1:.3f}")
            + f" at t = inf, while from depth {depths[1]} on (lambda_min >= {np.min(lam[:, 1:]):.2g}) "
            f"the validation-chosen time and t = inf differ in accuracy by at most "
            f"{np.nanmax(np.abs(es_acc[1:] - mean_acc[1:, -1])):.4f}."
        )
    trend = (
        f"falls to {es_acc[deepest]:.4f} at depth {depths[deepest]}, as deep kernels approach their "
        "data-independent limit (Theorem 2)"
        if es_acc[deepest] < es_acc[peak] - 0.005
        else f"is {es_acc[deepest]:.4f} at depth {depths[deepest]}"
    )
    text += (
        f" Over depth, the early-stopped accuracy peaks at depth {depths[peak]} ({es_acc[peak]:.4f}) and "
        f"{trend}; the best cell of the sweep is {mean_acc[best_acc]:.4f} at "
        f"depth {depths[best_acc[0]]}, t = {_time_label(times[best_acc[1]])}, and the lowest MSE "
        f"{mean_mse[best_mse]:.4f} at depth {depths[best_mse[0]]}, t = {_time_label(times[best_mse[1]])}."
    )
    lines += ["", text]
    if networks is not None:
        lines += _network_text(config, networks)
    lines += [""]
    lines += [
        "Files: table2.csv (per-subset metrics of each method; network rows: seed means per subset), "
        "sweep.csv (depth x time, means over subsets), table2_sweep.png (heatmaps of test accuracy and "
        "MSE), table2_confusion.png (confusion matrix at the table's depth), "
        + ("networks.csv (every network: time, steps, metrics, the kernel's at the same time, output "
           "distance), table2_networks.png (metrics and output distance against width), "
           if networks is not None else "")
        + "results.json.",
    ]
    return "\n".join(lines)
