"""The drift of the last hidden layer: trained networks against the infinite-width prediction.

For depths L = 3, 4, 5 (two to four hidden layers), widths from a few hundred
up, and several seeds, a network at NTK parameterization is trained by
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

from ntkdepth.config import setting
from ntkdepth.plotting import width_axis
from ntkdepth.runs import RunDir
from ntkdepth.stats import power_law_fits, standard_error

NAME = "drift-theory"
DESCRIPTION = "last-hidden-layer drift of trained networks against its infinite-width prediction, depths 3-5"


@dataclass(frozen=True)
class Config:
    depths: list[int] = setting([3, 4, 5], help="L, weight layers (L - 1 hidden layers)", min=2, max=20)
    widths: list[int] = setting(
        [256, 1024, 4096], help="hidden widths n", min=1,
        distinct="exponents are fitted over distinct widths",
    )
    seeds: int = setting(3, help="initializations per depth and width", min=1)
    dim: int = setting(6, help="input dimension d", min=2)
    n_train: int = setting(8, help="training inputs N (on the sphere of radius sqrt(d))", min=2, max=1000)
    n_test: int = setting(4, help="evaluation inputs outside the training set", min=0, max=1000)
    outputs: int = setting(1, help="K, outputs (random Gaussian targets)", min=1)
    W_std: float = setting(2.0**0.5, help="sigma_w of the hidden layers", min=1e-6)
    first_std: float = setting(1.0, help="sigma_w of the first layer", min=1e-6)
    out_std: float = setting(1.0, help="sigma_w of the output layer", min=1e-6)
    b_std: float = setting(0.0, help="sigma_b", min=0.0)
    time: float = setting(2.0, help="training time t", min=1e-6)
    dt: float = setting(0.01, help="time per gradient step", min=1e-6)
    n_records: int = setting(6, help="recorded steps, log-spaced", min=2)
    seed: int = setting(0, help="seed of the data and first seed of the networks", min=0)
    divergence_factor: float = setting(
        1000.0, help="training stops with an error when a batch loss exceeds this many times the initial loss", min=1.0001
    )


def _data(config: Config):
    from ntkdepth.data import sample_sphere

    rng = np.random.default_rng([config.seed, 23])
    x = sample_sphere(rng, config.n_train + config.n_test, config.dim) * np.sqrt(config.dim)
    y = rng.normal(size=(config.n_train, config.outputs))
    return x, y


def run(config: Config, out: RunDir) -> dict:
    import jax
    import jax.numpy as jnp

    from ntkdepth.models import MLP
    from ntkdepth.theory import drift_prediction
    from ntkdepth.training import FullBatchData, TrainSpec, record_steps_grid, run_width_sweep

    if config.first_std != config.W_std:
        # The prediction takes one scale for layers 1..L-1: scale the inputs instead.
        x_scale = config.first_std / config.W_std
    else:
        x_scale = 1.0
    x, y = _data(config)
    x = x * x_scale
    N = config.n_train
    steps = max(1, int(round(config.time / config.dt)))
    spec = TrainSpec(steps=steps, learning_rate=N * config.dt, divergence_factor=config.divergence_factor,
                     record_steps=record_steps_grid(steps, config.n_records))
    times = np.asarray(spec.records) * config.dt
    data = FullBatchData(jnp.asarray(x[:N], jnp.float32), jnp.asarray(y, jnp.float32))
    seeds = [config.seed + s for s in range(config.seeds)]

    ratio = {}  # (depth, width) -> [seeds] measured/predicted norm over training inputs, at t
    ratio_test = {}
    curves = {}  # (depth, width, seed) -> (measured [R], predicted [R]) RMS over training inputs
    for depth in config.depths:
        def make_model(width, seed, depth=depth):
            return MLP(config.dim, [width] * (depth - 1), config.outputs, W_std=config.W_std,
                       out_std=config.out_std, b_std=config.b_std, rngs=seed)

        # Every setting shapes the runs but the lists of depths and widths and the number of seeds.
        identity = out.settings(exclude=("depths", "widths", "seeds"), depth=depth)
        print(f"drift-theory: depth {depth}, widths {config.widths}, seeds {seeds}")
        runs = run_width_sweep(make_model, data, spec, jnp.asarray(x, jnp.float32), config.widths,
                               seeds, out.cache_dir(f"sweep-L{depth}", identity))
        for w in config.widths:
            ratio[(depth, w)], ratio_test[(depth, w)] = [], []
            for s in seeds:
                r = runs[(w, s)]

                def predict(s=s, r=r):
                    with jax.enable_x64(True):
                        d2 = drift_prediction(
                            x[:N], y, x, times, depth=depth, W_std=config.W_std, b_std=config.b_std,
                            out_std=config.out_std, f0_train=r.outputs[0, :N].astype(np.float64),
                        )
                    return {"d2": d2}

                d2 = out.stage(f"prediction_L{depth}_n{w}_s{s}", predict)["d2"]  # [R, N + M]
                meas2 = r.stats["aggregate"].astype(np.float64) ** 2
                ratio[(depth, w)].append(np.sqrt(meas2[-1, :N].sum() / d2[-1, :N].sum()))
                if config.n_test:
                    ratio_test[(depth, w)].append(np.sqrt(meas2[-1, N:].sum() / d2[-1, N:].sum()))
                curves[(depth, w, s)] = (np.sqrt(meas2[:, :N].mean(1)), np.sqrt(d2[:, :N].mean(1)))

    fits = power_law_fits(config.widths, {
        d: [abs(1 - np.mean(ratio[(d, w)])) for w in config.widths] for d in config.depths})
    rows = []
    for (depth, w), v in ratio.items():
        vt = ratio_test[(depth, w)]
        rows.append([depth, w, np.mean(v), standard_error(v), np.mean(vt) if vt else "", standard_error(vt) if vt else ""])
    out.write_csv("drift_ratio.csv", ["depth", "width", "ratio_train", "se_train", "ratio_test", "se_test"], rows)
    out.write_json("results.json", {
        "ratio_measured_over_predicted": {
            str(d): {str(w): {"train": float(np.mean(ratio[(d, w)])), "se": standard_error(ratio[(d, w)]),
                              "test": float(np.mean(ratio_test[(d, w)])) if ratio_test[(d, w)] else None}
                     for w in config.widths} for d in config.depths},
        "gap_exponents": fits,
        "times": times,
    })
    _plot(out, config, ratio, ratio_test, fits, curves, seeds, times)
    out.write_summary(_summary(config, ratio, ratio_test, fits))
    wl = config.widths[-1]
    head = {f"ratio at n = {wl}, L = {d}": round(float(np.mean(ratio[(d, wl)])), 4) for d in config.depths}
    head.update({f"gap exponent L = {d}": round(f["exponent"], 3) for d, f in fits.items()})
    return head


def _plot(out, config, ratio, ratio_test, fits, curves, seeds, times):
    import matplotlib

    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = np.array(config.widths, float)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for i, d in enumerate(config.depths):
        m = np.array([np.mean(ratio[(d, x)]) for x in config.widths])
        se = np.array([standard_error(ratio[(d, x)]) for x in config.widths])
        ax.errorbar(w * (1 + 0.03 * i), m, yerr=se, fmt="o-", capsize=3, color=f"C{i}",
                    label=f"L = {d} (training inputs)")
        if config.n_test:
            mt = np.array([np.mean(ratio_test[(d, x)]) for x in config.widths])
            ax.plot(w * (1 + 0.03 * i), mt, "s", mfc="none", color=f"C{i}", label=f"L = {d} (held-out inputs)")
    ax.axhline(1.0, color="k", lw=0.8)
    width_axis(ax, w)
    ax.set_xlabel("width n")
    ax.set_ylabel("measured / predicted drift")
    ax.set_title("drift of the last hidden layer against its limit")
    ax.legend(fontsize=7)

    ax = axes[1]
    for i, d in enumerate(config.depths):
        gap = np.array([abs(1 - np.mean(ratio[(d, x)])) for x in config.widths])
        f = fits.get(d)
        ax.plot(w, gap, "o", color=f"C{i}", label=f"L = {d}" + ("" if f is None else f": slope {f['exponent']:+.2f}"))
        if f:
            ax.plot(w, f["prefactor"] * w ** f["exponent"], "-", color=f"C{i}", lw=1)
    width_axis(ax, w)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("|1 - measured / predicted|")
    ax.set_title("convergence (n^(-1/2) expected)")
    ax.legend(fontsize=7)

    ax = axes[2]
    wl = config.widths[-1]
    for i, d in enumerate(config.depths):
        meas = np.mean([curves[(d, wl, s)][0] for s in seeds], 0)
        pred = np.mean([curves[(d, wl, s)][1] for s in seeds], 0)
        ax.plot(times, pred, "-", color=f"C{i}", label=f"L = {d} predicted")
        ax.plot(times, meas, "o", color=f"C{i}", label=f"L = {d} measured (n = {wl})")
    ax.set_xlabel("time t")
    ax.set_ylabel("RMS over training inputs of |a_t - a_0|")
    ax.set_title("drift over training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.save_figure(fig, "drift_theory.png")
    plt.close(fig)


def _summary(config, ratio, ratio_test, fits):
    wl = config.widths[-1]
    lines = [
        "# Last-hidden-layer drift against the infinite-width prediction",
        "",
        f"d = {config.dim}, N = {config.n_train} training and {config.n_test} held-out inputs on the sphere "
        f"of radius sqrt(d), K = {config.outputs}, W_std = {config.W_std:.4g}, out_std = {config.out_std}, "
        f"b_std = {config.b_std}, t = {config.time} (dt = {config.dt}), {config.seeds} seed(s). "
        "Ratio: measured over predicted drift, the prediction conditioned on each seed's f_0, "
        "summed in squares over the training inputs; mean ± s.e. over seeds.",
        "",
        "| depth | " + " | ".join(f"n = {w}" for w in config.widths) + " | gap exponent |",
        "|---" * (len(config.widths) + 2) + "|",
    ]
    for d in config.depths:
        f = fits.get(d)
        lines.append(f"| {d} | " + " | ".join(
            f"{np.mean(ratio[(d, w)]):.4f} ± {standard_error(ratio[(d, w)]):.4f}" for w in config.widths)
            + f" | {'' if f is None else format(f['exponent'], '+.2f')} |")
    lines += ["", "## Finding", ""]
    for d in config.depths:
        f = fits.get(d)
        test = f", held-out inputs {np.mean(ratio_test[(d, wl)]):.4f}" if ratio_test[(d, wl)] else ""
        lines.append(
            f"- L = {d}: ratio {np.mean(ratio[(d, wl)]):.4f} at n = {wl}{test}"
            + ("" if f is None else f"; |1 - ratio| scales like n^{f['exponent']:+.2f}") + "."
        )
    lines += ["", "Files: drift_ratio.csv, drift_theory.png, results.json."]
    return "\n".join(lines)
