"""Settings that several experiments share as the base of their ``Config``: kernel regression on
random MNIST subsets (``table2``, ``table2-networks``). Width sweeps' settings are in
:mod:`ntkdepth.training.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ntkdepth.config import mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import Subset, draw_subset, load_mnist, mnist_dir, resolve_split
from ntkdepth.data.files import DataError
from ntkdepth.data.mnist import mnist_record

__all__ = ["MnistSubsets", "RegressionSettings"]


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
        """Subset ``s`` (:func:`~ntkdepth.data.draw_subset` with the settings' sizes and seed)."""
        c = self.settings
        return draw_subset(self.images, self.labels, c.n_train, c.n_val, c.n_test, c.seed, s)
