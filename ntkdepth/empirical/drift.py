"""How far the last hidden layer moves in training: aggregate, per-unit, relative and inner-product
drift (docs/drift.md#measured-drift; the paper's Table 1 and Proposition 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.stats.fits import fit_power_law, fit_range
from ntkdepth.stats.summary import mean_sd

__all__ = ["DRIFT_MEASURES", "STAT_KEYS", "UndefinedDriftError", "drift_against_prediction", "drift_curves",
           "feature_record", "final_drift"]

#: The keys of :func:`feature_record`, as a width sweep stores them for every recorded step.
STAT_KEYS = ("aggregate", "per_neuron_mean", "per_neuron_max", "relative", "gram", "norm")

#: The measures of :func:`final_drift`, with their labels.
DRIFT_MEASURES = {
    "aggregate": "aggregate |a_T(x) - a_0(x)|_2",
    "per_neuron_mean": "per-neuron |a_T,i(x) - a_0,i(x)| (mean over i)",
    "per_neuron_max": "per-neuron |a_T,i(x) - a_0,i(x)| (max over i)",
    "relative": "relative |a_T(x) - a_0(x)|_2 / |a_0(x)|_2",
    "inner_product": "inner products |<a_T(x),a_T(x')>/n - <a_0(x),a_0(x')>/n|",
}


def feature_record(a0: jax.Array, at: jax.Array) -> dict[str, jax.Array]:
    """Drift statistics of features ``at`` from ``a0`` (``[n_eval, width]`` each), reduced on the device.

    Keys: ``aggregate``, ``per_neuron_mean``, ``per_neuron_max``, ``relative`` (``[n_eval]``),
    ``gram`` (``<a_t(x), a_t(x')> / n``, ``[n_eval, n_eval]``), ``norm`` (``|a_t(x)|_2``, ``[n_eval]``).
    """
    if a0.shape != at.shape or a0.ndim != 2:
        raise ValueError(
            f"features must be two arrays of the same shape [n_eval, width]; got {a0.shape} and {at.shape}"
        )
    hi = jax.lax.Precision.HIGHEST
    diff = at - a0
    agg = jnp.sqrt(jnp.sum(diff * diff, -1))
    norm0 = jnp.sqrt(jnp.sum(a0 * a0, -1))
    return {
        "aggregate": agg,
        "per_neuron_mean": jnp.mean(jnp.abs(diff), -1),
        "per_neuron_max": jnp.max(jnp.abs(diff), -1),
        "relative": agg / norm0,
        "gram": jnp.matmul(at, at.T, precision=hi) / at.shape[-1],
        "norm": jnp.sqrt(jnp.sum(at * at, -1)),
    }


class UndefinedDriftError(ValueError):
    """A drift measure that is NaN or infinite; ``width`` and ``seed`` name the run."""

    def __init__(self, message: str, width: int, seed: int):
        super().__init__(message)
        self.width, self.seed = width, seed


def _seeds_of(seeds, width) -> Sequence[int]:
    return seeds[width] if isinstance(seeds, Mapping) else seeds


def final_drift(runs: Mapping, widths: Sequence[int], seeds: Sequence[int] | Mapping[int, Sequence[int]]) -> dict:
    """Each of :data:`DRIFT_MEASURES` after training: ``{measure: {"mean": [W], "sd": [W]}}``.

    ``runs[(width, seed)]`` holds the records of :func:`feature_record` as
    ``stats`` (``[R, n_eval]`` each, ``gram`` ``[R, n_eval, n_eval]``; a
    :class:`~ntkdepth.training.SweepRun`); ``seeds`` are those of every width,
    or a mapping from each width to its seeds. The ``[W]`` arrays follow
    ``widths``. Mean and sample s.d. pool the last
    record's values over the evaluation inputs and the seeds; the inner-product
    change pools ``|gram_T - gram_0|`` over the pairs of distinct inputs.
    A measure that is NaN or infinite (the zero vector as initial features, say)
    raises :class:`~ntkdepth.empirical.drift.UndefinedDriftError` naming the run.
    """
    table = {m: {"mean": np.empty(len(widths)), "sd": np.empty(len(widths))} for m in DRIFT_MEASURES}
    for i, w in enumerate(widths):
        pooled = {m: [] for m in DRIFT_MEASURES}
        for s in _seeds_of(seeds, w):
            stats = runs[(w, s)].stats
            for m in ("aggregate", "per_neuron_mean", "per_neuron_max", "relative"):
                pooled[m].append(stats[m][-1])
            g = stats["gram"]
            pooled["inner_product"].append(np.abs(g[-1] - g[0])[~np.eye(g.shape[-1], dtype=bool)])
            for m, values in pooled.items():
                if not np.all(np.isfinite(values[-1])):
                    raise UndefinedDriftError(
                        f"the {m} drift of width {w}, seed {s} is NaN or infinite (an evaluation "
                        "input whose initial features are the zero vector, every unit inactive, "
                        "has no relative drift): choose other evaluation inputs", w, s
                    )
        for m, values in pooled.items():
            table[m]["mean"][i], table[m]["sd"][i] = mean_sd(np.concatenate(values).astype(np.float64))
    return table


def drift_curves(runs: Mapping, widths: Sequence[int], seeds: Sequence[int] | Mapping[int, Sequence[int]]) -> dict:
    """The per-input measures and the loss along training: ``{measure: [W, R]}``.

    For the ``runs[(width, seed)]`` of :func:`final_drift`: ``aggregate``,
    ``per_neuron_mean``, ``per_neuron_max`` and ``relative`` averaged over the
    evaluation inputs, then over the seeds, at each of the ``R`` recorded
    steps; ``loss`` averaged over the seeds. Rows follow ``widths``.
    """
    measures = ("aggregate", "per_neuron_mean", "per_neuron_max", "relative")
    curves = {m: [np.mean([runs[(w, s)].stats[m].mean(1) for s in _seeds_of(seeds, w)], 0) for w in widths]
              for m in measures}
    curves["loss"] = [np.mean([runs[(w, s)].loss for s in _seeds_of(seeds, w)], 0) for w in widths]
    return {m: np.stack(rows) for m, rows in curves.items()}


def drift_against_prediction(measured: Mapping[str, Sequence[float]], predicted: Mapping[str, Sequence[float]],
                             widths: Sequence[int], min_width: float = 0) -> dict:
    """Measured over predicted drift at each width, and how fast the ratio's gap to 1 closes.

    For each measure ``m`` of ``predicted``, ``measured[m]`` and ``predicted[m]`` are ``[W]`` at
    the ``[W]`` ``widths`` (a :func:`final_drift` mean and the kernel's prediction at each width).
    Returns ``{m: {"ratio": [W], "exponent": float | None, "widths": [int, ...]}}``: the exponent
    of the power law of ``|1 - ratio|`` in the width, fitted over the widths ``>= min_width``
    (:func:`~ntkdepth.stats.fit_range`, listed in ``"widths"``), ``None`` where fewer than two
    widths are fitted or the gap is 0 at one of them. Where the prediction is the network's
    infinite-width limit the gap closes like ``n^{-1/2}`` (docs/drift.md#numerical-check).
    """
    widths = np.asarray(widths, dtype=np.float64)
    fitted = fit_range(widths, min_width)
    out = {}
    for m, pred in predicted.items():
        mean, pred = np.asarray(measured[m], dtype=np.float64), np.asarray(pred, dtype=np.float64)
        if not mean.shape == pred.shape == widths.shape:
            raise ValueError(f"the {m} drift needs one measured and one predicted value per width: got "
                             f"shapes {mean.shape} and {pred.shape} for {widths.size} widths")
        ratio = mean / pred
        gap = np.abs(1.0 - ratio)[fitted]
        exponent = None
        if gap.size >= 2 and np.all(gap > 0):
            exponent = float(fit_power_law(widths[fitted], gap).exponent)
        out[m] = {"ratio": ratio, "exponent": exponent, "widths": widths[fitted].astype(int).tolist()}
    return out
