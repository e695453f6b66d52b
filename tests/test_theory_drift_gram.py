"""The Gram matrix of the feature change between one-hot tokens: the orthant probabilities, the
recursion written entry by entry with numerical Gaussian integrals, the drift on its diagonal,
the average over initializations, trained networks."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ntkdepth.theory import onehot_drift_prediction
from ntkdepth.theory.drift import equicorrelated_orthant, onehot_drift_gram

SQRT2 = math.sqrt(2.0)


def mvn_orthant(corr):
    """``P(all > 0)`` for a centred Gaussian with correlation matrix ``corr``, by Genz's integration."""
    k = len(corr)
    if k == 1:
        return 0.5
    dist = multivariate_normal(mean=np.zeros(k), cov=corr, abseps=1e-10, releps=1e-10, maxpts=2_000_000)
    return float(dist.cdf(np.zeros(k)))


@pytest.mark.parametrize("rho", [0.0, 0.05, 0.318, 0.7, 0.97])
def test_equicorrelated_orthant_probabilities(rho):
    assert equicorrelated_orthant(rho, 0) == 1.0 and equicorrelated_orthant(rho, 1) == 0.5
    assert equicorrelated_orthant(rho, 2) == pytest.approx(0.25 + math.asin(rho) / (2 * math.pi), abs=1e-12)
    assert equicorrelated_orthant(rho, 3) == pytest.approx(0.125 + 3 * math.asin(rho) / (4 * math.pi), abs=1e-12)
    corr = np.full((4, 4), rho) + (1 - rho) * np.eye(4)
    assert equicorrelated_orthant(rho, 4) == pytest.approx(mvn_orthant(corr), abs=2e-6)
    if rho == 0.0:
        assert equicorrelated_orthant(rho, 4) == 1 / 16
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\]"):
        equicorrelated_orthant(-0.1, 3)


def relu_expectations(q1, q2, c):
    """``E[phi(u) phi(v)]``, ``E[phi'(u) phi'(v)]`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``."""
    th = math.acos(min(1.0, max(-1.0, c / math.sqrt(q1 * q2))))
    return math.sqrt(q1 * q2) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * math.cos(th)), \
        (math.pi - th) / (2 * math.pi)


def token_kernels(vocab, scale, depth, s, b, s_out):
    """Per layer ``Sigma``, ``Theta`` and the correlations of ``scale * e_c``, by loops over pairs."""
    x = scale * np.eye(vocab)
    sig = s**2 / vocab * x @ x.T + b**2
    sigmas, thetas = [sig], [sig.copy()]
    for layer in range(2, depth + 1):
        w = s_out if layer == depth else s
        new_sig, new_th = np.zeros_like(sig), np.zeros_like(sig)
        for i, j in itertools.product(range(vocab), repeat=2):
            e, edot = relu_expectations(sigmas[-1][i, i], sigmas[-1][j, j], sigmas[-1][i, j])
            new_sig[i, j] = w**2 * e + b**2
            new_th[i, j] = new_sig[i, j] + w**2 * edot * thetas[-1][i, j]
        sigmas.append(new_sig)
        thetas.append(new_th)
    rhos = [sg / np.sqrt(np.outer(np.diag(sg), np.diag(sg))) for sg in sigmas]
    return sigmas, thetas, rhos


def integrated_residual(theta, w, r0, t, steps=2000):
    """``int_0^t W r(s) ds`` for ``dr/ds = -Theta W r``, by classical Runge-Kutta."""
    h = t / steps

    def field(state):
        return np.stack([-theta @ (w[:, None] * state[0]), w[:, None] * state[0]])

    state = np.stack([r0, np.zeros_like(r0)])
    for _ in range(steps):
        k1 = field(state)
        k2 = field(state + h / 2 * k1)
        k3 = field(state + h / 2 * k2)
        k4 = field(state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state[1]


def gram_by_loops(p, q, f0, t, *, depth, s, b, s_out, scale):
    """``sum_k R_k^T D(x_u, x_v) R_k`` with ``D`` built entry by entry from its definition:
    ``D^m_jj'(u, v) = P(h^m > 0 at u, v, j, j') B^m_jj' Theta^m(u, j) Theta^m(v, j')
    + s^2 P(h^m > 0 at u, v) D^{m-1}_jj'(u, v)``, the orthant probabilities integrated numerically."""
    vocab = len(p)
    sig, th, rho = token_kernels(vocab, scale, depth, s, b, s_out)
    cache = {}  # by correlation matrix: the integrals are the slow part

    def orthant(layer, points):
        pts = sorted(set(points))
        corr = rho[layer - 1][np.ix_(pts, pts)]
        key = np.round(corr, 14).tobytes()
        if key not in cache:
            cache[key] = mvn_orthant(corr)
        return cache[key]

    back = {depth - 1: np.full((vocab, vocab), s_out**2)}
    for m in range(depth - 1, 1, -1):
        back[m - 1] = np.array([[s**2 * orthant(m, (j, jj)) * back[m][j, jj] for jj in range(vocab)]
                                for j in range(vocab)])
    r = integrated_residual(th[-1], p, f0 - q, t)
    gram = np.zeros((vocab, vocab))
    for u, v in itertools.product(range(vocab), repeat=2):
        d = np.zeros((vocab, vocab))
        for m in range(1, depth):
            new = np.zeros((vocab, vocab))
            for j, jj in itertools.product(range(vocab), repeat=2):
                new[j, jj] = (orthant(m, (u, v, j, jj)) * back[m][j, jj] * th[m - 1][u, j] * th[m - 1][v, jj]
                              + s**2 * orthant(m, (u, v)) * d[j, jj])
            d = new
        gram[u, v] = sum(r[:, k] @ d @ r[:, k] for k in range(r.shape[1]))
    return gram, sig[-1]


@pytest.mark.parametrize("depth,b_std,out_std", [(3, 0.0, SQRT2), (4, 0.4, 0.8)])
def test_gram_is_the_recursion_entry_by_entry(x64, rng, depth, b_std, out_std):
    vocab, t, scale = 5, 0.7, 1.7
    p = rng.uniform(0.2, 1.0, vocab)
    q = rng.dirichlet(np.ones(vocab), size=vocab)
    f0 = 0.3 * rng.standard_normal((vocab, vocab))
    expected, _ = gram_by_loops(p, q, f0, t, depth=depth, s=SQRT2, b=b_std, s_out=out_std, scale=scale)
    got = onehot_drift_gram(p, q, [0.0, t], f0=f0, input_scale=scale, depth=depth, b_std=b_std, out_std=out_std)
    assert got.shape == (2, vocab, vocab) and np.all(got[0] == 0.0)
    np.testing.assert_allclose(got[1], expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_diagonal_is_the_drift_and_the_average_over_initializations(x64, rng):
    vocab, times = 7, [0.3, 2.0]
    p = rng.uniform(0.0, 1.0, vocab)
    p[2] = 0.0  # a token never seen as a center
    q = rng.dirichlet(np.ones(vocab), size=vocab)
    kw = dict(depth=3, b_std=0.2, out_std=0.9)
    for f0 in (np.zeros((vocab, vocab)), 0.5 * rng.standard_normal((vocab, vocab)), None):
        gram = onehot_drift_gram(p, q, times, f0=f0, **kw)
        np.testing.assert_allclose(np.diagonal(gram, axis1=1, axis2=2),
                                   onehot_drift_prediction(p, q, np.arange(vocab), times, f0=f0, **kw), rtol=1e-10)
        assert np.linalg.eigvalsh(gram[-1]).min() > -1e-10 * gram[-1].max()
        np.testing.assert_array_equal(onehot_drift_gram(p, q, times, f0=f0, tokens=[4, 2, 0], **kw),
                                      gram[:, [4, 2, 0]][:, :, [4, 2, 0]])
    # f0 ~ N(0, Sigma^L) on each of the V outputs: E[r0 r0^T] = Q Q^T + V Sigma^L, which the two
    # initializations f0 = +A and -A with A A^T = V Sigma^L also give, and the Gram is linear in it.
    sigma_out = token_kernels(vocab, math.sqrt(vocab), 3, SQRT2, 0.2, 0.9)[0][-1]
    a = math.sqrt(vocab) * np.linalg.cholesky(sigma_out)
    both = [onehot_drift_gram(p, q, times, f0=sign * a, **kw) for sign in (1, -1)]
    np.testing.assert_allclose(onehot_drift_gram(p, q, times, **kw), 0.5 * (both[0] + both[1]), rtol=1e-10)


def test_bad_arguments_are_named(rng):
    p, q = np.ones(4), np.full((4, 4), 0.25)
    with pytest.raises(ValueError, match="tokens must be distinct integers in 0..3"):
        onehot_drift_gram(p, q, 1.0, tokens=[0, 0])
    with pytest.raises(ValueError, match="context_dist"):
        onehot_drift_gram(p, q[:, :3], 1.0)
    with pytest.raises(ValueError, match="times"):
        onehot_drift_gram(p, q, -1.0)
    with pytest.raises(TypeError, match="unknown keyword"):
        onehot_drift_gram(p, q, 1.0, dept=3)
    assert np.all(onehot_drift_gram(np.zeros(4), q, 1.0) == 0.0)  # nothing trained, nothing moves


def _apply(w):
    width = w[1].shape[0]
    hp = jax.lax.Precision.HIGHEST
    a1 = jax.nn.relu(SQRT2 * w[0])  # the token c's row: s / sqrt(V) * sqrt(V) W^1 e_c
    a2 = jax.nn.relu(SQRT2 / math.sqrt(width) * jnp.dot(a1, w[1], precision=hp))
    return SQRT2 / math.sqrt(width) * jnp.dot(a2, w[2], precision=hp), a2


@functools.cache
def _descent(eta, steps):
    """Full-batch gradient descent as one jitted function, compiled once per shape."""

    def loss(w, p, q):
        return 0.5 * jnp.sum(p[:, None] * (_apply(w)[0] - q) ** 2)

    @jax.jit
    def run(w, p, q):
        return jax.lax.fori_loop(0, steps, lambda _, v: jax.tree.map(lambda x, g: x - eta * g, v,
                                                                      jax.grad(loss)(v, p, q)), w)

    return run


def trained_change(p, q, *, width, seed, eta=0.04, steps=50):
    """One-hot tokens ``sqrt(V) e_c``, two hidden layers at NTK parameterization, full-batch gradient
    descent on ``1/2 sum_c p_c |f(c) - Q_c|^2``; returns ``f_0`` and ``a_T - a_0`` ``[V, width]``."""
    vocab = len(p)
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = [jax.random.normal(keys[0], (vocab, width)), jax.random.normal(keys[1], (width, width)),
              jax.random.normal(keys[2], (width, vocab))]
    pj, qj = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
    f0, a0 = _apply(params)
    _, a1 = _apply(_descent(eta, steps)(params, pj, qj))
    return np.asarray(f0, np.float64), np.asarray(a1 - a0, np.float64)


@pytest.mark.slow
def test_trained_networks_have_the_predicted_gram():
    rng = np.random.default_rng(5)
    vocab = 6
    p = rng.uniform(0.3, 1.0, vocab)
    q = rng.dirichlet(np.ones(vocab), size=vocab)
    errors, cos_errors = [], []
    for seed in range(3):
        f0, delta = trained_change(p, q, width=4096, seed=seed)
        predicted = onehot_drift_gram(p, q, 2.0, f0=f0)[0]  # float64 inside
        measured = delta @ delta.T
        errors.append(np.linalg.norm(measured - predicted) / np.linalg.norm(predicted))
        unit = lambda g: g / np.sqrt(np.outer(np.diag(g), np.diag(g)))  # noqa: E731
        cos_errors.append(np.abs(unit(measured) - unit(predicted)).max())
    # Finite width and gradient descent's step leave a few percent (docs/drift.md#numerical-check).
    assert np.mean(errors) < 0.05
    assert np.mean(cos_errors) < 0.05
