"""The drift of the last hidden layer: trained networks against the infinite-width prediction.

For depths L = 3, 4, 5 (two to four hidden layers), widths from a few hundred
up, and several seeds, a network at NTK parameterization with one of the
activations of ``docs/drift.md#activations`` (ReLU by default) is trained by
full-batch gradient descent on the MSE loss (``docs/drift.md``'s setting: N
points on the sphere of radius sqrt(d), random targets). The measured drift
``|a_t(x) - a_0(x)|_2`` of its last hidden layer is compared with
:func:`ntkdepth.theory.drift_norm_prediction` conditioned on the same seed's
``f_0(X)``. The ratio measured / predicted should tend to 1 with a gap
shrinking like ``n^{-1/2}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting, with_defaults
from ntkdepth.plotting import pyplot, save_figure, width_axis, width_scaling_panel
from ntkdepth.reporting import table
from ntkdepth.runs import RunDir
from ntkdepth.stats import power_law_fits, standard_error
from ntkdepth.training.settings import GradientFlowSettings

NAME = "drift-theory"
DESCRIPTION = "last-hidden-layer drift of trained networks against its infinite-width prediction, depths 3-5"


@dataclass(frozen=True)
class Config(with_defaults(GradientFlowSettings, n_records=6, dim=6, n_train=8, n_test=4, time=2.0, dt=0.01)):
    depths: list[int] = setting([3, 4, 5], help="L, weight layers (L - 1 hidden layers)", min=2, max=20)
    outputs: int = setting(1, help="K, outputs (random Gaussian targets)", min=1)
    first_std: float = setting(1.0, help="sigma_w of the first layer", min=1e-6)
    out_std: float = setting(1.0, help="sigma_w of the output layer", min=1e-6)
    # Left out of the recorded config at its default: ReLU runs keep the keys they had before it.
    activation: str = setting("relu", omit_default=True,
                              help="the activation, one of ntkdepth.theory.DRIFT_ACTIVATIONS (the drift's "
                                   "derivation covers those; docs/drift.md#activations)")

    def check(self):
        from ntkdepth.theory.drift.expectations import drift_activation

        drift_activation(self.activation)


def run(config: Config, out: RunDir) -> dict:
    import jax
    import jax.numpy as jnp

    from ntkdepth.models import NetworkSpec
    from ntkdepth.theory import drift_prediction
    from ntkdepth.training import FullBatchData, run_width_sweep

    rng = np.random.default_rng([config.seed, 23])
    x = config.sphere_inputs(rng)
    y = rng.normal(size=(config.n_train, config.outputs))
    # The prediction takes one scale for layers 1..L-1: a first layer of its own scale scales the inputs.
    x = x * (config.first_std / config.W_std if config.first_std != config.W_std else 1.0)
    N = config.n_train
    training = config.train_spec()
    times = config.record_times(training)
    data = FullBatchData(jnp.asarray(x[:N], jnp.float32), jnp.asarray(y, jnp.float32))
    seeds = config.network_seeds()

    ratios = {}  # depth -> width -> {"train": [seeds], "test": [seeds]}: measured/predicted at t
    curves = {}  # depth -> {"measured", "predicted"}: [R] RMS over training inputs, mean over seeds, widest
    for depth in config.depths:
        # One description gives the finite networks and the prediction's network.
        network = NetworkSpec(depth=depth, W_std=config.W_std, b_std=config.b_std, out_std=config.out_std,
                              activation=config.activation)

        def make_model(width, seed, network=network):
            return network.model(config.dim, width, config.outputs, rngs=seed)

        # Every setting shapes the runs but the lists of depths and widths and the number of seeds.
        identity = out.settings(exclude=("depths", "widths", "seeds"), depth=depth)
        print(f"drift-theory: depth {depth}, widths {config.widths}, seeds {seeds}")
        runs = run_width_sweep(make_model, data, training, jnp.asarray(x, jnp.float32), config.widths,
                               seeds, out.cache_dir(f"sweep-L{depth}", identity))
        ratios[depth] = {}
        for w in config.widths:
            train, test, measured, predicted = [], [], [], []
            for s in seeds:
                r = runs[(w, s)]

                def predict(r=r, network=network):
                    with jax.enable_x64(True):
                        d2 = drift_prediction(x[:N], y, x, times, spec=network,
                                              f0_train=r.outputs[0, :N].astype(np.float64))
                    return {"d2": d2}

                d2 = out.stage(f"prediction_L{depth}_n{w}_s{s}", predict)["d2"]  # [R, N + M]
                meas2 = r.stats["aggregate"].astype(np.float64) ** 2
                train.append(np.sqrt(meas2[-1, :N].sum() / d2[-1, :N].sum()))
                if config.n_test:
                    test.append(np.sqrt(meas2[-1, N:].sum() / d2[-1, N:].sum()))
                measured.append(np.sqrt(meas2[:, :N].mean(1)))
                predicted.append(np.sqrt(d2[:, :N].mean(1)))
            ratios[depth][w] = {"train": train, "test": test}
        curves[depth] = {"measured": np.mean(measured, 0), "predicted": np.mean(predicted, 0)}

    rows = [[d, w, np.mean(v["train"]), standard_error(v["train"]),
             np.mean(v["test"]) if v["test"] else "", standard_error(v["test"]) if v["test"] else ""]
            for d, by_width in ratios.items() for w, v in by_width.items()]
    fits = power_law_fits(config.widths, {
        d: [abs(1 - np.mean(ratios[d][w]["train"])) for w in config.widths] for d in config.depths})
    per_seed = {k: np.array([[ratios[d][w][k] for w in config.widths] for d in config.depths])
                for k in ("train", "test")}  # [depth, width, seed]
    return {
        # [depth, width], as config.depths and config.widths: mean (s.e.) over seeds.
        "ratio_measured_over_predicted": {
            "train": np.array([[np.mean(ratios[d][w]["train"]) for w in config.widths] for d in config.depths]),
            "se": np.array([[standard_error(ratios[d][w]["train"]) for w in config.widths] for d in config.depths]),
            "test": np.array([[np.mean(ratios[d][w]["test"]) for w in config.widths] for d in config.depths])
            if config.n_test else None},
        "gap_exponents": [fits.get(d) for d in config.depths],  # None where |1 - ratio| reaches 0
        "times": times,
        "ratios_per_seed": {k: v if k == "train" or config.n_test else None for k, v in per_seed.items()},
        # [depth, record] at the largest width.
        "curves_at_largest_width": {k: np.stack([curves[d][k] for d in config.depths])
                                    for k in ("measured", "predicted")},
        "tables": {"drift_ratio.csv": table(["depth", "width", "ratio_train", "se_train", "ratio_test", "se_test"],
                                            rows)},
    }


def report(config: Config, results: dict, out) -> dict:
    _plot(out, config, results)
    out.write_summary(_summary(config, results))
    wl = config.widths[-1]
    head = {f"ratio at n = {wl}, L = {d}": round(_ratio(results, i, -1)["train"], 4) for i, d in enumerate(config.depths)}
    head.update({f"gap exponent L = {d}": round(f["exponent"], 3)
                 for d, f in zip(config.depths, results["gap_exponents"]) if f})
    return head


def _ratio(results, i: int, j: int) -> dict:
    """``{"train", "se", "test"}``: measured / predicted at the ``i``-th depth and ``j``-th width, mean
    (s.e.) over seeds."""
    r = results["ratio_measured_over_predicted"]
    return {k: None if r[k] is None else r[k][i][j] for k in ("train", "se", "test")}


def _plot(out, config, results):
    plt = pyplot()
    w = np.array(config.widths, float)
    fits = results["gap_exponents"]
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 9.2))
    axes = axes.ravel()
    ax = axes[0]
    for i, d in enumerate(config.depths):
        r = [_ratio(results, i, j) for j in range(len(config.widths))]
        ax.errorbar(w * (1 + 0.03 * i), [v["train"] for v in r], yerr=[v["se"] for v in r], fmt="o-", capsize=3,
                    color=f"C{i}", label=f"$L = {d}$, training inputs")
        if config.n_test:
            ax.plot(w * (1 + 0.03 * i), [v["test"] for v in r], "s", ms=7, mfc="none", color=f"C{i}",
                    label=f"$L = {d}$, held-out inputs")
    ax.axhline(1.0, color="k", lw=0.8)
    width_axis(ax, w)
    ax.set(xlabel="width $n$", ylabel="measured / predicted drift",
           title="drift of the last hidden layer against its limit")
    ax.grid(alpha=0.3)
    # The fourth slot holds this panel's legend (it would cover the points).
    axes[3].axis("off")
    axes[3].legend(*ax.get_legend_handles_labels(), loc="center",
                   title=r"upper left: mean $\pm$ s.e. over seeds;" "\nheld-out: mean (points shifted apart)")

    ax = axes[1]
    gap = [[abs(1 - np.mean(seeds)) for seeds in by_width] for by_width in results["ratios_per_seed"]["train"]]
    width_scaling_panel(ax, w, {f"L = {d}": (gap[i], None, fits[i], f"C{i}")
                                for i, d in enumerate(config.depths)},
                        ylabel="|1 - measured / predicted|", title="convergence ($n^{-1/2}$ expected)")
    ax.legend()

    ax = axes[2]
    wl = config.widths[-1]
    curves = results["curves_at_largest_width"]
    for i, d in enumerate(config.depths):
        ax.plot(results["times"], curves["predicted"][i], "-", color=f"C{i}", label=f"$L = {d}$ predicted")
        ax.plot(results["times"], curves["measured"][i], "o", color=f"C{i}", label=f"$L = {d}$ measured ($n = {wl}$)")
    ax.set(xlabel="time $t$", ylabel=r"$\|a_t - a_0\|$, RMS over training inputs", title="drift over training")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(out, fig, "drift_theory.png", f"Last-hidden-layer drift against its infinite-width prediction "
                f"({config.activation})")


def _summary(config, results):
    wl = config.widths[-1]
    fits = results["gap_exponents"]
    lines = [
        "# Last-hidden-layer drift against the infinite-width prediction",
        "",
        f"Activation {config.activation}, d = {config.dim}, N = {config.n_train} training and {config.n_test} "
        f"held-out inputs on the sphere of radius sqrt(d), K = {config.outputs}, W_std = {config.W_std:.4g}, "
        f"out_std = {config.out_std}, "
        f"b_std = {config.b_std}, t = {config.time} (dt = {config.dt}), {config.seeds} seed(s). "
        "Ratio: measured over predicted drift, the prediction conditioned on each seed's f_0, "
        "summed in squares over the training inputs; mean ± s.e. over seeds.",
        "",
        "| depth | " + " | ".join(f"n = {w}" for w in config.widths) + " | gap exponent |",
        "|---" * (len(config.widths) + 2) + "|",
    ]
    for i, (d, f) in enumerate(zip(config.depths, fits)):
        lines.append(f"| {d} | " + " | ".join(
            f"{_ratio(results, i, j)['train']:.4f} ± {_ratio(results, i, j)['se']:.4f}"
            for j in range(len(config.widths)))
            + f" | {'' if f is None else format(f['exponent'], '+.2f')} |")
    lines += ["", "## Finding", ""]
    for i, (d, f) in enumerate(zip(config.depths, fits)):
        r = _ratio(results, i, -1)
        test = f", held-out inputs {r['test']:.4f}" if r["test"] is not None else ""
        lines.append(
            f"- L = {d}: ratio {r['train']:.4f} at n = {wl}{test}"
            + ("" if f is None else f"; |1 - ratio| scales like n^{f['exponent']:+.2f}") + "."
        )
    lines += ["", "Files: drift_ratio.csv, drift_theory.png, results.json."]
    return "\n".join(lines)
