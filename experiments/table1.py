"""Table 1: how far the last hidden layer moves after SGD on text8 skip-gram pairs, against width.

The paper's section 5 (docs/drift.md#measured-drift): two hidden layers of width n (ReLU, or
``activation``) on one-hot tokens of V words, V outputs, the MSE loss and a width-independent
learning rate (``ntkdepth.experiment_settings.SkipGramSettings``); the drift measures of NTK and muP
networks (docs/networks.md), and beside the NTK rows the kernel's infinite-width prediction
(``ntkdepth.theory.onehot_drift_measures``) for the activations it covers (docs/drift.md#activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting, with_defaults
from ntkdepth.empirical import DRIFT_MEASURES as MEASURES
from ntkdepth.empirical import drift_against_prediction
from ntkdepth.experiment_settings import SkipGramSettings, skipgram_data_line
from ntkdepth.models import PARAMETERIZATION_NAMES
from ntkdepth.plotting import DRIFT_AXIS_LABELS, drift_curve_panels, drift_scaling_panels, save_figure
from ntkdepth.reporting import claim, markdown_table, table
from ntkdepth.runs import RunDir
from ntkdepth.stats import fit_range, power_law_fits

NAME = "table1"
DESCRIPTION = "last-hidden-layer drift against width on text8 (NTK and muP), with fitted exponents"


@dataclass(frozen=True)
class Config(with_defaults(SkipGramSettings, seeds=2)):
    n_eval: int = setting(64, help="evaluation tokens (random, fixed) whose features are measured", min=2)
    fit_min_width: int = setting(0, help="exponents are fitted over the widths >= this (0: all), the asymptotic range",
                                 min=0)
    # Left out of the recorded config at its default: ReLU runs keep the keys they had before it.
    activation: str = setting("relu", omit_default=True,
                              help="the activation of every network (a name of ntkdepth.kernels.ACTIVATION_NAMES); "
                                   "the kernel column exists for ntkdepth.theory.DRIFT_ACTIVATIONS")

    def check(self):
        from ntkdepth.kernels import activation

        super().check()
        activation(self.activation)

    def network(self):
        """Table 1's two hidden layers with this run's activation."""
        return super().network().replace(activation=self.activation)


def run(config: Config, out: RunDir) -> dict:
    import jax.numpy as jnp

    from ntkdepth.empirical import drift_curves
    from ntkdepth.theory import onehot_drift_measures, supports_drift
    from ntkdepth.training import PairData

    text = config.load_text()
    out.record_data("text8", text.record)
    pairs, p, q, V = text.pairs, text.center_freq, text.context_dist, config.vocab_size
    rng = np.random.default_rng(config.seed)
    eval_tokens = np.sort(rng.choice(V, size=min(config.n_eval, V), replace=False)).astype(np.int32)
    seeds, widths, data = config.seeds_at(), config.widths, PairData.create(pairs, seed=config.seed)
    # The fit's range does not shape the runs.
    sweeps = {par: config.width_sweep(par, out, data, jnp.asarray(eval_tokens), exclude=("fit_min_width",))
              for par in config.parameterizations}
    stats = {par: config.measured_drift(runs) for par, runs in sweeps.items()}
    fits = _fits(config, stats)
    steps = np.asarray(config.train_spec().records)
    kernel = None
    if supports_drift(config.activation):
        kernel = out.stage("kernel_prediction", lambda: onehot_drift_measures(
            p, q, eval_tokens, steps * config.learning_rate, widths, spec=config.network(),
            input_scale=config.input_scale, centered=config.center_output))
    results = {
        "vocabulary": {"size": V, "pairs": int(len(pairs)), "words": text.record["words_used"],
                       "most_frequent": list(text.vocabulary.words[:10])},
        "eval_tokens": eval_tokens, "steps": steps,
        "data": text.record, "seeds_by_width": [len(seeds[w]) for w in widths],
        # Every per-width value is an array aligned with config.widths.
        "final_loss": {par: np.array([float(np.mean([sweeps[par][(w, s)].loss[-1] for s in seeds[w]]))
                                      for w in widths]) for par in config.parameterizations},
        "table": stats, "exponents": fits,
        "kernel_prediction": kernel and {
            "aggregate_mean_over_eval_tokens": float(kernel["aggregate"][-1].mean()),
            "aggregate_over_steps": kernel["aggregate"].mean(1),
            "per_neuron_mean_times_sqrt_n": float(kernel["unit_mean_abs"].mean()),
            "per_neuron_max_times_sqrt_n": kernel["unit_max"].mean(1),
            "at_width": {m: kernel[m] for m in ("per_neuron_mean", "per_neuron_max")},
            "time": float(steps[-1] * config.learning_rate),
        },
        "curves": {par: drift_curves(runs, widths, seeds) for par, runs in sweeps.items()},
    }
    results["tables"] = {"table1.csv": _csv(config, results)}
    return results


def report(config: Config, results: dict, out) -> dict:
    results = _aligned_with_widths(config, results)
    out.write_text("table1.md", _markdown(config, results))
    kernel = results["kernel_prediction"]
    predicted = {} if not kernel else {"aggregate": [kernel["aggregate_mean_over_eval_tokens"]] * len(config.widths),
                                       **kernel.get("at_width", {})}
    fig = drift_scaling_panels(config.widths, list(MEASURES), results["table"], results["exponents"], predicted)
    save_figure(out, fig, "table1_scaling.png", "Last-hidden-layer drift after training against width "
                r"(mean $\pm$ s.d. over evaluation tokens and seeds)")
    if results.get("curves"):
        fig, legend = drift_curve_panels(results["steps"], config.widths, results["curves"],
                                         kernel["aggregate_over_steps"] if kernel else None)
        save_figure(out, fig, "table1_steps.png", "The drift measures and the loss along training (mean over seeds)",
                    legend=legend)
    out.write_summary(_summary(config, results))
    fits = results["exponents"]
    return {**{f"{par} {m} exponent": round(fits[par][m]["exponent"], 3) for par in config.parameterizations
               for m in ("aggregate", "per_neuron_mean", "relative") if m in fits.get(par, {})},
            "table": str(out.file("table1.md"))}


def _fits(config, stats) -> dict:
    """Power laws in the width, fitted over the widths ``>= fit_min_width`` (all when fewer than two)."""
    if len(config.widths) < 2:
        return {}
    at = np.flatnonzero(fit_range(config.widths, config.fit_min_width))
    fitted = [config.widths[k] for k in at]
    return {par: {m: {**f, "widths": fitted} for m, f in power_law_fits(
        np.array(fitted, float), {m: np.asarray(t["mean"])[at] for m, t in by_measure.items()}
    ).items()} for par, by_measure in stats.items()}


def _aligned_with_widths(config, results: dict) -> dict:
    """``results`` with every per-width value an array aligned with ``config.widths``.

    Runs written before their results held such arrays keyed their values by
    ``str(width)`` (and the earliest ones kept no curves, no kernel prediction
    and no fitted range): the same numbers are laid out afresh, and what a run
    did not keep stays out of its report.
    """
    table = results["table"]
    if all("mean" in t for by_measure in table.values() for t in by_measure.values()):
        return results
    keys = [str(w) for w in config.widths]
    aligned = {
        **results,
        "table": {par: {m: {k: [by_width[w][k] for w in keys] for k in ("mean", "sd")}
                        for m, by_width in by_measure.items()} for par, by_measure in table.items()},
        "final_loss": {par: [by_width[w] for w in keys] for par, by_width in results["final_loss"].items()},
        "exponents": {par: {m: {"widths": list(config.widths), **f} for m, f in fits.items()}
                      for par, fits in results["exponents"].items()},
        "kernel_prediction": results.get("kernel_prediction"),
    }
    if results.get("curves"):
        aligned["curves"] = {par: {k: [by_width[w][k] for w in keys] for k in by_width[keys[0]]}
                             for par, by_width in results["curves"].items()}
    return aligned


def _rows(config, results):
    """``(par, measure, label, mean [W], sd [W], kernel at n = inf, exponent, kernel at each width)``."""
    kernel = results["kernel_prediction"] or {}
    at_width, agg = kernel.get("at_width", {}), kernel.get("aggregate_mean_over_eval_tokens")
    for par, by_measure in results["table"].items():
        for m, label in MEASURES.items():
            mean, sd = (np.asarray(by_measure[m][k], dtype=np.float64) for k in ("mean", "sd"))
            exp = results["exponents"].get(par, {}).get(m, {}).get("exponent")
            ntk = par == "ntk"
            inf = agg if ntk and m == "aggregate" else None
            yield par, m, label, mean, sd, inf, exp, at_width.get(m) if ntk else None


def _csv(config, results) -> dict:
    rows = []
    for par, m, _, mean, sd, inf, exp, pred in _rows(config, results):
        rows.append([par, m, *mean, "" if inf is None else inf, "" if exp is None else exp])
        rows.append([par, m + "_sd", *sd, "", ""])
        if pred is not None:
            rows.append([par, m + "_kernel", *pred, 0.0, -0.5])
    header = ["parameterization", "measure", *[f"n = {w}" for w in config.widths], "n = inf (kernel)", "exponent"]
    return table(header, rows)


def _markdown(config, results) -> str:
    widths = config.widths
    md = markdown_table(["measure", *(f"n = {w:,}" for w in widths), "kernel (n = infinity)", "fitted exponent"], [])
    for par, m, label, mean, sd, inf, exp, pred in _rows(config, results):
        if m == next(iter(MEASURES)):
            md.append(f"| **{par.upper() if par != 'mup' else 'muP'}** |" + " |" * (len(widths) + 2))
        md.append(f"| {label.replace('|', chr(92) + '|')} | "
                  + " | ".join(f"{mu:.4g} ({s:.2g})" for mu, s in zip(mean, sd))
                  + f" | {'' if inf is None else format(inf, '.4g')} | {'' if exp is None else format(exp, '+.3f')} |")
        if pred is not None:
            md.append("| ↳ kernel prediction at width n | " + " | ".join(f"{v:.4g}" for v in pred) + " | 0 | -0.5 |")
    return ("Mean (s.d.) over evaluation tokens and seeds, after training; exponent: slope of log(mean) "
            "against log(width). Kernel: the infinite-width prediction of the NTK network's drift "
            "(docs/drift.md) for the same gradient-flow time; per-unit predictions are "
            "n^{-1/2} times the limit law's mean and expected maximum.\n\n" + "\n".join(md) + "\n")


def _predicted(config, kernel) -> dict:
    """The kernel's aggregate and mean per-neuron drift of the NTK network at each width (``[W]``)."""
    widths = np.asarray(config.widths, float)
    return {"aggregate": np.full(len(widths), kernel["aggregate_mean_over_eval_tokens"]),
            "per_neuron_mean": kernel["per_neuron_mean_times_sqrt_n"] / np.sqrt(widths)}


def _paper_table(config, results) -> list[str]:
    """The paper's two rows (aggregate and individual-neuron drift) at the two largest widths."""
    stats, widths = results["table"], config.widths
    cols = [(par, k) for par in stats for k in range(max(0, len(widths) - 2), len(widths))]
    kernel, rows = results["kernel_prediction"], []
    for m, label in (("aggregate", r"aggregate \|a_T(x) - a_0(x)\|_2"),
                     ("per_neuron_mean", r"individual neuron \|a_T,i(x) - a_0,i(x)\|, mean over i")):
        rows.append([label, *(f"{stats[par][m]['mean'][k]:.4g} ({stats[par][m]['sd'][k]:.2g})" for par, k in cols)])
        if kernel and "ntk" in stats:
            pred = _predicted(config, kernel)[m]
            rows.append(["↳ kernel prediction", *(f"{pred[k]:.4g}" if par == "ntk" else "" for par, k in cols)])
    head = ["drift of the last hidden layer", *(f"{PARAMETERIZATION_NAMES.get(par, par)}, n = {widths[k]:,}"
                                                for par, k in cols)]
    return [f"## As in the paper's Table 1 (n = {', '.join(f'{widths[k]:,}' for k in sorted({k for _, k in cols}))})",
            "", "Mean (s.d.) over evaluation tokens and seeds after training; the kernel's prediction of the NTK "
            "network's drift (same gradient-flow time) beside it.", "", *markdown_table(head, rows), ""]


def _against_kernel(config, results) -> list[str]:
    kernel, ntk = results["kernel_prediction"], results["table"].get("ntk")
    if not kernel or not ntk:
        return []
    predicted = _predicted(config, kernel)
    ratios = drift_against_prediction({m: ntk[m]["mean"] for m in predicted}, predicted, config.widths,
                                      config.fit_min_width)
    rows = [[DRIFT_AXIS_LABELS[m], *(f"{v:.3f}" for v in r["ratio"]),
             "" if r["exponent"] is None else f"{r['exponent']:+.2f}"] for m, r in ratios.items()]
    md = ["## The NTK network against its kernel", "", *markdown_table(
        ["measured / predicted", *(f"n = {w:,}" for w in config.widths), "exponent of abs(1 - ratio) in n"], rows)]
    agg = ratios.get("aggregate")
    if agg is not None:
        wl, last, span = config.widths[-1], agg["ratio"][-1], f"{agg['widths'][0]:,}..{agg['widths'][-1]:,}"
        verdict = ""
        if agg["exponent"] is not None:
            verdict = " " + claim(agg["exponent"] < -0.25,
                                  f"Its gap to 1 shrinks with width (exponent {agg['exponent']:+.2f} over "
                                  f"n = {span}; -1/2 expected)",
                                  f"Its gap to 1 does not shrink like n^-1/2 over n = {span} (exponent "
                                  f"{agg['exponent']:+.2f})") + "."
        md += ["", f"At n = {wl:,} the aggregate drift is {last:.3f} times the kernel's prediction."
               + verdict]
    return md + [""]


def _summary(config, results) -> str:
    widths, stats, fits = config.widths, results["table"], results["exponents"]
    wl = widths[-1]
    lines = [
        "# Table 1: last-hidden-layer drift against width (text8)",
        "",
        f"Two hidden layers of width n ({config.activation}), one-hot inputs over V = {config.vocab_size} words "
        f"({config.onehot_norm} norm), V outputs, {results['vocabulary']['pairs']:,} skip-gram pairs "
        f"(window {config.window}), SGD with batch {config.batch_size}, learning rate {config.learning_rate}, "
        f"{config.steps} steps, MSE loss"
        f"{' on the centered network f_theta - f_theta0' if config.center_output else ''}; "
        f"{config.seeds_line()}, {config.n_eval} evaluation tokens.",
        "",
        skipgram_data_line(results.get("data")),
        "",
        *_paper_table(config, results),
        *_against_kernel(config, results),
        "## Every measure and width",
        "",
        _markdown(config, results),
        "",
        "## Finding",
        "",
    ]
    for par in stats:
        f = fits.get(par, {})
        parts = [f"{m.replace('_', ' ')} {f[m]['exponent']:+.3f}"
                 + (f" ± {f[m]['stderr']:.3f}" if f[m]["stderr"] else "") for m in MEASURES if m in f]
        agg, pn = (np.asarray(stats[par][m]["mean"]) for m in ("aggregate", "per_neuron_mean"))
        lines.append(
            f"- **{par}**: fitted exponents in n: " + ", ".join(parts) + ". "
            f"Aggregate drift {agg[0]:.3g} at n = {widths[0]} and {agg[-1]:.3g} at n = {widths[-1]}; "
            f"mean per-neuron drift {pn[0]:.3g} and {pn[-1]:.3g}."
        )
    if "ntk" in fits and "aggregate" in fits["ntk"]:
        a, pnx = fits["ntk"]["aggregate"]["exponent"], fits["ntk"]["per_neuron_mean"]["exponent"]
        span = fits["ntk"]["aggregate"]["widths"]
        verdict = claim(abs(a) < 0.15 and pnx < -0.35,
                        "the layer as a whole stays put while each unit's drift shrinks: "
                        "the shape of the paper's Table 1",
                        "these widths are not yet in the asymptotic regime (0 and -1/2 expected)"
                        + ("; the kernel's prediction below is the sharper test" if results["kernel_prediction"] else ""))
        lines.append(f"- NTK, exponents fitted over n = {span[0]}..{span[-1]}: aggregate {a:+.2f}, per-neuron "
                     f"{pnx:+.2f}: {verdict}.")
    if "mup" in fits and "per_neuron_mean" in fits["mup"]:
        pnx = fits["mup"]["per_neuron_mean"]["exponent"]
        lines.append(
            f"- muP: per-neuron exponent {pnx:+.2f} (0 expected: every unit keeps moving), aggregate exponent "
            f"{fits['mup']['aggregate']['exponent']:+.2f} (+1/2 expected): "
            + claim(pnx > 0, "unlike the NTK network, its units move more, not less, as it widens.",
                    "at these widths its units still move less as it widens.")
        )
    kernel = results["kernel_prediction"]
    if "ntk" in stats and kernel:
        agg_inf, measured = kernel["aggregate_mean_over_eval_tokens"], stats["ntk"]["aggregate"]["mean"][-1]
        lines.append(
            f"- The kernel predicts the NTK network's aggregate drift at infinite width: {agg_inf:.4g} "
            f"(mean over the evaluation tokens); measured {measured:.4g} at n = {wl} "
            f"(ratio {measured / agg_inf:.3f}). Predicted mean per-neuron drift "
            f"{kernel['per_neuron_mean_times_sqrt_n']:.4g} / sqrt(n), measured "
            f"{stats['ntk']['per_neuron_mean']['mean'][-1] * np.sqrt(widths[-1]):.4g} / sqrt(n) at n = {wl}."
        )
    elif not kernel and config.activation != "relu":  # an activation the drift does not cover
        from ntkdepth.theory import DRIFT_ACTIVATIONS

        lines.append(f"- No kernel column: the drift's prediction covers {', '.join(DRIFT_ACTIVATIONS)}, not "
                     f"{config.activation} (docs/drift.md#activations).")
    lines.append("- Final training loss at the largest width: "
                 + ", ".join(f"{par} {loss[-1]:.4g}" for par, loss in results["final_loss"].items()) + ".")
    lines += ["", "Files: table1.md / table1.csv (the table), table1_scaling.png (measures against "
              "width with fitted slopes), table1_steps.png (measures and loss over training)."]
    return "\n".join(lines)
