"""Finite networks trained for a time of the normalized NTK's gradient flow, Table 2's networks
(paper, Appendix D; docs/predictor.md#matching-a-network-to-the-normalized-kernel).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.metrics import one_hot

__all__ = ["network_kernel_check", "network_time", "train_networks"]


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
    """Theta^L on the training inputs ``[n, p]`` scaled to radius sqrt(p): its diagonal, its ratio to Thetabar^L.

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
    num_classes: int = 10,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Centered networks trained for normalized-kernel time ``t``: ``(outputs [W, K, m, C], learning rate)``.

    Inputs ``x_*`` are unit vectors (``[n, p]``, ``[m, p]``) and ``y_train [n]`` integer labels
    of ``num_classes = C`` classes (one-hot targets); the networks see the inputs scaled to radius
    ``sqrt(p)``, where Theta^L = 2L Thetabar^L, so ``steps`` steps of full-batch gradient descent
    (learning rate ``n t / (2L steps)`` for the batch-mean loss) cover the gradient-flow time
    ``t / (2L)`` of Theta^L. The outputs are ``f_theta(x) - f_theta0(x)`` on ``x_eval`` after
    the last step, for every width (``W``) and seed (``K``); ``workdir`` keeps the sweep's
    checkpoints (``run_width_sweep``).
    """
    import jax.numpy as jnp

    from ntkdepth.models import NetworkSpec
    from ntkdepth.training.loop import FullBatchData, TrainSpec
    from ntkdepth.training.sweep import run_width_sweep

    n, p = x_train.shape
    radius = np.sqrt(p)
    dt = t / (2 * depth) / steps  # Theta^L time per step
    lr = n * dt  # the batch loss is the mean over the n images
    train = TrainSpec(steps=steps, learning_rate=lr, center_output=True)
    data = FullBatchData(jnp.asarray(x_train * radius, jnp.float32),
                         jnp.asarray(one_hot(y_train, num_classes), jnp.float32))

    spec = NetworkSpec(depth=depth)  # NTK parameterization, W_std^2 = 2, no bias: the kernel's network

    def make_model(width, seed):
        return spec.model(p, width, num_classes, rngs=seed)

    runs = run_width_sweep(make_model, data, train, jnp.asarray(x_eval * radius, jnp.float32),
                           widths, seeds, workdir, progress=progress)
    outputs = np.stack([
        np.stack([runs[(w, sd)].outputs[-1].astype(np.float64) - runs[(w, sd)].outputs[0]
                  for sd in seeds])
        for w in widths
    ])
    return outputs, lr
