"""Settings that several experiments share as the base of their ``Config``: kernel regression on
random MNIST subsets (``table2``, ``table2-networks``) and Table 1's networks trained on text8
skip-gram pairs (``table1``, ``table1-features``). Width sweeps' settings are
:class:`~ntkdepth.training.SweepSettings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ntkdepth.config import ConfigError, mnist_dir_setting, mnist_split_setting, setting
from ntkdepth.data import Subset, draw_subset, load_mnist, mnist_dir, resolve_split
from ntkdepth.data.files import DataError
from ntkdepth.data.mnist import mnist_record
from ntkdepth.training.settings import SweepSettings

__all__ = ["MnistSubsets", "RegressionSettings", "SkipGramSettings", "SkipGramText", "skipgram_data_line"]


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
        """What drawing ``subsets`` subsets reads (``ntkdepth.data.mnist.mnist_record``)."""
        c = self.settings
        return mnist_record(self.directory, self.split, len(self.images), [c.n_train + c.n_val + c.n_test] * subsets)

    def draw(self, s: int) -> Subset:
        """Subset ``s`` (:func:`~ntkdepth.data.draw_subset` with the settings' sizes and seed)."""
        c = self.settings
        return draw_subset(self.images, self.labels, c.n_train, c.n_val, c.n_test, c.seed, s)


class SkipGramText(NamedTuple):
    """A text read as skip-gram pairs: the vocabulary, the pairs ``[P, 2]``, the centers' frequencies
    ``p [V]`` and context distributions ``Q [V, V]`` (:func:`~ntkdepth.data.text8.pair_statistics`),
    and what was read (``record``, for ``config.json``)."""

    vocabulary: object  # ntkdepth.data.text8.Vocabulary
    pairs: np.ndarray
    center_freq: np.ndarray
    context_dist: np.ndarray
    record: dict


def skipgram_data_line(record: dict | None) -> str:
    """One line of a summary naming the text a run read (a :class:`SkipGramText`'s ``record``)."""
    if not record:
        return "Data: not recorded by this run."
    return (f"Data: `{record['path']}` ({record['bytes']:,} bytes, MD5 {record['md5']}), {record['kind']}; "
            f"{record['words_used']:,} words used ({record['distinct_words']:,} distinct), vocabulary of the "
            f"{record['vocabulary']:,} most frequent, {record['pairs']:,} skip-gram pairs.")


@dataclass(frozen=True)
class SkipGramSettings(SweepSettings):
    """Table 1's networks and training: two hidden layers of width n on one-hot tokens of the ``V``
    most frequent words of a text8 file, ``V`` outputs, SGD on skip-gram pairs with the MSE loss, at
    each parameterization of ``parameterizations``.

    With V outputs the random initial function f_0 has squared norm about
    ``V * Sigma^3(x, x)`` per token, against 1 for a one-hot target, so the
    residual would be dominated by undoing f_0: ``center_output`` (the default)
    trains ``f_theta - f_theta0`` instead, the same kernel with a residual that
    starts at ``-y``.
    """

    parameterizations: list[str] = setting(["ntk", "mup"], help="row groups: 'ntk', 'mup', 'standard'",
                                           choices=["ntk", "mup", "standard"])
    vocab_size: int = setting(500, help="V, the most frequent words kept", min=2, max=50000)
    window: int = setting(2, help="skip-gram window (contexts on each side)", min=1, max=20)
    max_words: int = setting(0, help="first words of the corpus used (0: all)", min=0)
    text8_path: str = setting("", help="text8 file or text8.zip ('': $NTKDEPTH_DATA or ../shared/data)")
    onehot_norm: str = setting("sqrt-vocab", choices=["one", "sqrt-vocab"],
                               help="a token's input: 'one' (e_c) or 'sqrt-vocab' (sqrt(V) e_c: |x|^2 = n_0)")
    center_output: bool = setting(True, help="train f_theta - f_theta0 (the same NTK; the residual starts at -y, "
                                             "not at the random f_0 over V outputs)",
                                  absent=False)  # runs recorded before the setting trained f_theta itself
    learning_rate: float = setting(0.5, help="SGD learning rate (width-independent at NTK parameterization)", min=1e-8)
    batch_size: int = setting(256, help="pairs per SGD step", min=1)
    steps: int = setting(1000, help="SGD steps", min=1)
    mup_base_width: int = setting(256, help="muP's reference width (where it equals the NTK network)", min=1)
    seeds_by_width: list[int] = setting(
        [], min=1, min_len=0,
        help="seeds at each width, aligned with widths, e.g. [3, 3, 2, 1] (empty: `seeds` at every width)")

    def check(self):
        if self.seeds_by_width and len(self.seeds_by_width) != len(self.widths):
            raise ValueError(f"seeds_by_width has {len(self.seeds_by_width)} entries for {len(self.widths)} widths "
                             f"{self.widths}: give one number of seeds per width, e.g. seeds_by_width="
                             f"{[self.seeds] * len(self.widths)}")

    def seeds_at(self) -> dict[int, list[int]]:
        """The seeds of each width: ``seeds_by_width`` where given, else ``seeds`` everywhere."""
        counts = self.seeds_by_width or [self.seeds] * len(self.widths)
        return {w: [self.seed + s for s in range(k)] for w, k in zip(self.widths, counts)}

    def seeds_line(self) -> str:
        """How many seeds each width has, as a summary says it."""
        counts = self.seeds_by_width or [self.seeds] * len(self.widths)
        if len(set(counts)) == 1:
            return f"{counts[0]} seed(s) per width"
        return "seeds per width: " + ", ".join(f"{k} at n = {w:,}" for w, k in zip(self.widths, counts))

    @property
    def input_scale(self) -> float:
        """The norm of a token's one-hot input, ``sqrt(V)`` or 1 (``onehot_norm``)."""
        return self.vocab_size**0.5 if self.onehot_norm == "sqrt-vocab" else 1.0

    def load_text(self) -> SkipGramText:
        """The text8 file's skip-gram pairs over the vocabulary; a vocabulary larger than the text is
        a :class:`~ntkdepth.config.ConfigError` naming the largest that fits."""
        from ntkdepth.data.text8 import (Vocabulary, default_text8_path, load_text8, pair_statistics,
                                         skipgram_pairs, text8_record)

        words = load_text8(self.text8_path or None, max_words=self.max_words or None)
        distinct = len(set(words))
        if distinct < self.vocab_size:
            raise ConfigError(f"vocab_size {self.vocab_size} exceeds the {distinct:,} distinct words read from "
                              f"{self.text8_path or default_text8_path()}: set vocab_size "
                              f"to at most {distinct} (--set vocab_size={distinct}), or name a larger text "
                              "with text8_path")
        vocab = Vocabulary.build(words, self.vocab_size)
        pairs = skipgram_pairs(vocab.encode(words), self.window)
        record = {**text8_record(self.text8_path or None, len(words)), "distinct_words": distinct,
                  "vocabulary": self.vocab_size, "pairs": int(len(pairs))}
        p, q = pair_statistics(pairs, self.vocab_size)
        return SkipGramText(vocab, pairs, p, q, record)

    def train_spec(self):
        """SGD with the MSE loss, recording ``n_records`` log-spaced steps (a :class:`~ntkdepth.training.TrainSpec`)."""
        from ntkdepth.training.loop import TrainSpec, record_steps_grid

        return TrainSpec(steps=self.steps, learning_rate=self.learning_rate, loss="mse",
                         batch_size=self.batch_size, record_steps=record_steps_grid(self.steps, self.n_records),
                         center_output=self.center_output, divergence_factor=self.divergence_factor)

    def network(self):
        """Two hidden layers at NTK parameterization (a :class:`~ntkdepth.models.NetworkSpec`); each
        row group replaces the parameterization."""
        from ntkdepth.models import NetworkSpec

        return NetworkSpec(depth=3, W_std=self.W_std, b_std=self.b_std)

    def model_factory(self, parameterization: str):
        """``make_model(width, seed)``: the network of ``parameterization`` on the vocabulary's tokens."""
        net, vocab = self.network().replace(parameterization=parameterization), self.vocab_size

        def make_model(width, seed):
            return net.model(vocab, width, vocab, tokens=True, input_scale=self.input_scale,
                             base_width=self.mup_base_width, rngs=seed)

        return make_model

    def width_sweep(self, parameterization: str, out, data, eval_tokens, *, exclude: Sequence[str] = (),
                    **options) -> dict:
        """The networks of ``parameterization`` trained at every width and seed on ``data``, measured
        at ``eval_tokens`` (:func:`~ntkdepth.training.run_width_sweep`, with ``options``).

        The runs are cached in the run folder ``out`` under every setting but the lists of widths,
        seeds and row groups and the settings ``exclude`` (one run is one width and seed: a new
        width trains only itself).
        """
        from ntkdepth.training import run_width_sweep

        identity = out.settings(exclude=("widths", "seeds", "seeds_by_width", "parameterizations", *exclude),
                                parameterization=parameterization)
        seeds = self.seeds_at()
        print(f"{out.experiment}: {parameterization} networks, widths {self.widths}, seeds {seeds}")
        return run_width_sweep(self.model_factory(parameterization), data, self.train_spec(), eval_tokens,
                               self.widths, seeds, out.cache_dir(f"sweep-{parameterization}", identity), **options)

    def measured_drift(self, runs) -> dict:
        """:func:`~ntkdepth.empirical.final_drift` of a :meth:`width_sweep`'s runs at every width; a
        width whose drift is undefined is a :class:`~ntkdepth.config.ConfigError` naming the change
        of settings that leaves it out."""
        from ntkdepth.empirical import final_drift
        from ntkdepth.empirical.drift import UndefinedDriftError

        try:
            return final_drift(runs, self.widths, self.seeds_at())
        except UndefinedDriftError as err:
            keep = [k for k, w in enumerate(self.widths) if w != err.width]
            widths = [self.widths[k] for k in keep] or [64, 256]
            change = f"--set widths=[{','.join(map(str, widths))}]"
            if self.seeds_by_width and keep:
                change += f" --set seeds_by_width=[{','.join(str(self.seeds_by_width[k]) for k in keep)}]"
            raise ConfigError(
                f"width {err.width}, seed {err.seed}: an evaluation token's features at initialization are "
                "the zero vector (every unit of the last hidden layer inactive), so its drift relative to "
                f"them is undefined; a network this narrow cannot be measured. Leave width {err.width} out, "
                f"e.g. {change} (the widths already trained are reused)") from None
