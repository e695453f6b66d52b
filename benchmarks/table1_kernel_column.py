"""The kernel's prediction for a finished Table 1 run: its aggregate drift at infinite width.

Reads a run's ``config.json`` and ``results.json`` (for instance the GPU run in
``benchmarks/results/``), recomputes the corpus statistics with the same
settings, and writes ``kernel_prediction.json`` beside them: the predicted
aggregate drift of the NTK network for the run's gradient-flow time, next to
the measured rows.

    ./uvrun python benchmarks/table1_kernel_column.py benchmarks/results/h200-jax0.11.2/table1-paper-uncentered
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from ntkdepth.data.text8 import Vocabulary, load_text8, pair_statistics, skipgram_pairs
from ntkdepth.theory import onehot_drift_prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--text8", default=None, help="text8 file (default: the usual lookup)")
    args = parser.parse_args()
    config = json.loads((args.run_dir / "config.json").read_text())["config"]
    results = json.loads((args.run_dir / "results.json").read_text())
    V = config["vocab_size"]
    words = load_text8(args.text8 or config["text8_path"] or None, max_words=config["max_words"] or None)
    vocab = Vocabulary.build(words, V)
    p, q = pair_statistics(skipgram_pairs(vocab.encode(words), config["window"]), V)
    centered = config.get("center_output", False)
    scale = V**0.5 if config["onehot_norm"] == "sqrt-vocab" else 1.0
    t = config["learning_rate"] * config["steps"]
    eval_tokens = np.asarray(results["eval_tokens"], dtype=np.int64)
    with jax.enable_x64(True):
        d2 = onehot_drift_prediction(p, q, eval_tokens, [t], depth=3, W_std=config["W_std"],
                                     b_std=config["b_std"], input_scale=scale,
                                     f0=np.zeros((V, V)) if centered else None)
    predicted = float(np.sqrt(np.maximum(d2[0], 0)).mean())
    # The run's means at its widths: an array aligned with them, or (runs written before) keyed by width.
    aggregate = results["table"]["ntk"]["aggregate"]
    means = aggregate["mean"] if "mean" in aggregate else [aggregate[str(w)]["mean"] for w in config["widths"]]
    measured = {str(w): m for w, m in zip(config["widths"], means)}
    out = {
        "time": t,
        "centered": centered,
        "averaged_over_initializations": not centered,
        "predicted_aggregate_mean_over_eval_tokens": predicted,
        "measured_aggregate_ntk": measured,
        "measured_over_predicted": {w: m / predicted for w, m in measured.items()},
    }
    (args.run_dir / "kernel_prediction.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
