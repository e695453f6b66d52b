"""Infinite-width hidden-layer drift: independent formulas, the one-hot case, trained networks."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkdepth.kernels import relu_nngp
from ntkdepth.theory import (
    SingularKernelError,
    drift_norm_prediction,
    drift_prediction,
    onehot_drift_prediction,
    per_unit_drift_statistics,
    residual_integral_map,
)

SQRT2 = math.sqrt(2.0)


def sphere(rng, n, d, radius):
    x = rng.standard_normal((n, d))
    return radius * x / np.linalg.norm(x, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# Independent implementations in plain NumPy, with explicit loops.


def relu_moments(q1, q2, c):
    """``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``."""
    rho = min(1.0, max(-1.0, c / math.sqrt(q1 * q2)))
    th = math.acos(rho)
    e = math.sqrt(q1 * q2) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th))
    return e, (math.pi - th) / (2 * math.pi)


def loop_kernels(x, d, depth, s, b, s_out, s_first=None):
    """Per-layer ``Sigma``, ``Theta`` and ``rho`` (lists over layers 1..depth) by loops over pairs."""
    s_first = s if s_first is None else s_first
    n = len(x)
    sig = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            sig[i, j] = s_first**2 / d * float(np.dot(x[i], x[j])) + b**2
    sigmas, thetas = [sig], [sig.copy()]
    for layer in range(2, depth + 1):
        scale = s_out if layer == depth else s
        new_sig, new_th = np.zeros((n, n)), np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                e, edot = relu_moments(sigmas[-1][i, i], sigmas[-1][j, j], sigmas[-1][i, j])
                new_sig[i, j] = scale**2 * e + b**2
                new_th[i, j] = new_sig[i, j] + scale**2 * edot * thetas[-1][i, j]
        sigmas.append(new_sig)
        thetas.append(new_th)
    rhos = [sg / np.sqrt(np.outer(np.diag(sg), np.diag(sg))) for sg in sigmas]
    return sigmas, thetas, rhos


def integrated_residual(theta, w, r0, t, steps=4000):
    """``int_0^t W r(s) ds`` for ``dr/ds = -Theta W r``, by classical Runge-Kutta."""
    h = t / steps

    def field(state):
        r = state[0]
        return np.stack([-theta @ (w[:, None] * r), w[:, None] * r])

    state = np.stack([r0, np.zeros_like(r0)])
    for _ in range(steps):
        k1 = field(state)
        k2 = field(state + h / 2 * k1)
        k3 = field(state + h / 2 * k2)
        k4 = field(state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state[1]


def orthant2(r):
    return (math.pi - math.acos(min(1.0, max(-1.0, r)))) / (2 * math.pi)


def orthant3(rab, rac, rbc):
    clip = lambda r: min(1.0, max(-1.0, r))  # noqa: E731
    return 0.125 + (math.asin(clip(rab)) + math.asin(clip(rac)) + math.asin(clip(rbc))) / (4 * math.pi)


def two_hidden_layer_drift(x_train, y, f0, x_eval, t, *, d, s1, sw, so):
    """The two-hidden-layer formula written directly from its statement (no biases, unit weights)."""
    n, ne = len(x_train), len(x_eval)
    allx = np.vstack([x_train, x_eval])
    sig, th, rho = loop_kernels(allx, d, 3, sw, 0.0, so, s_first=s1)
    r = integrated_residual(th[2][:n, :n], np.ones(n), f0 - y, t)
    out = np.zeros(ne)
    for e in range(ne):
        x = n + e
        for k in range(y.shape[1]):
            for j in range(n):
                for jj in range(n):
                    m = (th[1][x, j] * th[1][x, jj] * orthant3(rho[1][x, j], rho[1][x, jj], rho[1][j, jj])
                         + sw**4 / 2 * sig[0][x, j] * sig[0][x, jj]
                         * orthant3(rho[0][x, j], rho[0][x, jj], rho[0][j, jj]) * orthant2(rho[1][j, jj]))
                    out[e] += so**2 * r[j, k] * m * r[jj, k]
    return out


def recursion_drift(x_train, y, f0, x_eval, t, *, depth, d, s, b, so, w):
    """The depth-L recursion for D^{L-1}, entry by entry, with biases and loss weights."""
    n, ne = len(x_train), len(x_eval)
    allx = np.vstack([x_train, x_eval])
    sig, th, rho = loop_kernels(allx, d, depth, s, b, so)
    r = integrated_residual(th[depth - 1][:n, :n], w, f0 - y, t)
    back = {depth - 1: np.full((n, n), so**2)}
    for m in range(depth - 1, 1, -1):
        back[m - 1] = np.array([[s**2 * orthant2(rho[m - 1][j, jj]) * back[m][j, jj] for jj in range(n)]
                                for j in range(n)])
    out = np.zeros(ne)
    for e in range(ne):
        x = n + e
        dm = np.zeros((n, n))
        for m in range(1, depth):
            new = np.zeros((n, n))
            for j in range(n):
                for jj in range(n):
                    rr = rho[m - 1]
                    new[j, jj] = (orthant3(rr[x, j], rr[x, jj], rr[j, jj]) * back[m][j, jj]
                                  * th[m - 1][x, j] * th[m - 1][x, jj] + s**2 / 2 * dm[j, jj])
            dm = new
        out[e] = sum(r[:, k] @ dm @ r[:, k] for k in range(y.shape[1]))
    return out


# --------------------------------------------------------------------------
# The formula.


def test_depth_three_is_the_two_hidden_layer_formula(x64, rng):
    d = 5
    x = sphere(rng, 6, d, math.sqrt(d))
    x_test = sphere(rng, 3, d, math.sqrt(d))
    y, f0 = rng.normal(size=(6, 2)), 0.7 * rng.normal(size=(6, 2))
    x_eval = np.vstack([x[:2], x_test])
    expected = two_hidden_layer_drift(x, y, f0, x_eval, 1.3, d=d, s1=1.0, sw=SQRT2, so=0.8)
    # s1 = 1 on inputs of norm sqrt(d) is the same network as W_std = sqrt(2) on inputs x / sqrt(2).
    got = drift_prediction(x / SQRT2, y, x_eval / SQRT2, [0.0, 1.3], depth=3,
                           W_std=SQRT2, out_std=0.8, f0_train=f0)
    np.testing.assert_allclose(got[1], expected, rtol=1e-9)
    assert np.all(got[0] == 0.0)
    assert np.all(expected > 0)
    np.testing.assert_allclose(drift_norm_prediction(x / SQRT2, y, x_test / SQRT2, 1.3, depth=3, W_std=SQRT2,
                                                     out_std=0.8, f0_train=f0)[0], np.sqrt(expected[2:]),
                               rtol=1e-9)


@pytest.mark.parametrize("depth", [2, 4, 5])
def test_any_depth_matches_the_recursion_entry_by_entry(x64, rng, depth):
    d, n = 4, 5
    x = sphere(rng, n, d, 1.3)
    x_eval = np.vstack([x[3:], sphere(rng, 2, d, 0.8)])
    y, f0 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    w = rng.uniform(0.3, 2.0, n)
    kw = dict(depth=depth, s=1.2, b=0.4, so=0.9)
    expected = recursion_drift(x, y, f0, x_eval, 0.8, d=d, w=w, **kw)
    got = drift_prediction(x, y, x_eval, 0.8, depth=depth, W_std=1.2, b_std=0.4, out_std=0.9, f0_train=f0,
                           loss_weights=w)
    # The kernels agree to rounding (1e-16 of their scale); the kernel solves of the prediction carry that
    # to a few 1e-9 at depths 4 and 5 (measured 3.9e-9).
    np.testing.assert_allclose(got[0], expected, rtol=5e-9)


def test_zero_drift_at_time_zero_and_growth_with_time(x64, rng):
    x = sphere(rng, 7, 3, 1.0)
    y = rng.normal(size=7)
    got = drift_prediction(x, y, x, [0.0, 0.1, 1.0, 10.0, np.inf], depth=4)
    assert np.all(got[0] == 0.0)
    # Without an f0 the residual only shrinks along each eigen-direction: the drift grows with t.
    assert np.all(np.diff(got, axis=0) > 0)
    stats = per_unit_drift_statistics(x, y, x, [0.0, 1.0], depth=4, num_samples=64)
    assert np.all(stats.mean_abs[0] == 0.0) and np.all(stats.quantile([0.9])[0] == 0.0)


def test_the_average_over_initializations_is_the_mean_over_drawn_f0(x64, rng):
    # Conditioned predictions add up over outputs: K columns of targets and of
    # f0 drawn from N(0, Sigma^L) give K Monte Carlo draws in one call.
    d, n, depth, draws, batches = 4, 6, 4, 200, 20
    x = sphere(rng, n, d, 1.0)
    x_eval = np.vstack([x[:2], sphere(rng, 2, d, 1.0)])
    y = rng.normal(size=n)
    average = drift_prediction(x, y, x_eval, [0.5, 3.0], depth=depth, b_std=0.3)
    lam, vec = np.linalg.eigh(np.asarray(relu_nngp(x, depth=depth, b_std=0.3)))
    root = vec * np.sqrt(np.clip(lam, 0, None))
    means = []
    for _ in range(batches):
        f0 = root @ rng.standard_normal((n, draws))
        ys = np.repeat(y[:, None], draws, axis=1)
        means.append(drift_prediction(x, ys, x_eval, [0.5, 3.0], depth=depth, b_std=0.3, f0_train=f0) / draws)
    means = np.array(means)
    mc, se = means.mean(axis=0), means.std(axis=0, ddof=1) / math.sqrt(batches)
    assert np.all(np.abs(mc - average) < 4 * se)
    np.testing.assert_allclose(mc, average, rtol=0.05)


def test_zero_loss_weights_drop_training_points(x64, rng):
    x = sphere(rng, 6, 3, 1.0)
    y, f0 = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    w = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0])
    keep = w > 0
    full = drift_prediction(x, y, x, [0.4, 2.0], depth=3, f0_train=f0, loss_weights=w)
    dropped = drift_prediction(x[keep], y[keep], x, [0.4, 2.0], depth=3, f0_train=f0[keep],
                               loss_weights=w[keep])
    np.testing.assert_allclose(full, dropped, rtol=1e-12)
    assert np.all(drift_prediction(x, y, x, 1.0, depth=3, loss_weights=np.zeros(6)) == 0.0)


def test_residual_integral_map_is_the_integral_of_the_weighted_residual(x64, rng):
    a = rng.normal(size=(5, 5))
    theta = a @ a.T + 0.1 * np.eye(5)
    w = rng.uniform(0.2, 2.0, 5)
    r0 = rng.normal(size=(5, 3))
    g = residual_integral_map(theta, w, [0.0, 0.7])
    assert np.all(g[0] == 0.0)
    np.testing.assert_allclose(g[1] @ r0, integrated_residual(theta, w, r0, 0.7), rtol=1e-9, atol=1e-12)
    # t = inf: W^{1/2} A^{-1} W^{1/2} = Theta^{-1}.
    np.testing.assert_allclose(residual_integral_map(theta, w, np.inf)[0], np.linalg.inv(theta), rtol=1e-8)


# --------------------------------------------------------------------------
# One-hot inputs.


@pytest.mark.parametrize("depth, b_std, out_std", [(3, 0.0, None), (4, 0.3, 0.7), (2, 0.2, 1.5)])
def test_onehot_matches_the_general_computation(x64, rng, depth, b_std, out_std):
    vocab = 12
    p = rng.uniform(0.1, 1.0, vocab)
    p[5] = 0.0  # a token that never occurs as a center
    p /= p.sum()
    q = rng.dirichlet(np.ones(vocab), size=vocab)
    f0 = 0.5 * rng.normal(size=(vocab, vocab))
    tokens = np.array([0, 3, 5, 11, 3])
    x = math.sqrt(vocab) * np.eye(vocab)
    times = [0.0, 0.5, 4.0]
    kw = dict(depth=depth, W_std=SQRT2, b_std=b_std, out_std=out_std)
    for f in (f0, None):
        general = drift_prediction(x, q, x[tokens], times, f0_train=f, loss_weights=p, **kw)
        onehot = onehot_drift_prediction(p, q, tokens, times, f0=f, **kw)
        np.testing.assert_allclose(onehot, general, rtol=1e-9, atol=1e-14)
        assert np.all(onehot[0] == 0.0) and np.all(onehot[1:] > 0)


def test_onehot_input_scale(x64, rng):
    vocab = 6
    p = rng.uniform(0.1, 1.0, vocab)
    q = rng.dirichlet(np.ones(vocab), size=vocab)
    x = 2.5 * np.eye(vocab)
    general = drift_prediction(x, q, x, 1.0, depth=3, loss_weights=p)
    np.testing.assert_allclose(onehot_drift_prediction(p, q, np.arange(vocab), 1.0, input_scale=2.5), general,
                               rtol=1e-9)


# --------------------------------------------------------------------------
# Per-unit statistics.


def test_per_unit_second_moment_is_the_aggregate_and_quantiles_match_samples(x64, rng):
    x = sphere(rng, 8, 4, 1.5)
    x_eval = np.vstack([x[:3], sphere(rng, 2, 4, 1.5)])
    y, f0 = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    for depth, f in ((3, f0), (4, None), (2, f0)):
        # Without f0 each sample draws its own f_0 as well.
        stats = per_unit_drift_statistics(x, y, x_eval, [0.5, 2.0], depth=depth, b_std=0.2, f0_train=f,
                                          num_samples=8192, num_init_samples=8192, seed=1)
        np.testing.assert_allclose(stats.aggregate, drift_prediction(x, y, x_eval, [0.5, 2.0], depth=depth,
                                                                     b_std=0.2, f0_train=f), rtol=1e-12)
        np.testing.assert_allclose(stats.second_moment, stats.aggregate, rtol=0.04)
        # Jensen: the mean of |u| is below the root of the mean of u^2.
        assert np.all(stats.mean_abs < np.sqrt(stats.second_moment))
    # Quantiles of the mixture against draws from it.
    sig = stats.scales[1, 0]
    draws = np.abs(rng.standard_normal(400_000) * rng.choice(sig, 400_000)) * (rng.random(400_000) < 0.5)
    levels = [0.6, 0.9, 0.99]
    np.testing.assert_allclose(stats.quantile(levels)[1, 0], np.quantile(draws, levels), rtol=0.02)
    # The expected maximum of 1000 units, against simulated layers.
    layers = draws[: 400 * 1000].reshape(400, 1000).max(axis=1)
    assert stats.expected_max(1000)[1, 0] == pytest.approx(layers.mean(), rel=0.03)
    assert stats.quantile([1 - 1 / 1000])[1, 0, 0] < stats.expected_max(1000)[1, 0]
    # The paper's widths, where 1 - 1e-12 / n rounds to 1 in float64: finite, above the 1 - 1/n
    # quantile, and growing with n.
    big = stats.expected_max(30000)[1, 0]
    assert np.isfinite(big) and stats.quantile([1 - 1 / 30000])[1, 0, 0] < big
    assert big > stats.expected_max(1000)[1, 0]


# --------------------------------------------------------------------------
# Input checks.


def test_bad_inputs_raise(rng):
    x = sphere(rng, 4, 3, 1.0)
    y = rng.normal(size=4)
    ok = dict(depth=3)
    with pytest.raises(ValueError, match="x_train contains NaN"):
        drift_prediction(np.where(np.eye(4, 3) > 0, np.nan, x), y, x, 1.0, **ok)
    with pytest.raises(ValueError, match="x_eval"):
        drift_prediction(x, y, np.zeros((1, 3)), 1.0, **ok)  # a zero input has no correlation without bias
    with pytest.raises(ValueError, match="y_train"):
        drift_prediction(x, y[:3], x, 1.0, **ok)
    with pytest.raises(ValueError, match="NaN"):
        drift_prediction(x, np.array([1.0, np.nan, 0.0, 0.0]), x, 1.0, **ok)
    with pytest.raises(ValueError, match="feature dimensions"):
        drift_prediction(x, y, x[:, :2], 1.0, **ok)
    with pytest.raises(ValueError, match="times"):
        drift_prediction(x, y, x, [1.0, -0.5], **ok)
    with pytest.raises(ValueError, match="times"):
        drift_prediction(x, y, x, np.nan, **ok)
    with pytest.raises(ValueError, match="depth"):
        drift_prediction(x, y, x, 1.0, depth=1)
    with pytest.raises(ValueError, match="loss_weights"):
        drift_prediction(x, y, x, 1.0, loss_weights=[1.0, -1.0, 1.0, 1.0], **ok)
    with pytest.raises(ValueError, match="f0_train"):
        drift_prediction(x, y, x, 1.0, f0_train=np.zeros((4, 2)), **ok)
    with pytest.raises(ValueError, match="out_std"):
        drift_prediction(x, y, x, 1.0, out_std=0.0, **ok)
    with pytest.raises(ValueError, match="layer"):
        drift_prediction(x, y, x, 1.0, layer=3, **ok)
    with pytest.raises(SingularKernelError):
        drift_prediction(np.vstack([x, x[:1]]), np.append(y, 0.0), x, np.inf, **ok)
    with pytest.raises(ValueError, match="num_samples"):
        per_unit_drift_statistics(x, y, x, 1.0, num_samples=0, **ok)
    q = np.full((4, 4), 0.25)
    with pytest.raises(ValueError, match="eval_tokens"):
        onehot_drift_prediction(np.ones(4), q, [4], 1.0)
    with pytest.raises(ValueError, match="context_dist"):
        onehot_drift_prediction(np.ones(4), q[:, :3], [0], 1.0)
    with pytest.raises(ValueError, match="center_freq"):
        onehot_drift_prediction(-np.ones(4), q, [0], 1.0)


# --------------------------------------------------------------------------
# Trained finite networks.


def mlp_init(key, d, width, depth, outputs):
    keys = jax.random.split(key, 2 * depth)
    dims = [d] + [width] * (depth - 1) + [outputs]
    weights = [jax.random.normal(keys[i], (dims[i + 1], dims[i]), jnp.float32) for i in range(depth)]
    biases = [jax.random.normal(keys[depth + i], (dims[i + 1],), jnp.float32) for i in range(depth)]
    return weights, biases


def mlp_apply(params, x, s, b, s_out):
    """NTK-parameterized ReLU MLP: ``(f(x), a^{L-1}(x))``."""
    weights, biases = params
    hp = jax.lax.Precision.HIGHEST
    h = s / math.sqrt(x.shape[1]) * jnp.dot(x, weights[0].T, precision=hp) + b * biases[0]
    for w_l, b_l in zip(weights[1:-1], biases[1:-1]):
        h = s / math.sqrt(h.shape[1]) * jnp.dot(jax.nn.relu(h), w_l.T, precision=hp) + b * b_l
    a = jax.nn.relu(h)
    f = s_out / math.sqrt(a.shape[1]) * jnp.dot(a, weights[-1].T, precision=hp) + b * biases[-1]
    return f, a


# Gradient descent to time t = 2 in 50 steps of 0.04: the drift the flow predicts
# is matched to the tolerances below (a prediction 10% off fails every trained test).
ETA, STEPS = 0.04, 50


@functools.cache
def _descent(s, b, s_out, eta, steps):
    """Full-batch gradient descent as one jitted function, compiled once per network shape."""

    def loss(p, x, y, w):
        f, _ = mlp_apply(p, x, s, b, s_out)
        return 0.5 * jnp.sum(w[:, None] * (f - y) ** 2)

    @jax.jit
    def run(p, x, y, w):
        step = lambda _, q: jax.tree.map(lambda u, g: u - eta * g, q, jax.grad(loss)(q, x, y, w))  # noqa: E731
        return jax.lax.fori_loop(0, steps, step, p)

    return run


def train_and_measure(x, y, w, x_eval, *, width, depth, seed, s=SQRT2, b=0.0, s_out=1.0, eta=ETA, steps=STEPS):
    """Full-batch gradient descent; returns ``f_0(X)`` and ``a_T(x) - a_0(x)`` ``[n_eval, width]``."""
    x, y, w, x_eval = (jnp.asarray(v, jnp.float32) for v in (x, y, w, x_eval))
    params = mlp_init(jax.random.PRNGKey(seed), x.shape[1], width, depth, y.shape[1])
    f0, _ = mlp_apply(params, x, s, b, s_out)
    _, a0 = mlp_apply(params, x_eval, s, b, s_out)
    _, a1 = mlp_apply(_descent(s, b, s_out, eta, steps)(params, x, y, w), x_eval, s, b, s_out)
    return np.asarray(f0, np.float64), np.asarray(a1 - a0, np.float64)


@pytest.fixture(scope="module")
def sphere_task():
    """The two-hidden-layer note's setting: d = 6, 8 points on the sphere of radius sqrt(d), t = 2.

    Its first layer has scale 1 on inputs of norm sqrt(d): the same network as
    scale sqrt(2) on inputs of norm sqrt(d / 2), used here.
    """
    rng = np.random.default_rng(0)
    x = sphere(rng, 12, 6, math.sqrt(3.0))
    return dict(x=x[:8], x_eval=x, y=rng.standard_normal((8, 1)))


def drift_ratios(task, *, width, depth, seeds, b=0.0, s_out=1.0, w=None, y=None):
    """Per seed: measured / predicted drift summed over the training inputs, and over the others."""
    x, x_eval = task["x"], task["x_eval"]
    y = task["y"] if y is None else y
    w = np.ones(len(x)) if w is None else w
    out = []
    for seed in seeds:
        f0, delta = train_and_measure(x, y, w, x_eval, width=width, depth=depth, seed=seed, b=b, s_out=s_out)
        pred = drift_prediction(x, y, x_eval, 2.0, depth=depth, b_std=b, out_std=s_out, f0_train=f0,
                                loss_weights=w)[0]
        meas = np.sum(delta**2, axis=1)
        out.append((meas[:8].sum() / pred[:8].sum(), meas[8:].sum() / pred[8:].sum(), f0, delta))
    return out


@pytest.mark.slow
def test_trained_depth3_network_drifts_as_predicted(sphere_task):
    task, width = sphere_task, 4096
    runs = drift_ratios(task, width=width, depth=3, seeds=[0, 1, 2])
    train_ratio = np.mean([r[0] for r in runs])
    test_ratio = np.mean([r[1] for r in runs])
    assert abs(train_ratio - 1) < 0.05
    assert abs(test_ratio - 1) < 0.08
    # Per unit: the mean of sqrt(n) |delta a_i| over units and its largest value.
    mean_ratio, max_ratio = [], []
    for _, _, f0, delta in runs:
        stats = per_unit_drift_statistics(task["x"], task["y"], task["x_eval"], 2.0, depth=3, out_std=1.0,
                                          f0_train=f0, num_samples=4096)
        u = math.sqrt(width) * np.abs(delta)
        mean_ratio.append(u.mean(axis=1) / stats.mean_abs[0])
        max_ratio.append(u.max(axis=1) / stats.expected_max(width)[0])
    assert abs(np.mean(mean_ratio) - 1) < 0.1
    assert abs(np.mean(max_ratio) - 1) < 0.15


@pytest.mark.slow
def test_trained_depth4_network_approaches_the_prediction_with_width(sphere_task):
    ratios = {}
    for width, seeds in ((512, range(8)), (2048, range(3))):
        ratios[width] = np.mean([r[0] for r in drift_ratios(sphere_task, width=width, depth=4, seeds=seeds)])
    # Finite width falls short by O(n^{-1/2}): about 6% at 512 and 4% at 2048 here.
    assert ratios[512] < ratios[2048] < 1.0
    assert abs(ratios[2048] - 1) < 0.06


@pytest.mark.slow
def test_trained_network_with_biases_loss_weights_and_several_outputs(sphere_task):
    rng = np.random.default_rng(3)
    w = rng.uniform(0.2, 2.0, 8)
    w[2] = 0.0  # an input left out of the loss
    y = rng.standard_normal((8, 2))
    runs = drift_ratios(sphere_task, width=4096, depth=3, seeds=[0, 1], b=0.5, w=w, y=y, s_out=0.8)
    assert abs(np.mean([r[0] for r in runs]) - 1) < 0.05


# --------------------------------------------------------------------------
# The network as a NetworkSpec.


def test_a_spec_gives_the_predictions_of_the_keyword_form(x64, rng):
    from ntkdepth.models import NetworkSpec

    spec = NetworkSpec(depth=4, W_std=1.2, b_std=0.3, out_std=0.8)
    kw = dict(depth=4, W_std=1.2, b_std=0.3, out_std=0.8)
    x, x_eval = sphere(rng, 5, 3, 1.0), sphere(rng, 2, 3, 1.3)
    y, f0, w = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), rng.uniform(0.5, 1.0, 5)
    times = [0.0, 0.5, 3.0]
    for fn in (drift_prediction, drift_norm_prediction):
        np.testing.assert_array_equal(fn(x, y, x_eval, times, spec=spec, f0_train=f0, loss_weights=w),
                                      fn(x, y, x_eval, times, f0_train=f0, loss_weights=w, **kw))
    np.testing.assert_array_equal(drift_prediction(x, y, x_eval, times, spec=spec, layer=2),
                                  drift_prediction(x, y, x_eval, times, layer=2, **kw))
    a = per_unit_drift_statistics(x, y, x_eval, times, spec=spec, num_samples=64, seed=3)
    b = per_unit_drift_statistics(x, y, x_eval, times, num_samples=64, seed=3, **kw)
    np.testing.assert_array_equal(a.scales, b.scales)
    np.testing.assert_array_equal(a.aggregate, b.aggregate)
    vocab = 5
    p, q = rng.uniform(0.1, 1.0, vocab), rng.dirichlet(np.ones(vocab), size=vocab)
    np.testing.assert_array_equal(onehot_drift_prediction(p, q, [0, 2], times, spec=spec),
                                  onehot_drift_prediction(p, q, [0, 2], times, **kw))
    # The defaults of the keyword form are those of NetworkSpec.
    np.testing.assert_array_equal(drift_prediction(x, y, x_eval, times, spec=NetworkSpec(depth=3)),
                                  drift_prediction(x, y, x_eval, times, depth=3))
    np.testing.assert_array_equal(onehot_drift_prediction(p, q, [1], times, spec=NetworkSpec(depth=3)),
                                  onehot_drift_prediction(p, q, [1], times))


def test_a_spec_and_the_keywords_are_not_mixed(rng):
    from ntkdepth.models import NetworkSpec

    x, y = sphere(rng, 4, 3, 1.0), rng.normal(size=4)
    spec = NetworkSpec(depth=3)
    with pytest.raises(ValueError, match="either as spec= or as depth=, W_std=, not both"):
        drift_prediction(x, y, x, 1.0, spec=spec, depth=3, W_std=1.0)
    with pytest.raises(ValueError, match="needs the network: pass spec=NetworkSpec"):
        drift_prediction(x, y, x, 1.0)
    with pytest.raises(ValueError, match="needs the network: pass spec=NetworkSpec"):
        per_unit_drift_statistics(x, y, x, 1.0)
    with pytest.raises(ValueError, match="covers plain networks at NTK parameterization; got "
                                         "parameterization='mup'"):
        drift_prediction(x, y, x, 1.0, spec=spec.replace(parameterization="mup"))
    with pytest.raises(ValueError, match="one-hot drift prediction covers the activations relu, .*; not tanh"):
        onehot_drift_prediction(np.ones(4), np.full((4, 4), 0.25), [0], 1.0, spec=spec.replace(activation="tanh"))
    with pytest.raises(ValueError, match="depth must be an integer >= 2"):
        drift_prediction(x, y, x, 1.0, spec=NetworkSpec(depth=1))
    with pytest.raises(TypeError, match="spec must be a NetworkSpec; got dict"):
        drift_prediction(x, y, x, 1.0, spec={"depth": 3})
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['dept'\]"):
        per_unit_drift_statistics(x, y, x, 1.0, dept=3)
