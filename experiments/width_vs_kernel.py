"""Finite networks against the analytic kernel as width grows (docs/kernels.md#finite-width).

A small regression problem: N training and M test inputs uniform on the
sphere of radius sqrt(d) (so that Sigma^1(x, x) = W_std^2), smooth targets,
a ReLU network of depth L at NTK parameterization trained by full-batch
gradient descent on the MSE loss for a time T. For each width and seed:

- the empirical NTK at initialization against Theta^L (relative Frobenius error),
- the last hidden layer's feature kernel at initialization against its limit,
- the empirical NTK after training against at initialization (how lazy the training was),
- the outputs along training against the gradient-flow predictor of the same
  f_0 (Proposition 3) from the analytic kernel,
- the aggregate drift |a_T(x) - a_0(x)|_2 of the last hidden layer, extrapolated
  to infinite width by a fit in n^{-1/2}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntkdepth.config import setting
from ntkdepth.plotting import width_axis
from ntkdepth.runs import RunDir
from ntkdepth.stats import mean_sd, power_law_fits

NAME = "width-vs-kernel"
DESCRIPTION = "empirical NTK, features, outputs and drift of finite networks against the analytic kernel"

ERRORS = {
    "ntk_init": "empirical NTK at init vs Theta^L",
    "features_init": "feature kernel at init vs its limit",
    "ntk_change": "NTK after training vs at init",
    "outputs_train": "outputs at T vs predictor (train)",
    "outputs_test": "outputs at T vs predictor (test)",
}


@dataclass(frozen=True)
class Config:
    widths: list[int] = setting(
        [256, 1024, 4096], help="hidden widths n (all layers)", min=1,
        distinct="exponents are fitted over distinct widths",
    )
    seeds: int = setting(3, help="initializations per width", min=1)
    depth: int = setting(3, help="L, weight layers (L - 1 hidden layers)", min=2, max=20)
    dim: int = setting(8, help="input dimension d", min=2)
    n_train: int = setting(20, help="training inputs N", min=2, max=2000)
    n_test: int = setting(10, help="test inputs M", min=1, max=2000)
    W_std: float = setting(2.0**0.5, help="sigma_w", min=1e-6)
    b_std: float = setting(0.0, help="sigma_b", min=0.0)
    time: float = setting(5.0, help="training time T of the gradient flow", min=1e-6)
    dt: float = setting(0.05, help="time per gradient step (learning rate = N * dt for the batch-mean loss)", min=1e-6)
    n_records: int = setting(10, help="recorded steps, log-spaced", min=2)
    seed: int = setting(0, help="seed of the data and first seed of the networks", min=0)
    divergence_factor: float = setting(
        1000.0, help="training stops with an error when a batch loss exceeds this many times the initial loss", min=1.0001
    )


def _data(config: Config):
    from ntkdepth.data import sample_sphere

    rng = np.random.default_rng([config.seed, 17])
    x = sample_sphere(rng, config.n_train + config.n_test, config.dim) * np.sqrt(config.dim)
    w = rng.normal(size=config.dim) / np.sqrt(config.dim)
    y = np.sin(2.0 * x @ w)[:, None] + 0.5 * np.cos(x[:, 0])[:, None]
    return x, y


def run(config: Config, out: RunDir) -> dict:
    import jax
    import jax.numpy as jnp

    from ntkdepth.empirical import feature_kernel, mlp_ntk
    from ntkdepth.kernels import relu_kernel_trace
    from ntkdepth.models import MLP
    from ntkdepth.training import FullBatchData, TrainSpec, record_steps_grid, run_width_sweep

    x, y = _data(config)
    N = config.n_train
    steps = max(1, int(round(config.time / config.dt)))
    lr = N * config.dt
    spec = TrainSpec(steps=steps, learning_rate=lr, record_steps=record_steps_grid(steps, config.n_records),
                     divergence_factor=config.divergence_factor)
    times = np.asarray(spec.records) * config.dt
    data = FullBatchData(jnp.asarray(x[:N], jnp.float32), jnp.asarray(y[:N], jnp.float32))
    x_all = jnp.asarray(x, jnp.float32)

    with jax.enable_x64(True):
        tr = relu_kernel_trace(x, depth=config.depth, W_std=config.W_std, b_std=config.b_std,
                               layers=[config.depth], get=("nngp", "ntk"))
        theta = np.asarray(tr.ntk[-1])
        feat_limit = (np.asarray(tr.nngp[-1]) - config.b_std**2) / config.W_std**2

    def make_model(width, seed):
        return MLP(config.dim, [width] * (config.depth - 1), 1, W_std=config.W_std,
                   b_std=config.b_std, rngs=seed)

    def final_measures(initial, trained):
        return {
            "ntk_init": mlp_ntk(initial, x_all[:N]),
            "ntk_final": mlp_ntk(trained, x_all[:N]),
            "features_init": feature_kernel(initial, x_all),
        }

    # Every setting shapes the runs but the list of widths and the number of seeds.
    identity = out.settings(exclude=("widths", "seeds"))
    seeds = [config.seed + s for s in range(config.seeds)]
    runs = run_width_sweep(make_model, data, spec, x_all, config.widths, seeds,
                           out.cache_dir("sweep", identity), final_measures=final_measures)

    from ntkdepth.theory import GradientFlowPredictor

    predictor = GradientFlowPredictor(theta[:N, :N], y[:N])
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    from ntkdepth.theory import drift_norm_prediction

    errors = {k: {} for k in ERRORS}
    drift = {}
    drift_pred = {}
    traj = {}
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
            with jax.enable_x64(True):
                # The infinite-width drift given this network's f_0 (docs/drift.md).
                dp.append(drift_norm_prediction(
                    x[:N], y[:N], x, [times[-1]], depth=config.depth, W_std=config.W_std,
                    b_std=config.b_std, f0_train=f0[:N])[0].mean())
            traj[(w, s)] = (ft[:, N, 0], pred[:, 0, 0])
        for k in ERRORS:
            errors[k][w] = mean_sd(e[k])
        drift[w] = mean_sd(d)
        drift_pred[w] = (float(np.mean(dp)), float(np.mean(np.array(d) / np.array(dp))))

    fits = power_law_fits(config.widths, {k: [errors[k][w][0] for w in config.widths] for k in ERRORS})
    extrap = _extrapolate(config, drift)
    rows = [[w, *[errors[k][w][0] for k in ERRORS], drift[w][0], drift[w][1]] for w in config.widths]
    out.write_csv("width_vs_kernel.csv", ["width", *ERRORS, "drift_mean", "drift_sd"], rows)
    out.write_json("results.json", {
        "relative_errors": {k: {str(w): v for w, v in errors[k].items()} for k in ERRORS},
        "exponents": fits,
        "aggregate_drift": {str(w): v for w, v in drift.items()},
        "drift_extrapolation": extrap,
        "drift_kernel_prediction": {str(w): {"predicted_mean": v[0], "measured_over_predicted": v[1]}
                                    for w, v in drift_pred.items()},
        "times": times,
        "learning_rate": lr,
        "steps": steps,
    })
    _plot(out, config, errors, fits, drift, extrap, traj, seeds, times, drift_pred)
    out.write_summary(_summary(config, errors, fits, drift, extrap, drift_pred))
    head = {f"{k} exponent": round(v["exponent"], 3) for k, v in fits.items()}
    head["drift at n = inf (extrapolated)"] = round(extrap["intercept"], 4) if extrap else None
    return head


def _extrapolate(config, drift):
    """``D(n) = D_inf + c n^{-1/2}``, least squares over the widths."""
    if len(config.widths) < 2:
        return {}
    s = np.array(config.widths, float) ** -0.5
    d = np.array([drift[w][0] for w in config.widths])
    A = np.stack([np.ones_like(s), s], 1)
    coef, *_ = np.linalg.lstsq(A, d, rcond=None)
    return {"intercept": float(coef[0]), "slope_in_inverse_sqrt_width": float(coef[1])}


def _plot(out, config, errors, fits, drift, extrap, traj, seeds, times, drift_pred):
    import matplotlib

    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = np.array(config.widths, float)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for i, (k, label) in enumerate(ERRORS.items()):
        m = np.array([errors[k][x][0] for x in config.widths])
        sd = np.array([errors[k][x][1] for x in config.widths])
        f = fits.get(k)
        ax.errorbar(w, m, yerr=sd, fmt="o", color=f"C{i}", capsize=3,
                    label=label + ("" if f is None else f" (slope {f['exponent']:+.2f})"))
        if f:
            ax.plot(w, f["prefactor"] * w ** f["exponent"], "-", color=f"C{i}", lw=1)
    width_axis(ax, w)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("relative Frobenius error")
    ax.set_title("finite width against the analytic kernel")
    ax.legend(fontsize=7)

    ax = axes[1]
    cmap = plt.get_cmap("viridis")
    s0 = seeds[0]
    for i, x in enumerate(config.widths):
        net, pred = traj[(x, s0)]
        c = cmap(i / max(1, len(config.widths) - 1))
        ax.plot(times, pred, "-", color=c, lw=1)
        ax.plot(times, net, "o", color=c, ms=4, label=f"n = {x}")
    ax.set_xlabel("time t")
    ax.set_ylabel("f_t(x) at the first test input")
    ax.set_title(f"outputs along training (seed {s0}): network (dots), predictor (lines)")
    ax.legend(fontsize=7)

    ax = axes[2]
    s = w**-0.5
    m = np.array([drift[x][0] for x in config.widths])
    sd = np.array([drift[x][1] for x in config.widths])
    ax.errorbar(s, m, yerr=sd, fmt="o", capsize=3, label="measured (mean ± s.d. over seeds)")
    if extrap:
        grid = np.linspace(0, s.max() * 1.05, 50)
        ax.plot(grid, extrap["intercept"] + extrap["slope_in_inverse_sqrt_width"] * grid, "--",
                label=f"fit D_inf + c/sqrt(n): D_inf = {extrap['intercept']:.3f}")
    pred_inf = np.mean([v[0] for v in drift_pred.values()])
    ax.axhline(pred_inf, color="k", ls=":", label=f"kernel prediction (mean over runs' f_0): {pred_inf:.3f}")
    ax.set_xlim(left=0)
    ax.set_xlabel("n^(-1/2)")
    ax.set_ylabel("|a_T(x) - a_0(x)|_2 (mean over inputs)")
    ax.set_title("aggregate drift of the last hidden layer")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.save_figure(fig, "width_vs_kernel.png")
    plt.close(fig)


def _summary(config, errors, fits, drift, extrap, drift_pred):
    wl, wh = config.widths[0], config.widths[-1]
    lines = [
        "# Finite networks against the analytic kernel",
        "",
        f"Depth {config.depth}, {config.n_train} training and {config.n_test} test inputs on the sphere "
        f"of radius sqrt({config.dim}), full-batch gradient descent for T = {config.time} "
        f"(dt = {config.dt}), widths {config.widths}, {config.seeds} seed(s).",
        "",
        "| measure | " + " | ".join(f"n = {w}" for w in config.widths) + " | exponent |",
        "|---" * (len(config.widths) + 2) + "|",
    ]
    for k, label in ERRORS.items():
        f = fits.get(k)
        lines.append(f"| {label} | " + " | ".join(f"{errors[k][w][0]:.3g}" for w in config.widths)
                     + f" | {'' if f is None else format(f['exponent'], '+.3f')} |")
    lines.append("| aggregate drift (norm of a_T - a_0) | "
                 + " | ".join(f"{drift[w][0]:.3g}" for w in config.widths) + " | |")
    lines += ["", "## Finding", ""]
    if fits:
        lines.append("- Measured exponents in n (n^{-1/2} expected for each): "
                     + ", ".join(f"{ERRORS[k]} {v['exponent']:+.2f}" for k, v in fits.items()) + ".")
    lines.append(
        f"- At n = {wh}: NTK at init within {errors['ntk_init'][wh][0]:.2%} of Theta^{config.depth}, "
        f"features within {errors['features_init'][wh][0]:.2%}, the NTK moved by "
        f"{errors['ntk_change'][wh][0]:.2%} in training, and the outputs stay within "
        f"{errors['outputs_test'][wh][0]:.2%} (test) of the kernel predictor."
    )
    if extrap:
        lines.append(
            f"- The aggregate drift of the last hidden layer goes {drift[wl][0]:.3g} (n = {wl}) to "
            f"{drift[wh][0]:.3g} (n = {wh}) and extrapolates to {extrap['intercept']:.3g} at infinite "
            "width: it does not vanish, although the NTK barely moves."
        )
    lines.append(
        "- The kernel's prediction of the drift given each network's f_0 (docs/drift.md) averages "
        f"{np.mean([v[0] for v in drift_pred.values()]):.3g}; measured / predicted, mean over seeds: "
        + ", ".join(f"{drift_pred[w][1]:.3f} (n = {w})" for w in config.widths) + "."
    )
    lines += ["", "Files: width_vs_kernel.csv, width_vs_kernel.png, results.json."]
    return "\n".join(lines)
