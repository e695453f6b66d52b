"""Table 1's features as word vectors: do the drifting features mean anything?

The networks and training of ``table1`` (two hidden layers, one-hot tokens of the V most frequent
words, V outputs, SGD on text8 skip-gram pairs, NTK and muP). After training, the last hidden
layer's features of every vocabulary word at initialization (a_0), after training (a_T), their
change (a_T - a_0) and the output layer's word vectors are scored against human word similarity
(Spearman) and word analogies (3CosAdd, 3CosMul), against width; beside them the PPMI-SVD
co-occurrence vectors of the same pairs and the cosines of the infinite-width Gram matrix of the
NTK network's change (docs/features.md, docs/drift.md#between-two-words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import ConfigError, setting, with_defaults
from ntkdepth.experiment_settings import SkipGramSettings
from ntkdepth.models import PARAMETERIZATION_NAMES as NAMES
from ntkdepth.plotting import pyplot, save_figure, width_axis
from ntkdepth.reporting import claim, table
from ntkdepth.runs import RunDir

NAME = "table1-features"
DESCRIPTION = "word similarity and analogies of Table 1's features (NTK, muP) against width, beside co-occurrence vectors"

REPRESENTATIONS = {"init": "a_0", "trained": "a_T", "change": "a_T - a_0", "output": "output vectors"}
SCORES = {"spearman": "WordSim Spearman", "add": "analogies, 3CosAdd", "mul": "analogies, 3CosMul"}


@dataclass(frozen=True)
class Config(with_defaults(SkipGramSettings, seeds=2, vocab_size=3000, widths=[256, 1024, 4096], steps=500,
                           batch_size=128, learning_rate=0.1)):
    word_pairs_path: str = setting("", help="word-pair similarity file, WordSim-353's format ('': the data "
                                            "directory's wordsim/wordsim353.tsv)")
    analogies_path: str = setting("", help="analogy questions, word2vec's format ('': the data directory's "
                                           "wordsim/questions-words.txt)")
    ppmi_dim: int = setting(100, help="dimension of the PPMI-SVD baseline vectors", min=1)
    kernel: bool = setting(True, help="score the infinite-width Gram matrix of the NTK network's change "
                                      "(two V x V eigendecompositions)")


def _scores(vectors, words, pairs, analogies) -> dict:
    from ntkdepth.embeddings import word_analogies, word_similarity

    sim, ana = word_similarity(vectors, words, pairs), word_analogies(vectors, words, analogies)
    return {"spearman": np.nan if sim.spearman is None else sim.spearman, "add": ana.add, "mul": ana.mul}


def run(config: Config, out: RunDir) -> dict:
    import jax.numpy as jnp

    from ntkdepth.data.wordsim import (default_analogies_path, default_word_pairs_path, load_analogies,
                                       load_word_pairs, wordsim_record)
    from ntkdepth.embeddings import cosine_matrix, ppmi_svd_embeddings, vectors_from_gram
    from ntkdepth.theory import onehot_drift_gram
    from ntkdepth.training import PairData

    text = config.load_text()
    words, V = text.vocabulary.words, config.vocab_size
    pairs = load_word_pairs(config.word_pairs_path or None)
    analogies = load_analogies(config.analogies_path or None)
    index = text.vocabulary.index
    known = [k for k, (a, b) in enumerate(zip(pairs.first, pairs.second)) if a in index and b in index]
    covered = [(index[pairs.first[k]], index[pairs.second[k]]) for k in known]
    questions = [q for q in analogies.words if all(w in index for w in q)]
    if len(covered) < 3 or not questions:
        raise ConfigError(f"vocab_size {V} covers {len(covered)} of the {len(pairs)} word pairs and {len(questions)} "
                          f"of the {len(analogies)} analogy questions: at least 3 pairs and 1 question are needed; "
                          "raise vocab_size (3000 covers 102 pairs and 873 questions on the text8 excerpt)")
    data = {"text8": text.record,
            "word_pairs": wordsim_record(config.word_pairs_path or default_word_pairs_path(), len(pairs), len(covered)),
            "analogies": wordsim_record(config.analogies_path or default_analogies_path(), len(analogies),
                                        len(questions))}
    for name, record in data.items():
        out.record_data(name, record)
    # The words whose cosines the kernel comparison and the scatter plots use.
    probe = np.unique(np.array(covered).ravel())
    pair_at = np.array([[np.searchsorted(probe, i), np.searchsorted(probe, j)] for i, j in covered])
    p, q = text.center_freq, text.context_dist
    time = float(config.steps * config.learning_rate)

    def reference(vectors):
        return {**_scores(vectors, words, pairs, analogies),
                "pair_cosines": cosine_matrix(vectors, probe)[pair_at[:, 0], pair_at[:, 1]]}

    baseline = out.stage("ppmi_svd", lambda: reference(ppmi_svd_embeddings(p[:, None] * q, config.ppmi_dim)))
    kernel, kernel_cos = None, None
    if config.kernel and "ntk" in config.parameterizations:
        def limit():
            gram = onehot_drift_gram(p, q, time, input_scale=config.input_scale, spec=config.network(),
                                     f0=np.zeros((V, V)) if config.center_output else None)[0]
            vectors = vectors_from_gram(gram)
            return {**reference(vectors), "probe_cosines": cosine_matrix(vectors, probe)}
        kernel = out.stage("kernel_gram", limit)
        kernel_cos = np.asarray(kernel["probe_cosines"])
    upper = np.triu_indices(len(probe), 1)

    def final_measures(initial, trained):
        ids = jnp.arange(V, dtype=jnp.int32)
        a0, at = np.asarray(initial(ids)[1]), np.asarray(trained(ids)[1])
        vectors = {"init": a0, "trained": at, "change": at - a0,
                   "output": np.asarray(trained.layers[-1].kernel[...]).T}
        res = {f"{r}_{k}": v for r, x in vectors.items() for k, v in _scores(x, words, pairs, analogies).items()}
        cos = cosine_matrix(vectors["change"], probe)
        res["change_pair_cosines"] = cos[pair_at[:, 0], pair_at[:, 1]]
        res["change_mean_cosine"] = cos[upper].mean()
        if kernel_cos is not None:
            res["change_kernel_agreement"] = np.corrcoef(cos[upper], kernel_cos[upper])[0, 1]
        return {k: np.asarray(v, np.float64) for k, v in res.items()}

    rng = np.random.default_rng(config.seed)
    eval_tokens = np.sort(rng.choice(V, size=min(16, V), replace=False)).astype(np.int32)
    seeds, widths = config.seeds_at(), config.widths
    evaluation_files = {name: r["md5"] for name, r in data.items() if name != "text8"}
    results = {"scores": {}, "agreement": {}, "mean_cosine": {}, "drift": {}, "pair_cosines": {}}
    for par in config.parameterizations:
        runs = config.width_sweep(par, out, PairData.create(text.pairs, seed=config.seed), jnp.asarray(eval_tokens),
                                  exclude=("ppmi_dim",), final_measures=final_measures,
                                  settings={"evaluation_files": evaluation_files})

        def over_seeds(key):
            vals = [[float(runs[(w, s)].extra[key]) for s in seeds[w]] for w in widths]
            return {"mean": [float(np.mean(v)) for v in vals], "sd": [float(np.std(v)) for v in vals]}

        results["scores"][par] = {r: {k: over_seeds(f"{r}_{k}") for k in SCORES} for r in REPRESENTATIONS}
        results["mean_cosine"][par] = over_seeds("change_mean_cosine")
        if kernel_cos is not None:
            results["agreement"][par] = over_seeds("change_kernel_agreement")
        results["drift"][par] = config.measured_drift(runs)["aggregate"]["mean"]
        results["pair_cosines"][par] = runs[(widths[-1], seeds[widths[-1]][0])].extra["change_pair_cosines"]
    results.update({
        "data": data, "time": time, "chance": 1.0 / (V - 3), "seeds_by_width": [len(seeds[w]) for w in widths],
        "coverage": {"pairs": len(covered), "pairs_total": len(pairs), "questions": len(questions),
                     "questions_total": len(analogies), "vocabulary": V},
        "pairs": {"human": pairs.scores[known]},
        "baseline": {k: baseline[k] for k in SCORES},
        "kernel": None if kernel is None else {**{k: kernel[k] for k in SCORES},
                                               "mean_cosine": float(kernel_cos[upper].mean())},
    })
    results["pair_cosines"].update({"ppmi-svd": baseline["pair_cosines"],
                                    **({} if kernel is None else {"kernel": kernel["pair_cosines"]})})
    results = _defined(results)
    results["tables"] = {"table1_features.csv": _csv(config, results)}
    return results


def _defined(value):
    """``value`` with every NaN (an undefined Spearman) as ``None``, arrays as lists."""
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return _defined(value.tolist()) if isinstance(value, np.ndarray) else [_defined(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def _fmt(x, digits=3) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def _csv(config, results) -> dict:
    W = len(config.widths)
    rows = [[par, rep, k, *s["mean"], *s["sd"]] for par, by_rep in results["scores"].items()
            for rep, by_score in by_rep.items() for k, s in by_score.items()]
    rows += [["-", name.replace("baseline", "ppmi-svd"), k, *[results[name][k]] * W, *[0.0] * W]
             for name in ("baseline", "kernel") if results[name] is not None for k in SCORES]
    header = ["parameterization", "vectors", "score", *[f"mean n = {w}" for w in config.widths],
              *[f"sd n = {w}" for w in config.widths]]
    return table(header, [[("" if v is None else v) for v in r] for r in rows])


def report(config: Config, results: dict, out) -> dict:
    _plot_width(out, config, results)
    _plot_pairs(out, config, results)
    out.write_summary(_summary(config, results))
    return {**{f"{par} change spearman at n = {config.widths[-1]}": s["change"]["spearman"]["mean"][-1]
               for par, s in results["scores"].items()}, "ppmi-svd spearman": results["baseline"]["spearman"]}


COLORS = {"change": "C3", "trained": "C0", "output": "C2", "init": "0.55"}


def _plot_width(out, config, results):
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10.8, 8.4))
    w = np.asarray(config.widths, float)
    panels = [*SCORES.items(), ("agreement", "change against the kernel's cosines")]
    for ax, (k, title) in zip(axes.flat, panels):
        for par, by_rep in results["scores"].items():
            style = dict(ls="-", marker="o") if par == "ntk" else dict(ls="--", marker="s", mfc="none", ms=8)
            series = {r: by_rep[r][k] for r in REPRESENTATIONS} if k != "agreement" else \
                {"change": results["agreement"].get(par)}
            for rep, s in ((r, s) for r, s in series.items() if s is not None):
                mean = np.array([np.nan if v is None else v for v in s["mean"]], float)
                ax.errorbar(w, mean, yerr=s["sd"], color=COLORS[rep], capsize=3, **style)
        for y, color, ls in ((None if k == "agreement" else results["baseline"][k], "k", "-."),
                             (None if k == "agreement" or not results["kernel"] else results["kernel"][k], "C4", ":"),
                             (results["chance"] if k in ("add", "mul") else None, "0.3", (0, (1, 3))),
                             (0.0, "0.8", "-")):
            if y is not None:
                ax.axhline(y, color=color, lw=1.2, ls=ls, zorder=1)
        width_axis(ax, w)
        ax.set(xlabel="width $n$", ylabel="Pearson correlation" if k == "agreement" else title, title=title)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=COLORS[r], lw=3) for r in REPRESENTATIONS] + [
        Line2D([], [], color="k", ls=ls, marker=m, mfc=f) for ls, m, f in (("-", "o", "k"), ("--", "s", "none"))] + [
        Line2D([], [], color=c, ls=ls) for c, ls in (("k", "-."), ("C4", ":"), ("0.3", (0, (1, 3))))]
    labels = [r"$a_0(w)$", r"$a_T(w)$", r"$a_T(w) - a_0(w)$", "output vectors", "NTK", "muP",
              "PPMI-SVD (same pairs)", r"kernel ($n = \infty$, NTK change)", "chance"]
    cov = results["coverage"]
    save_figure(out, fig, "table1_features_width.png",
                f"Word vectors of the last hidden layer against width (V = {cov['vocabulary']:,}: "
                f"{cov['pairs']} WordSim pairs, {cov['questions']} analogies)", legend=(handles, labels, 5))


def _plot_pairs(out, config, results):
    plt = pyplot()
    cosines = results["pair_cosines"]
    titles = {"ntk": f"NTK change, n = {config.widths[-1]:,}", "mup": f"muP change, n = {config.widths[-1]:,}",
              "kernel": r"kernel, $n = \infty$", "ppmi-svd": "PPMI-SVD"}
    shown = [k for k in titles if k in cosines]
    fig, axes = plt.subplots(-(-len(shown) // 2), 2, figsize=(10.8, 4.2 * -(-len(shown) // 2)), squeeze=False)
    human = np.asarray(results["pairs"]["human"])
    from scipy.stats import spearmanr

    for ax, k in zip(axes.flat, shown):
        c = np.asarray(cosines[k], float)
        ax.plot(human, c, "o", ms=4, alpha=0.7)
        rho = f"{spearmanr(human, c).statistic:+.2f}" if np.ptp(c) > 0 else "undefined"
        ax.set(xlabel="human similarity (WordSim-353)", ylabel="cosine", title=f"{titles[k]}: Spearman {rho}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    save_figure(out, fig, "table1_features_pairs.png",
                f"Cosine against human similarity, the {len(human)} covered WordSim pairs (seed {config.seed})")


def _summary(config, results) -> str:
    from scipy.stats import binom

    cov, widths, scores = results["coverage"], config.widths, results["scores"]
    chance, nq, npairs = results["chance"], cov["questions"], cov["pairs"]
    # Spearman of unrelated rankings: about N(0, 1/(P-1)); analogies: hits ~ Binomial(Q, chance).
    noise = 2.0 / np.sqrt(npairs - 1)
    hits_needed = int(binom.isf(0.01, nq, chance)) + 1
    files = [f"`{r['path']}` ({r['bytes']:,} bytes, MD5 {r['md5']}), {r['kind']}" for r in results["data"].values()]
    t8 = results["data"]["text8"]
    lines = ["# Table 1's features as word vectors (text8, WordSim-353, word2vec analogies)", "",
             f"Two hidden layers of width n, one-hot inputs over the V = {cov['vocabulary']:,} most frequent words, "
             f"V outputs, SGD on {t8['pairs']:,} skip-gram pairs (window {config.window}), batch {config.batch_size}, "
             f"learning rate {config.learning_rate}, {config.steps} steps (gradient-flow time {results['time']:g}), "
             f"MSE loss{' on f_theta - f_theta0' if config.center_output else ''}; "
             f"seeds per width: {', '.join(map(str, results['seeds_by_width']))}.", "",
             f"Coverage: {npairs} of the {cov['pairs_total']} WordSim pairs and {nq} of the {cov['questions_total']:,} "
             f"analogy questions have all their words in the vocabulary; chance on the analogies is "
             f"1/(V - 3) = {chance:.2g} ({nq * chance:.2f} expected hits), and unrelated rankings give "
             f"Spearman within about +-{noise:.2f} (two standard deviations).", "",
             "Data: " + "; ".join(files) + f"; {t8['words_used']:,} words used.", "",
             "## Scores (mean (s.d.) over seeds)", "",
             "| vectors | score | " + " | ".join(f"n = {w:,}" for w in widths) + " |",
             "|---" * (len(widths) + 2) + "|"]
    lines += [f"| {NAMES.get(par, par)} {REPRESENTATIONS[rep]} | {SCORES[k]} | " + " | ".join(
        f"{_fmt(m)} ({sd:.3f})" for m, sd in zip(s["mean"], s["sd"])) + " |"
        for par, by_rep in scores.items() for rep, by_score in by_rep.items() for k, s in by_score.items()]
    base, kern = results["baseline"], results["kernel"]
    lines += ["", "| vectors | " + " | ".join(SCORES.values()) + " |", "|---" * 4 + "|",
              "| PPMI-SVD (same pairs) | " + " | ".join(_fmt(base[k]) for k in SCORES) + " |"]
    if kern is not None:
        lines.append(r"| kernel, n = infinity (NTK change) | " + " | ".join(_fmt(kern[k]) for k in SCORES) + " |")
    lines += ["", "## Finding", ""]
    for par, by_rep in scores.items():
        ch = by_rep["change"]
        rho, add, mul = (ch[k]["mean"] for k in SCORES)
        hits = max(add[-1], mul[-1]) * nq
        lines.append(
            f"- **{NAMES.get(par, par)}**, the change a_T - a_0 at n = {widths[-1]:,}: Spearman {_fmt(rho[-1])}, "
            f"analogies {_fmt(add[-1])} (3CosAdd) and {_fmt(mul[-1])} (3CosMul), {hits:.1f} questions right: "
            + claim(rho[-1] is not None and abs(rho[-1]) > noise, "a similarity signal beyond the noise of "
                    "unrelated rankings", "no similarity signal beyond the noise of unrelated rankings") + "; "
            + claim(hits >= hits_needed, f"analogies above chance (at least {hits_needed} hits needed at p = 0.01)",
                    f"analogies at chance (fewer than the {hits_needed} hits that p = 0.01 needs)")
            + f". From n = {widths[0]:,} to {widths[-1]:,} its Spearman goes {_fmt(rho[0])} -> {_fmt(rho[-1])}"
            f" and its aggregate drift {results['drift'][par][0]:.3g} -> {results['drift'][par][-1]:.3g}; "
            f"a_T scores {_fmt(by_rep['trained']['spearman']['mean'][-1])}, the output vectors "
            f"{_fmt(by_rep['output']['spearman']['mean'][-1])}, a_0 (random) "
            f"{_fmt(by_rep['init']['spearman']['mean'][-1])}.")
    if base["spearman"] is not None:
        lines.append(f"- The co-occurrence vectors of the same pairs (PPMI-SVD, d = {config.ppmi_dim}) score Spearman "
                     f"{_fmt(base['spearman'])} and analogies {_fmt(base['add'])} / {_fmt(base['mul'])}: the text holds "
                     "the signal, " + claim(all(abs(s["change"]["spearman"]["mean"][-1] or 0) < base["spearman"] / 2
                                               for s in scores.values()),
                                           "which the features' change does not pick up at these widths.",
                                           "and the features' change picks up part of it."))
    if kern is not None:
        agree = results["agreement"].get("ntk")
        lines.append(
            f"- The infinite-width Gram matrix of the NTK change scores Spearman {_fmt(kern['spearman'])} and "
            f"analogies {_fmt(kern['add'])} / {_fmt(kern['mul'])}; its cosines between distinct words average "
            f"{kern['mean_cosine']:.3f} (measured at n = {widths[-1]:,}: "
            f"{results['mean_cosine']['ntk']['mean'][-1]:.3f})"
            + claim(kern["mean_cosine"] > 0.5, ": the change is mostly one direction shared by every word.", ".")
            + ("" if not agree else f" The measured change's cosines correlate with the kernel's by "
               f"{agree['mean'][0]:.2f} at n = {widths[0]:,} and {agree['mean'][-1]:.2f} at n = {widths[-1]:,}."))
    lines += ["", "Files: table1_features.csv (every score), table1_features_width.png (scores against width), "
              "table1_features_pairs.png (cosine against human score, per pair)."]
    return "\n".join(lines)
