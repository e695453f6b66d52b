"""The settings every width sweep shares, :class:`SweepSettings` and :class:`GradientFlowSettings`:
bases of an experiment's ``Config``, whose defaults it changes with
:func:`~ntkdepth.config.with_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.training.loop import TrainSpec, record_steps_grid

__all__ = ["SweepSettings", "GradientFlowSettings"]


@dataclass(frozen=True)
class SweepSettings:
    """The settings of a width sweep: networks of every width, ``seeds`` of each."""

    widths: list[int] = setting(
        [256, 1024, 4096], help="hidden widths n (every hidden layer)", min=1,
        distinct="exponents are fitted over distinct widths",
    )
    seeds: int = setting(3, help="initializations (and SGD streams) per width", min=1)
    W_std: float = setting(2.0**0.5, help="sigma_w of every layer that has no scale of its own", min=1e-6)
    b_std: float = setting(0.0, help="sigma_b (0: no biases, the paper's setting)", min=0.0)
    n_records: int = setting(8, help="recorded steps, log-spaced", min=2)
    seed: int = setting(0, help="seed of the data and first seed of the networks", min=0)
    divergence_factor: float = setting(
        1000.0, min=1.0001,
        help="training stops with an error when a batch loss exceeds this many times the initial loss",
    )

    def network_seeds(self) -> list[int]:
        """The seeds of the networks of one width: ``seed .. seed + seeds - 1``."""
        return [self.seed + s for s in range(self.seeds)]


@dataclass(frozen=True)
class GradientFlowSettings(SweepSettings):
    """A width sweep trained by full-batch gradient descent on points of the sphere.

    Gradient descent on the batch-mean loss with learning rate ``n_train * dt``
    for ``round(time / dt)`` steps follows the gradient flow of the summed loss
    for the time ``time``.
    """

    dim: int = setting(8, help="input dimension d", min=2)
    n_train: int = setting(20, help="training inputs N (on the sphere of radius sqrt(d))", min=2, max=2000)
    n_test: int = setting(10, help="held-out inputs M", min=0, max=2000)
    time: float = setting(5.0, help="training time T of the gradient flow", min=1e-6)
    dt: float = setting(0.05, help="time per gradient step (learning rate = N * dt for the batch-mean loss)",
                        min=1e-6)

    def train_spec(self) -> TrainSpec:
        """Full-batch gradient descent for the time ``time``, recording ``n_records`` steps."""
        steps = max(1, int(round(self.time / self.dt)))
        return TrainSpec(steps=steps, learning_rate=self.n_train * self.dt,
                         record_steps=record_steps_grid(steps, self.n_records),
                         divergence_factor=self.divergence_factor)

    def record_times(self, spec: TrainSpec) -> np.ndarray:
        """``[R]`` the gradient-flow times of ``spec``'s recorded steps."""
        return np.asarray(spec.records) * self.dt

    def sphere_inputs(self, rng: np.random.Generator) -> np.ndarray:
        """``[n_train + n_test, dim]`` points uniform on the sphere of radius ``sqrt(dim)``."""
        from ntkdepth.data import sample_sphere

        return sample_sphere(rng, self.n_train + self.n_test, self.dim) * np.sqrt(self.dim)
