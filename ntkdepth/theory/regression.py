"""Kernel regression with the normalized NTK on labelled images, with early stopping (paper,
Appendix D, Table 2): the mean predictor at every depth and stopping time, the time chosen on
validation (docs/predictor.md#the-predictor).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from ntkdepth.kernels import kernel_trace, relu_kernel_trace, residual_alpha
from ntkdepth.metrics import accuracy, macro_f1, misclassification_rate, mse, one_hot, predicted_classes
from ntkdepth.theory.predictor import GradientFlowPredictor, SingularKernelError
from ntkdepth.theory.stability import stopping_time

__all__ = ["METRICS", "DepthKernel", "depth_kernel", "evaluate", "ntk_regression", "subset_regression"]

METRICS = ("mse", "error_rate", "accuracy", "macro_f1")

# Kernel rows held at once: every depth of a group of depths (float64), and one block of rows
# while relu_kernel_trace computes them.
_GROUP_BYTES = 1.5e9
_BLOCK_ENTRIES = 8_000_000

#: ``kernel(x1 [n1, p], x2 [n2, p], depths) -> [len(depths), n1, n2]``: the normalized NTK of the network
#: of each depth (float64, called inside ``jax.enable_x64``).
DepthKernel = Callable[[np.ndarray, np.ndarray, Sequence[int]], np.ndarray]


def depth_kernel(residual: float | str | None = None) -> DepthKernel:
    """The normalized NTK ``Thetabar^L`` of ReLU networks (``W_std^2 = 2``, no bias) at every depth asked.

    ``residual``: ``None``, the plain network (one pass over the depths); a number ``alpha``, the residual
    network's stream with that branch scale (one pass); ``"a/sqrt(L)"``, a network per depth, each with its
    own ``alpha = a / sqrt(L)`` (docs/residual.md).
    """
    if residual is None:
        def plain(x1, x2, depths):
            return np.asarray(relu_kernel_trace(x1, x2, depth=max(depths), layers=list(depths),
                                                get=("ntk_normalized",)).ntk_normalized)
        return plain
    residual_alpha(residual, 1)  # checked now, not at the first call
    if not isinstance(residual, str):
        def fixed(x1, x2, depths):
            return np.asarray(kernel_trace(x1, x2, depth=max(depths), layers=list(depths), residual=residual,
                                           get="ntk_normalized").ntk_normalized)
        return fixed

    def per_depth(x1, x2, depths):
        return np.stack([np.asarray(kernel_trace(x1, x2, depth=L, layers=[L], residual=residual_alpha(residual, L),
                                                 get="ntk_normalized").ntk_normalized[0]) for L in depths])
    return per_depth


def ntk_regression(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    depths: Sequence[int],
    times: Sequence[float],
    stopping_depth: int | None = None,
    num_classes: int = 10,
    progress: bool = False,
    kernel: DepthKernel | None = None,
):
    """Outputs of the mean NTK predictor ``mu_t(x) = Thetabar^L(x, X) P_t Y`` at every depth and time.

    Args:
      x_train: ``[n, p]`` training inputs on the sphere; y_train: ``[n]`` labels (one-hot inside).
      x_eval: ``[m, p]`` inputs to predict.
      depths: ``[D]`` distinct increasing depths; times: ``[T]`` stopping times (``np.inf`` allowed).
      stopping_depth: also predict at Theorem 3's ``t = 1 / lambda_min`` at this depth (one of
        ``depths``), from the same factorization.
      kernel: the networks' normalized NTK at the depths (:func:`depth_kernel`; default the plain ReLU
        network's).

    Returns:
      ``(outputs [D, T, m, K], lambda_min [D])``, and the Theorem 3 outputs ``[m, K]`` when
      ``stopping_depth`` is given; outputs at ``t = inf`` are NaN at a depth whose training
      kernel is singular (n > p at depth 1).

    Memory: the kernels of a group of depths (as many as fit in ``_GROUP_BYTES``; all of them
    for small n), computed ``_BLOCK_ENTRIES`` entries at a time, and one eigendecomposition
    overwriting its training kernel (the kernel plus one ``[n, n]`` matrix).
    """
    from tqdm import tqdm

    depths = [int(d) for d in depths]
    kernel = depth_kernel() if kernel is None else kernel
    times = np.asarray(times, dtype=np.float64)
    n, m = len(x_train), len(x_eval)
    targets = one_hot(y_train, num_classes)
    x_all = np.vstack([x_train, x_eval])  # rows [:n]: Thetabar(X, X), rows [n:]: Thetabar(x, X)
    size = max(1, int(_GROUP_BYTES // ((n + m) * n * 8)))
    groups = [depths[i:i + size] for i in range(0, len(depths), size)]
    rows = max(1, _BLOCK_ENTRIES // n)
    outputs = np.full((len(depths), len(times), m, num_classes), np.nan)
    lam = np.empty(len(depths))
    stopped = np.full((m, num_classes), np.nan)
    finite = np.isfinite(times)
    bar = tqdm(total=len(depths), desc="kernel regression, depths", unit="depth", leave=False,
               disable=not progress)
    d = 0
    for group in groups:
        k = np.empty((len(group), n + m, n))
        with jax.enable_x64(True):
            for r in range(0, n + m, rows):
                k[:, r:r + rows] = kernel(x_all[r:r + rows], x_train, group)
        for j, depth in enumerate(group):
            # The training block is factorized in place: only the rows [n:] are needed after.
            pred = GradientFlowPredictor(k[j, :n], targets, overwrite_k=True)
            lam[d] = pred.lambda_min
            if finite.any():
                outputs[d, finite] = pred.predict(times[finite], k[j, n:])
            extra = [np.inf] if not finite.all() else []
            if depth == stopping_depth:
                extra.append(stopping_time(lam[d]) if lam[d] > 0 else np.inf)
            for e, t in enumerate(extra):
                try:
                    out = pred.predict(t, k[j, n:])
                except SingularKernelError:
                    continue  # left NaN: interpolation needs an invertible kernel
                if e == 0 and not finite.all():
                    outputs[d, ~finite] = out
                else:
                    stopped[:] = out
            d += 1
            bar.update()
        del k
    bar.close()
    if stopping_depth is None:
        return outputs, lam
    return outputs, lam, stopped


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


def subset_regression(sub, depths: Sequence[int], times: Sequence[float], depth: int,
                      progress: bool = False, kernel: DepthKernel | None = None) -> dict[str, np.ndarray]:
    """The NTK predictor on one subset at every depth and time, early stopping chosen on validation.

    ``sub``: a :class:`ntkdepth.data.Subset` (training, validation and held-out inputs and labels).
    ``depth`` (one of ``depths``) is the table's depth: its held-out outputs are kept, and
    Theorem 3's time ``1 / lambda_min(Thetabar^depth)`` is evaluated there; ``kernel`` as in
    :func:`ntk_regression`. Returns arrays:
    ``indices``, ``y_test`` of the subset; ``lambda_min [D]``; ``chosen_time_index [D]`` (the
    time of smallest validation MSE at each depth); ``t_stop`` (Theorem 3's time); ``val_METRIC`` and
    ``test_METRIC [D, T]`` for every metric; ``test_outputs [T, m, K]`` at ``depth`` and
    ``test_outputs_t_stop [m, K]``.
    """
    n_val = len(sub.x_val)
    d_table = list(depths).index(depth)
    outputs, lam, stopped = ntk_regression(
        sub.x_train, sub.y_train, np.vstack([sub.x_val, sub.x_test]), depths, times,
        stopping_depth=depth, progress=progress, kernel=kernel,
    )
    val, test = outputs[:, :, :n_val], outputs[:, :, n_val:]
    val_metrics, test_metrics = evaluate(val, sub.y_val), evaluate(test, sub.y_test)
    return {
        "indices": sub.indices, "y_test": sub.y_test, "lambda_min": lam,
        "chosen_time_index": np.nanargmin(val_metrics["mse"], axis=1),
        "t_stop": stopping_time(lam[d_table]) if lam[d_table] > 0 else np.inf,
        **{f"val_{k}": v for k, v in val_metrics.items()},
        **{f"test_{k}": v for k, v in test_metrics.items()},
        "test_outputs": test[d_table], "test_outputs_t_stop": stopped[n_val:],
    }
