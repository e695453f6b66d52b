"""Finite networks against the analytic kernel as width grows (docs/kernels.md#finite-width).

A small regression problem: N training and M test inputs uniform on the
sphere of radius sqrt(d) (so that Sigma^1(x, x) = W_std^2), smooth targets,
a network of depth L (ReLU unless ``activation`` says otherwise) at NTK
parameterization trained by full-batch gradient descent on the MSE loss for a
time T. For each width and seed:

- the empirical NTK at initialization against Theta^L (relative Frobenius error),
- the last hidden layer's feature kernel at initialization against its limit,
- the empirical NTK after training against at initialization (how lazy the training was),
- the outputs along training against the gradient-flow predictor of the same
  f_0 (Proposition 3) from the analytic kernel,
- the aggregate drift |a_T(x) - a_0(x)|_2 of the last hidden layer, extrapolated
  to infinite width by a fit in n^{-1/2}, and against the kernel's prediction
  given the same f_0 for the activations that it covers (docs/drift.md#activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting, with_defaults
from ntkdepth.plotting import pyplot, save_figure, sequential_colors, width_scaling_panel
from ntkdepth.reporting import as_numbers, claim, table
from ntkdepth.runs import RunDir
from ntkdepth.stats import mean_sd, power_law_fits
from ntkdepth.training.settings import GradientFlowSettings

NAME = "width-vs-kernel"
DESCRIPTION = "empirical NTK, features, outputs and drift of finite networks against the analytic kernel"

ERRORS = {
    "ntk_init": "empirical NTK at init vs Theta^L",
    "features_init": "feature kernel at init vs its limit",
    "ntk_change": "NTK after training vs at init",
    "outputs_train": "outputs at T vs predictor (train)",
    "outputs_test": "outputs at T vs predictor (test)",
}
# The same, typeset for the figure.
ERROR_LABELS = {
    "ntk_init": r"empirical NTK at init vs $\Theta^L$",
    "features_init": "feature kernel at init vs its limit",
    "ntk_change": "NTK after training vs at init",
    "outputs_train": "outputs at $T$ vs predictor (train)",
    "outputs_test": "outputs at $T$ vs predictor (test)",
}


@dataclass(frozen=True)
class Config(with_defaults(GradientFlowSettings, n_records=10)):
    depth: int = setting(3, help="L, weight layers (L - 1 hidden layers)", min=2, max=20)
    activation: str = setting("relu", help="the activation (a name of ntkdepth.kernels.ACTIVATION_NAMES); the "
                                           "drift's kernel prediction exists for the plain networks of "
                                           "ntkdepth.theory.DRIFT_ACTIVATIONS")
    residual: float | str | None = setting(None, help="a residual network's branch scale: alpha (e.g. 0.5) or "
                                                      "'a/sqrt(L)' (docs/residual.md); unset: the plain network")

    def check(self):
        from ntkdepth.kernels import activation
        from ntkdepth.kernels.residual import check_residual

        activation(self.activation)
        check_residual(self.residual)
        if self.n_test < 1:
            raise ValueError("n_test: the outputs are compared on held-out inputs; give at least 1")


def run(config: Config, out: RunDir) -> dict:
    import dataclasses

    import jax
    import jax.numpy as jnp

    from ntkdepth.empirical import feature_kernel, mlp_ntk
    from ntkdepth.models import NetworkSpec
    from ntkdepth.theory import GradientFlowPredictor, drift_norm_prediction, supports_drift
    from ntkdepth.training import FullBatchData, run_width_sweep

    rng = np.random.default_rng([config.seed, 17])
    x = config.sphere_inputs(rng)
    w = rng.normal(size=config.dim) / np.sqrt(config.dim)
    y = np.sin(2.0 * x @ w)[:, None] + 0.5 * np.cos(x[:, 0])[:, None]
    N = config.n_train

    # One description gives the finite networks and their infinite-width kernels.
    network = NetworkSpec(depth=config.depth, W_std=config.W_std, b_std=config.b_std, activation=config.activation,
                          residual=config.residual)
    # The drift theory's networks (docs/drift.md#activations).
    covered = supports_drift(config.activation) and config.residual is None
    with jax.enable_x64(True):
        kernels = network.kernel_fn()(x, get=("nngp", "ntk"))
        theta = np.asarray(kernels.ntk)
        # The features' kernel, from the output's Sigma_f = out_std^2 K + b_std^2: K = E[phi phi] for the
        # plain network, the stream's Sigma^L for a residual one (what the readout reads).
        feat_limit = (np.asarray(kernels.nngp) - network.b_std**2) / network.out_std**2
    # Gradient descent follows the flow only while dt < 2 / lambda_max(Theta): a residual network's kernel
    # grows with alpha, and a step that suits the plain network diverges. A dt at or beyond that bound is
    # lowered to half of it (a function of the settings: the same for every width and seed).
    stable = 2.0 / float(np.linalg.eigvalsh(theta[:N, :N])[-1])
    if config.dt >= stable:
        config = dataclasses.replace(config, dt=0.5 * stable)
    training = config.train_spec()
    times = config.record_times(training)
    data = FullBatchData(jnp.asarray(x[:N], jnp.float32), jnp.asarray(y[:N], jnp.float32))
    x_all = jnp.asarray(x, jnp.float32)

    def make_model(width, seed):
        return network.model(config.dim, width, 1, rngs=seed)

    def final_measures(initial, trained):
        return {
            "ntk_init": mlp_ntk(initial, x_all[:N]),
            "ntk_final": mlp_ntk(trained, x_all[:N]),
            "features_init": feature_kernel(initial, x_all),
        }

    # Every setting shapes the runs but the list of widths and the number of seeds.
    identity = out.settings(exclude=("widths", "seeds"))
    seeds = config.network_seeds()
    runs = run_width_sweep(make_model, data, training, x_all, config.widths, seeds,
                           out.cache_dir("sweep", identity), final_measures=final_measures)

    predictor = GradientFlowPredictor(theta[:N, :N], y[:N])
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    errors, drift, drift_pred, trajectory = {k: {} for k in ERRORS}, {}, {}, {}
    for w in config.widths:
        e = {k: [] for k in ERRORS}
        d, dp = [], []
        for s in seeds:
            r = runs[(w, s)]
            e["ntk_init"].append(rel(r.extra["ntk_init"], theta[:N, :N]))
            e["features_init"].append(rel(r.extra["features_init"], feat_limit))
            e["ntk_change"].append(rel(r.extra["ntk_final"], r.extra["ntk_init"]))
            f0 = r.outputs[0].astype(np.float64)
            pred = predictor.predict(times, theta[N:, :N], f0_train=f0[:N], f0_test=f0[N:])
            pred_train = predictor.predict_train(times, f0_train=f0[:N])
            ft = r.outputs.astype(np.float64)
            e["outputs_train"].append(rel(ft[-1, :N], pred_train[-1]))
            e["outputs_test"].append(rel(ft[-1, N:], pred[-1]))
            d.append(r.stats["aggregate"][-1].mean())
            if covered:
                with jax.enable_x64(True):
                    # The infinite-width drift given this network's f_0 (docs/drift.md).
                    dp.append(drift_norm_prediction(x[:N], y[:N], x, [times[-1]], spec=network,
                                                    f0_train=f0[:N])[0].mean())
            else:
                dp.append(np.nan)
            if s == seeds[0]:
                trajectory[w] = {"network": ft[:, N, 0], "predictor": pred[:, 0, 0]}
        for k in ERRORS:
            errors[k][w] = mean_sd(e[k])
        drift[w] = mean_sd(d)
        drift_pred[w] = {"predicted_mean": float(np.mean(dp)),
                         "measured_over_predicted": float(np.mean(np.array(d) / np.array(dp)))}

    rows = [[w, *[errors[k][w][0] for k in ERRORS], drift[w][0], drift[w][1]] for w in config.widths]
    def mean_and_sd(by_width):
        """``{"mean": [W], "sd": [W]}`` over seeds, aligned with config.widths, as every per-width value."""
        return dict(zip(("mean", "sd"), np.array([by_width[w] for w in config.widths]).T))

    drift = mean_and_sd(drift)
    return {
        "relative_errors": {k: mean_and_sd(errors[k]) for k in ERRORS},
        "exponents": power_law_fits(config.widths, {k: [errors[k][w][0] for w in config.widths] for k in ERRORS}),
        "aggregate_drift": drift,
        "drift_extrapolation": _extrapolate(config, drift["mean"]),
        "drift_kernel_prediction": {k: np.array([drift_pred[w][k] for w in config.widths])
                                    for k in ("predicted_mean", "measured_over_predicted")},
        "times": times,
        "dt": config.dt,
        "stable_dt": stable,
        "learning_rate": training.learning_rate,
        "steps": training.steps,
        # [W, R]: the first test input's f_t, network and predictor, first seed.
        "first_seed_test_output": {k: np.stack([trajectory[w][k] for w in config.widths])
                                   for k in ("network", "predictor")},
        "tables": {"width_vs_kernel.csv": table(["width", *ERRORS, "drift_mean", "drift_sd"], rows)},
    }


def report(config: Config, results: dict, out) -> dict:
    _plot(out, config, results)
    out.write_summary(_summary(config, results))
    extrap = results["drift_extrapolation"]
    head = {f"{k} exponent": round(v["exponent"], 3) for k, v in results["exponents"].items()}
    head["drift at n = inf (extrapolated)"] = round(extrap["intercept"], 4) if extrap else None
    return head


def _extrapolate(config, drift):
    """``D(n) = D_inf + c n^{-1/2}``, least squares over the widths (``drift``: ``[W]``)."""
    if len(config.widths) < 2:
        return {}
    s = np.array(config.widths, float) ** -0.5
    d = np.asarray(drift)
    A = np.stack([np.ones_like(s), s], 1)
    coef, *_ = np.linalg.lstsq(A, d, rcond=None)
    return {"intercept": float(coef[0]), "slope_in_inverse_sqrt_width": float(coef[1])}


def _plot(out, config, results):
    plt = pyplot()
    w = np.array(config.widths, float)
    fig, ((ax, ax_out), (ax_drift, key)) = plt.subplots(2, 2, figsize=(11.5, 9.2))
    errors, fits = results["relative_errors"], results["exponents"]
    width_scaling_panel(ax, w, {label: (np.asarray(errors[k]["mean"]), np.asarray(errors[k]["sd"]), fits.get(k),
                                        f"C{i}") for i, (k, label) in enumerate(ERROR_LABELS.items())},
                        ylabel="relative Frobenius error", title="finite width against the analytic kernel")
    # The fourth slot holds the legend of the first panel, which would cover its points.
    key.axis("off")
    key.legend(*ax.get_legend_handles_labels(), loc="center",
               title=r"mean $\pm$ s.d. over seeds; fitted slope in $n$")

    colors = sequential_colors(len(config.widths))
    curves = results["first_seed_test_output"]
    for i, (c, x) in enumerate(zip(colors, config.widths)):
        ax_out.plot(results["times"], curves["predictor"][i], "-", color=c, lw=1.2)
        ax_out.plot(results["times"], curves["network"][i], "o", color=c, ms=4, label=f"$n = {x}$")
    ax_out.set(xlabel="time $t$", ylabel="$f_t(x)$ at the first test input",
               title=f"outputs along training (seed {config.seed}):\nnetwork (dots), kernel predictor (lines)")
    ax_out.legend(ncol=2)
    ax_out.grid(alpha=0.3)

    s = w**-0.5
    drift = results["aggregate_drift"]
    ax_drift.errorbar(s, np.asarray(drift["mean"]), yerr=np.asarray(drift["sd"]), fmt="o", capsize=3,
                      label=r"measured (mean $\pm$ s.d. over seeds)")
    extrap = results["drift_extrapolation"]
    if extrap:
        grid = np.linspace(0, s.max() * 1.05, 50)
        ax_drift.plot(grid, extrap["intercept"] + extrap["slope_in_inverse_sqrt_width"] * grid, "--",
                      label=rf"fit $D_\infty + c/\sqrt{{n}}$: $D_\infty$ = {extrap['intercept']:.3f}")
    pred_inf = _predicted_drift(results)
    if np.isfinite(pred_inf):
        ax_drift.axhline(pred_inf, color="k", ls=":",
                         label=f"kernel prediction (mean over runs' $f_0$): {pred_inf:.3f}")
    ax_drift.set_xlim(left=0)
    ax_drift.set(xlabel="$n^{-1/2}$", ylabel=r"$\|a_T(x) - a_0(x)\|_2$ (mean over inputs)",
                 title="aggregate drift of the last hidden layer")
    ax_drift.legend(loc="upper left")
    ax_drift.grid(alpha=0.3)
    save_figure(out, fig, "width_vs_kernel.png", f"Networks of depth {config.depth} against their infinite-width limit")


def _predicted_drift(results) -> float:
    """The kernel's drift prediction given each run's f_0, averaged over the widths."""
    return float(np.mean(np.asarray(as_numbers(results["drift_kernel_prediction"]["predicted_mean"]), dtype=np.float64)))


def _dt_text(config, results) -> str:
    dt = float(results.get("dt", config.dt))
    if dt == config.dt:
        return f"{dt:g}"
    return (f"{dt:.4g}: the configured {config.dt:g} is beyond this kernel's stable step 2 / lambda_max(Theta) = "
            f"{float(results['stable_dt']):.4g}, so half of that")


def _summary(config, results):
    wl, wh = config.widths[0], config.widths[-1]
    errors, fits, extrap = results["relative_errors"], results["exponents"], results["drift_extrapolation"]
    drift = np.asarray(results["aggregate_drift"]["mean"])
    lines = [
        "# Finite networks against the analytic kernel",
        "",
        f"Depth {config.depth}, activation {config.activation}, {config.n_train} training and {config.n_test} test inputs on the sphere "
        f"of radius sqrt({config.dim}), full-batch gradient descent for T = {config.time} "
        f"(dt = {_dt_text(config, results)}), widths {config.widths}, {config.seeds} seed(s)."
        + ("" if config.residual is None else f" Residual network (docs/residual.md): alpha = {config.residual}, "
           "blocks h + alpha (W phi(h) + b) and a linear readout; its kernels are those of the readout."),
        "",
        "| measure | " + " | ".join(f"n = {w}" for w in config.widths) + " | exponent |",
        "|---" * (len(config.widths) + 2) + "|",
    ]
    for k, label in ERRORS.items():
        f = fits.get(k)
        lines.append(f"| {label} | " + " | ".join(f"{v:.3g}" for v in errors[k]["mean"])
                     + f" | {'' if f is None else format(f['exponent'], '+.3f')} |")
    lines.append("| aggregate drift (norm of a_T - a_0) | " + " | ".join(f"{v:.3g}" for v in drift) + " | |")
    lines += ["", "## Finding", ""]
    if fits:
        lines.append("- Measured exponents in n (n^{-1/2} expected for each): "
                     + ", ".join(f"{ERRORS[k]} {v['exponent']:+.2f}" for k, v in fits.items()) + ".")
    at = {k: errors[k]["mean"][-1] for k in ERRORS}
    lines.append(
        f"- At n = {wh}: NTK at init within {at['ntk_init']:.2%} of Theta^{config.depth}, "
        f"features within {at['features_init']:.2%}, the NTK moved by {at['ntk_change']:.2%} in training, "
        f"and the outputs stay within {at['outputs_test']:.2%} (test) of the kernel predictor."
    )
    if extrap:
        # The drift does not vanish: its extrapolation keeps a tenth of the drift at the largest width.
        stays = extrap["intercept"] > 0.1 * drift[-1]
        lines.append(
            f"- The aggregate drift of the last hidden layer goes {drift[0]:.3g} (n = {wl}) to "
            f"{drift[-1]:.3g} (n = {wh}) and extrapolates to {extrap['intercept']:.3g} at infinite width: "
            + claim(stays and at["ntk_change"] < 0.05, "it does not vanish, although the NTK barely moves.",
                    claim(stays, f"it does not vanish, and the NTK moves by {at['ntk_change']:.2%}.",
                          "these widths do not show a drift that stays at infinite width."))
        )
    pred = results["drift_kernel_prediction"]
    if np.isfinite(_predicted_drift(results)):
        lines.append(
            "- The kernel's prediction of the drift given each network's f_0 (docs/drift.md) averages "
            f"{_predicted_drift(results):.3g}; measured / predicted, mean over seeds: "
            + ", ".join(f"{float(v):.3f} (n = {w})" for v, w in zip(pred["measured_over_predicted"], config.widths)) + "."
        )
    else:
        from ntkdepth.theory import DRIFT_ACTIVATIONS

        lines.append(f"- The drift's kernel prediction (docs/drift.md#activations) covers plain networks with "
                     f"{', '.join(DRIFT_ACTIVATIONS)}; not computed for {config.activation}"
                     + ("" if config.residual is None else f" with residual = {config.residual}") + ".")
    lines += ["", "Files: width_vs_kernel.csv, width_vs_kernel.png, results.json."]
    return "\n".join(lines)
