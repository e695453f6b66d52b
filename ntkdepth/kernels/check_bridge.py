"""``python -m ntkdepth.kernels.check_bridge``: checks the neural-tangents bridge on this JAX."""

from __future__ import annotations

import sys

import jax
import numpy as np

from ntkdepth.kernels.nt_bridge import load
from ntkdepth.kernels.relu import relu_kernel_trace
from ntkdepth.kernels.stax_layers import stax_mlp

__all__ = ["self_check"]


def self_check() -> str:
    """Checks the bridge on the running JAX; returns a one-line report or raises.

    ``stax_mlp``'s ``kernel_fn`` must agree with :func:`relu_kernel_trace` to
    1e-10 (float64) for depths 1..6 with and without bias, ``predict`` must
    interpolate the training targets at ``t = inf``, and neither TensorFlow
    nor tf2jax may have been imported.
    """
    nt = load()
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x1, x2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
        worst = 0.0
        for b_std in (0.0, 0.1):
            trace = relu_kernel_trace(x1, x2, depth=6, W_std=1.3, b_std=b_std)
            for depth in range(1, 7):
                k = stax_mlp(depth, 8, W_std=1.3, b_std=b_std)[2](x1, x2, ("nngp", "ntk"))
                for ours, theirs in ((trace.ntk[depth - 1], k.ntk), (trace.nngp[depth - 1], k.nngp)):
                    err = np.max(np.abs(np.asarray(ours) - theirs) / np.abs(np.asarray(theirs)))
                    worst = max(worst, float(err))
        if not worst < 1e-10:
            raise AssertionError(f"stax kernel differs from relu_kernel_trace by {worst:.2e}")
        k_train = relu_kernel_trace(x1, depth=4, layers=[4], get=("ntk",)).ntk[0]
        y = rng.normal(size=(5, 1))
        fit = nt.predict.gradient_descent_mse(k_train, y, learning_rate=y.size)(None, np.zeros_like(y))
        if not np.allclose(fit, y, atol=1e-8):
            raise AssertionError("predict.gradient_descent_mse does not interpolate at t = inf")
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tf2jax"})
    if loaded:
        raise AssertionError(f"imported {loaded}")
    return (
        f"bridge OK: jax {jax.__version__}, neural-tangents {nt.__version__}, "
        f"Python {sys.version.split()[0]}, max kernel difference {worst:.1e}, no TensorFlow"
    )


if __name__ == "__main__":
    print(self_check())
