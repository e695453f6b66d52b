"""Kernel regression with the normalized NTK on labelled images, with early stopping (paper,
Appendix D, Table 2): the mean predictor at every depth and stopping time, the time chosen on
validation (docs/predictor.md#the-predictor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np

from ntkdepth.config import mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import load_mnist, mnist_dir, resolve_split, sample_on_sphere
from ntkdepth.data.mnist import mnist_record
from ntkdepth.data.files import DataError
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.metrics import accuracy, macro_f1, misclassification_rate, mse, one_hot, predicted_classes
from ntkdepth.theory.predictor import GradientFlowPredictor, SingularKernelError
from ntkdepth.theory.theorem3 import stopping_time

__all__ = ["METRICS", "MnistSubsets", "RegressionSettings", "Subset", "draw_subset", "evaluate",
           "ntk_regression", "subset_regression", "time_label"]

METRICS = ("mse", "error_rate", "accuracy", "macro_f1")

# Kernel rows held at once: every depth of a group of depths (float64), and one block of rows
# while relu_kernel_trace computes them.
_GROUP_BYTES = 1.5e9
_BLOCK_ENTRIES = 8_000_000


class Subset(NamedTuple):
    """One random subset: unit vectors ``x_*`` ``[n_*, p]`` and integer labels ``[n_*]``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    indices: np.ndarray  # [n_train + n_val + n_test] dataset indices: train, then validation, then test


def draw_subset(images: np.ndarray, labels: np.ndarray, n_train: int, n_val: int, n_test: int,
                seed: int, s: int) -> Subset:
    """Subset ``s``: one uniform draw without replacement (generator ``[seed, s]``), split in order
    into ``n_train`` training, ``n_val`` validation and ``n_test`` held-out images on the sphere."""
    a, b = n_train, n_train + n_val
    sample = sample_on_sphere(np.random.default_rng([seed, s]), images, labels, b + n_test)
    x, y = sample.x, sample.labels
    return Subset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], sample.indices)


@dataclass(frozen=True)
class RegressionSettings:
    """The settings of kernel regression on random MNIST subsets (the experiments' ``Config`` base)."""

    n_train: int = setting(500, help="training images per subset", min=2, max=20000)
    n_val: int = setting(200, help="validation images per subset (choose the stopping time)", min=1)
    n_test: int = setting(1000, help="held-out images per subset (the reported metrics)", min=1)
    subsets: int = setting(5, help="random subsets (train, validation, held-out drawn disjointly)", min=1)
    depth: int = setting(10, help="depth L of the table's NTK", min=1, max=100000)
    times: list[float] = setting(
        [0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0],
        help="finite stopping times t of the sweep, for Thetabar^L (t = inf is added)", min=0.0,
    )
    data_dir: str = mnist_dir_setting()
    split: str = mnist_split_setting()
    seed: int = setting(0, help="seed of the subsets", min=0)

    def check(self):
        if not self.times or len(set(self.times)) != len(self.times):
            raise ValueError(f"times must be a non-empty list of distinct times; got {self.times}")

    def stopping_times(self) -> list[float]:
        """The finite times, sorted, then ``inf``."""
        return [*sorted(self.times), np.inf]

    def load(self) -> MnistSubsets:
        """The MNIST split the subsets are drawn from; an error if it holds too few images."""
        split = resolve_split(self.data_dir, self.split)
        images, labels = load_mnist(self.data_dir, split)
        need = self.n_train + self.n_val + self.n_test
        if need > len(images):
            raise DataError(
                f"n_train + n_val + n_test = {need} exceeds the {len(images)} images of the {split} split: "
                "lower them"
            )
        return MnistSubsets(str(mnist_dir(self.data_dir)), split, images, labels, self)


class MnistSubsets(NamedTuple):
    """The images ``[N, 784]`` and labels ``[N]`` of one MNIST split, and the settings that draw subsets."""

    directory: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    settings: RegressionSettings

    def record(self, subsets: int) -> dict:
        """What drawing ``subsets`` subsets reads (:func:`~ntkdepth.data.mnist.mnist_record`)."""
        c = self.settings
        return mnist_record(self.directory, self.split, len(self.images), [c.n_train + c.n_val + c.n_test] * subsets)

    def draw(self, s: int) -> Subset:
        """Subset ``s`` (:func:`draw_subset` with the settings' sizes and seed)."""
        c = self.settings
        return draw_subset(self.images, self.labels, c.n_train, c.n_val, c.n_test, c.seed, s)


def time_label(t: float, tex: bool = False) -> str:
    """A stopping time as written in tables: ``inf`` (or TeX's infinity) for ``t = inf``."""
    if np.isinf(t):
        return r"$\infty$" if tex else "inf"
    return f"{t:g}"


def ntk_regression(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    depths: Sequence[int],
    times: Sequence[float],
    theorem3_depth: int | None = None,
    num_classes: int = 10,
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
      ``(outputs [D, T, m, K], lambda_min [D])``, and the Theorem 3 outputs ``[m, K]`` when
      ``theorem3_depth`` is given; outputs at ``t = inf`` are NaN at a depth whose training
      kernel is singular (n > p at depth 1).

    Memory: the kernels of a group of depths (as many as fit in ``_GROUP_BYTES``; all of them
    for small n), computed ``_BLOCK_ENTRIES`` entries at a time, and one eigendecomposition
    overwriting its training kernel (the kernel plus one ``[n, n]`` matrix).
    """
    from tqdm import tqdm

    depths = [int(d) for d in depths]
    times = np.asarray(times, dtype=np.float64)
    n, m = len(x_train), len(x_eval)
    targets = one_hot(y_train, num_classes)
    x_all = np.vstack([x_train, x_eval])  # rows [:n]: Thetabar(X, X), rows [n:]: Thetabar(x, X)
    size = max(1, int(_GROUP_BYTES // ((n + m) * n * 8)))
    groups = [depths[i:i + size] for i in range(0, len(depths), size)]
    rows = max(1, _BLOCK_ENTRIES // n)
    outputs = np.full((len(depths), len(times), m, num_classes), np.nan)
    lam = np.empty(len(depths))
    theorem3 = np.full((m, num_classes), np.nan)
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
    """Every metric of :data:`METRICS` for ``outputs [..., m, K]`` against integer ``labels [m]``:
    arrays ``[...]``. NaN outputs (a singular kernel at ``t = inf``) give NaN metrics."""
    outputs = np.asarray(outputs)
    lead = outputs.shape[:-2]
    targets = one_hot(labels, outputs.shape[-1])
    result = {name: np.full(lead, np.nan) for name in METRICS}
    for idx in np.ndindex(*lead):
        out = outputs[idx]
        if not np.all(np.isfinite(out)):
            continue
        pred = predicted_classes(out)
        result["mse"][idx] = mse(out, targets)
        result["accuracy"][idx] = accuracy(labels, pred)
        result["error_rate"][idx] = misclassification_rate(labels, pred)
        result["macro_f1"][idx] = macro_f1(labels, pred, outputs.shape[-1])
    return result


def subset_regression(sub: Subset, depths: Sequence[int], times: Sequence[float], depth: int,
                      progress: bool = False) -> dict[str, np.ndarray]:
    """The NTK predictor on one subset at every depth and time, early stopping chosen on validation.

    ``depth`` (one of ``depths``) is the table's depth: its held-out outputs are kept, and
    Theorem 3's time ``1 / lambda_min(Thetabar^depth)`` is evaluated there. Returns arrays:
    ``indices``, ``y_test`` of the subset; ``lambda_min [D]``; ``chosen_time_index [D]`` (the
    time of smallest validation MSE at each depth); ``t_theorem3``; ``val_METRIC`` and
    ``test_METRIC [D, T]`` for every metric; ``test_outputs [T, m, K]`` at ``depth`` and
    ``test_outputs_theorem3 [m, K]``.
    """
    n_val = len(sub.x_val)
    d_table = list(depths).index(depth)
    outputs, lam, theorem3 = ntk_regression(
        sub.x_train, sub.y_train, np.vstack([sub.x_val, sub.x_test]), depths, times,
        theorem3_depth=depth, progress=progress,
    )
    val, test = outputs[:, :, :n_val], outputs[:, :, n_val:]
    val_metrics, test_metrics = evaluate(val, sub.y_val), evaluate(test, sub.y_test)
    return {
        "indices": sub.indices, "y_test": sub.y_test, "lambda_min": lam,
        "chosen_time_index": np.nanargmin(val_metrics["mse"], axis=1),
        "t_theorem3": stopping_time(lam[d_table]) if lam[d_table] > 0 else np.inf,
        **{f"val_{k}": v for k, v in val_metrics.items()},
        **{f"test_{k}": v for k, v in test_metrics.items()},
        "test_outputs": test[d_table], "test_outputs_theorem3": theorem3[n_val:],
    }
