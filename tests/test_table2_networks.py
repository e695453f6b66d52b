"""Table 2's finite networks (ntkdepth.training.kernel_time): the time correspondence between the
network and the normalized kernel.

Images scaled to the sphere of radius sqrt(784) give Theta^L(x, x) = 2L, so
Theta^L = 2L Thetabar^L, and a wide centered network trained by full-batch
gradient descent for the Theta^L time t / (2L) follows the normalized
kernel's gradient-flow predictor at time t.
"""

from pathlib import Path

import jax
import numpy as np
import pytest
from datasets import mnist_test_dir, needs_mnist

from ntkdepth.data import load_mnist, sample_on_sphere
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.metrics import one_hot
from ntkdepth.theory import GradientFlowPredictor
from ntkdepth.training.kernel_time import network_kernel_check, network_time, train_networks

# The real test split where one is found (user data directory or ../shared/data).
SHARED = mnist_test_dir()


def test_network_time_caps_at_the_largest_reachable_grid_time():
    times = [0.1, 1.0, 10.0, 100.0, np.inf]
    # lambda_max 50, step_fraction 0.5: t needs ceil(100 t) steps.
    assert network_time(50.0, times, 2, 0.5, 5000) == (2, 1000, False)
    assert network_time(50.0, times, 3, 0.5, 5000) == (2, 1000, True)
    assert network_time(50.0, times, 4, 0.5, 5000) == (2, 1000, True)
    assert network_time(50.0, times, 4, 0.5, 100_000) == (3, 10_000, True)
    with pytest.raises(ValueError, match="max_steps"):
        network_time(50.0, times, 4, 0.5, 5)


@needs_mnist
def test_wide_centered_network_follows_the_normalized_kernel_at_the_same_time(tmp_path):
    depth, n, m, width, t = 3, 10, 10, 2048, 1.0
    images, labels = load_mnist(SHARED, "test")
    sample = sample_on_sphere(np.random.default_rng(7), images, labels, n + m)
    x, y = sample.x, sample.labels
    x_train, y_train, x_eval = x[:n], y[:n], x[n:]

    # Theta^L(x, x) = 2L and Theta^L = 2L Thetabar^L on the scaled images.
    check = network_kernel_check(x_train, depth)
    assert check["diag_error"] < 1e-10
    assert check["ratio_error"] < 1e-10

    with jax.enable_x64(True):
        kbar = np.asarray(relu_kernel_trace(x, x_train, depth=depth, layers=[depth],
                                            get=("ntk_normalized",)).ntk_normalized[0])
    pred = GradientFlowPredictor(kbar[:n], one_hot(y_train, 10))
    assert pred.lambda_max == pytest.approx(check["lambda_max"], rel=1e-10)

    def kernel(time):
        return pred.predict(np.array([time]), kbar[n:])[0]  # [m, 10]

    # Small steps (dt * lambda_max = 0.05, 90 steps), so that gradient descent is the flow.
    k, steps, capped = network_time(check["lambda_max"], [t], 0, 0.05, 10_000)
    assert (k, capped) == (0, False)
    seeds = [0, 1, 2, 3]
    outputs, lr = train_networks(x_train, y_train, x_eval, depth, t, steps, [width], seeds,
                                 tmp_path, progress=False)
    assert outputs.shape == (1, len(seeds), m, 10)
    assert lr == pytest.approx(n * t / (2 * depth) / steps)

    def distance(f, time):
        return np.linalg.norm(f - kernel(time)) / np.linalg.norm(kernel(time))

    # Each network, and more closely their mean, within a few percent of the kernel at t ...
    each = [distance(f, t) for f in outputs[0]]
    mean = distance(outputs[0].mean(0), t)
    assert max(each) < 0.12, each
    assert mean < 0.07, mean
    # ... and the closest of the nearby kernel times; Theta^L's time taken for Thetabar's
    # (2L times too long) is far off.
    assert mean < min(distance(outputs[0].mean(0), time) for time in (0.7 * t, 1.4 * t))
    assert distance(outputs[0].mean(0), 2 * depth * t) > 3 * mean
