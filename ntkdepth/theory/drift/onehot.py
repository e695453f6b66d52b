"""The drift for one-hot token inputs (the skip-gram setting of Table 1), for large vocabularies."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels import kernel_trace, relu_kernel_trace
from ntkdepth.theory.drift.expectations import DriftExpectations, is_relu
from ntkdepth.theory.drift.kernels import backward_covariances, output_kernels, residual_integral_map
from ntkdepth.theory.drift.units import per_unit_drift_statistics
from ntkdepth.theory.drift.validation import (
    as_matrix,
    check_network,
    check_scale,
    check_times,
    check_weights,
)

__all__ = ["onehot_drift_measures", "onehot_drift_prediction"]


def onehot_drift_prediction(
    center_freq: ArrayLike,
    context_dist: ArrayLike,
    eval_tokens: ArrayLike,
    times: ArrayLike,
    *,
    input_scale: float | None = None,
    f0: ArrayLike | None = None,
    **network,
) -> np.ndarray:
    """:func:`drift_prediction` for one-hot token inputs trained on skip-gram pairs.

    Token c enters as ``x_c = input_scale * e_c`` in ``R^V`` (default
    ``input_scale = sqrt(V)``, so ``|x|^2 = n0 = V``); the network has ``V``
    outputs. SGD on pairs (center c, context o) drawn with probability
    ``p_c Q_co``, with batch loss ``(1/B) sum_b 1/2 |f(c_b) - e_{o_b}|^2`` and
    learning rate ``eta``, has expected gradient that of
    ``sum_c p_c 1/2 |f(c) - Q_c|^2`` (+ a constant), so after ``k`` steps it
    follows gradient flow with weights ``w = p``, targets ``y = Q`` for time
    ``t = eta k``, for any batch size ``B``; the sampling noise adds a
    contribution that vanishes as ``eta -> 0`` at fixed ``t``.

    All kernels between tokens have the form ``alpha I + beta 1 1^T``, so
    ``D^m(x_u)_{jj'}`` takes five values (``j = j' = u``; one of ``j, j'``
    equal to u; ``j = j' != u``; ``j != j'``, both ``!= u``), the same for every
    token u, and ``sum_k R_k^T D R_k`` needs only ``R``'s column sums, its
    Frobenius norm and its row u. The cost is one ``eigh`` of a ``V x V``
    matrix and one ``V x V`` by ``V x V`` product per time: seconds for ``V``
    of a few thousand, minutes at ``10^4``.

    Args:
      center_freq: ``[V]`` probabilities ``p_c >= 0`` of each center token, the
        loss weights (counts instead of probabilities rescale time by their total).
      context_dist: ``[V, V]`` row c the context distribution of token c (the
        target ``Q_c``; rows summing to 1 is not required).
      eval_tokens: ``[n_eval]`` token indices in ``0..V-1``.
      times: a time or ``[T]`` times ``>= 0``.
      network: ``spec`` (a :class:`ntkdepth.models.NetworkSpec`) or the
        keywords ``depth`` (default 3), ``W_std``, ``b_std``, ``out_std``, as
        in :func:`drift_prediction`, and ``activation``.
      input_scale: the norm of a one-hot input (default ``sqrt(V)``).
      f0: ``[V, V]`` the network's outputs at initialization (row c for token
        c), or ``None`` to average over initializations.

    Returns:
      ``[T, n_eval]`` float64 predicted ``|a^{L-1}_t(x_u) - a^{L-1}_0(x_u)|^2``.
    """
    unknown = sorted(set(network) - {"spec", "depth", "W_std", "b_std", "out_std", "activation"})
    if unknown:
        raise TypeError(f"onehot_drift_prediction got unknown keyword(s) {unknown}; the network is "
                        "spec= or depth=, W_std=, b_std=, out_std=, activation=")
    if network.get("spec") is None:
        network.setdefault("depth", 3)
    depth, s, b, s_out, act = check_network(**network, purpose="the one-hot drift prediction")
    p = np.asarray(center_freq, dtype=np.float64)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"center_freq must be a [V] vector with V >= 2; got shape {p.shape}")
    vocab = p.size
    p = check_weights(p, vocab, "center_freq")
    q = as_matrix(context_dist, vocab, "context_dist", "V")
    if q.shape != (vocab, vocab):
        raise ValueError(f"context_dist must be [V, V] = [{vocab}, {vocab}]; got {q.shape}")
    f0m = None if f0 is None else as_matrix(f0, vocab, "f0", "V")
    if f0m is not None and f0m.shape != q.shape:
        raise ValueError(f"f0 must be [V, V] = [{vocab}, {vocab}]; got {f0m.shape}")
    tokens = np.asarray(eval_tokens)
    if tokens.ndim == 0:
        tokens = tokens[None]
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer) or np.any(tokens < 0) \
            or np.any(tokens >= vocab):
        raise ValueError(f"eval_tokens must be integers in 0..{vocab - 1}; got {eval_tokens!r}")
    scale = math.sqrt(vocab) if input_scale is None else check_scale(input_scale, "input_scale")
    t = check_times(times)

    # Kernels of two distinct tokens give every entry: [0, 0] the diagonal, [0, 1] the rest.
    two = np.zeros((2, vocab))
    two[0, 0] = two[1, 1] = scale
    if is_relu(act):
        tr = relu_kernel_trace(jnp.asarray(two, jnp.result_type(float)), depth=depth, W_std=s, b_std=b,
                               get=("nngp", "nngp_dot", "ntk", "rho"))
    else:
        tr = kernel_trace(jnp.asarray(two, jnp.result_type(float)), depth=depth, activation=act, W_std=s,
                          b_std=b, get=("nngp", "nngp_dot", "ntk", "rho"))
    nngp, sdot, ntk = (np.asarray(a, np.float64) for a in (tr.nngp, tr.nngp_dot, tr.ntk))
    rho = np.clip(np.asarray(tr.rho, np.float64)[:, 0, 1], -1.0, 1.0)
    sig_out, theta_out = output_kernels(nngp[-1], sdot[-1], ntk[-2], s, b, s_out)  # [2, 2]

    # The five values of D^{L-1}: (j=j'=u), (one of j, j' = u), (j=j'!=u), (j!=j', both != u).
    hidden = depth - 1
    if is_relu(act):
        v1, v2, v3, v4 = _relu_values(rho, ntk, hidden, s, s_out)
    else:
        v1, v2, v3, v4 = _activation_values(DriftExpectations(act), nngp[:, 0, 0], rho, ntk, hidden, s, s_out)
    delta = v1 - v3 - 2 * v2 + 2 * v4

    out = np.zeros((len(t), len(tokens)))
    keep = np.flatnonzero(p > 0)
    if keep.size == 0:
        return out
    n_keep = keep.size
    theta = (theta_out[0, 0] - theta_out[0, 1]) * np.eye(n_keep) + theta_out[0, 1]
    g = residual_integral_map(theta, p[keep], t)  # [T, V+, V+]
    qk = q[keep]
    n_out = q.shape[1]
    for i in range(len(t)):
        if f0m is not None:
            r = np.zeros((vocab, n_out))
            r[keep] = g[i] @ (f0m[keep] - qk)  # R: [V, K]
            col = r.sum(axis=0)
            out[i] = (v4 * col @ col + (v3 - v4) * np.sum(r * r)
                      + 2 * (v2 - v4) * (r[tokens] @ col) + delta * np.sum(r[tokens] ** 2, axis=1))
        else:
            # C = G (K Sigma^L + Q Q^T) G, with Sigma^L = (sd - so) I + so 1 1^T on the kept tokens.
            sd, so_ = sig_out[0, 0], sig_out[0, 1]
            gi = g[i]
            gq = gi @ qk
            g1 = gi.sum(axis=1)
            c_diag = np.zeros(vocab)
            c_one = np.zeros(vocab)
            c_diag[keep] = (n_out * ((sd - so_) * np.sum(gi * gi, axis=1) + so_ * g1 * g1)
                            + np.sum(gq * gq, axis=1))
            c_one[keep] = n_out * ((sd - so_) * (gi @ g1) + so_ * g1 * g1.sum()) + gq @ gq.sum(axis=0)
            total = c_one.sum()
            trace = c_diag.sum()
            out[i] = (v4 * total + (v3 - v4) * trace + 2 * (v2 - v4) * c_one[tokens]
                      + delta * c_diag[tokens])
    return out


def _relu_values(rho, ntk, hidden: int, s: float, s_out: float) -> np.ndarray:
    """The four values of ``D^{L-1}`` for ReLU, from the tokens' correlations ``rho`` ``[L]``."""
    asin = np.arcsin(rho[:hidden])
    pair = 0.25 + asin / (2 * np.pi)  # P_m for two distinct tokens; 1/2 for one token
    back_same = backward_covariances([0.5] * hidden, s, s_out**2)  # P_m = 1/2 for one token
    back_diff = backward_covariances(pair, s, s_out**2)
    d = np.zeros(4)
    for m in range(hidden):
        th_d, th_o = ntk[m, 0, 0], ntk[m, 0, 1]
        triple = 0.125 + 3 * asin[m] / (4 * np.pi)
        term = np.array([
            0.5 * back_same[m] * th_d * th_d,
            pair[m] * back_diff[m] * th_d * th_o,
            pair[m] * back_same[m] * th_o * th_o,
            triple * back_diff[m] * th_o * th_o,
        ])
        d = term + 0.5 * s * s * d
    return d


def _activation_values(expect: DriftExpectations, var, rho, ntk, hidden: int, s: float, s_out: float) -> np.ndarray:
    """The four values of ``D^{L-1}`` for any covered activation: every token has the variance
    ``var`` ``[L]`` of ``h^m``, two tokens the correlation ``rho`` ``[L]``."""
    q, r, one = var[:hidden], rho[:hidden], np.ones(hidden)
    same = expect.square(q)  # P_m of one token, and E[phi'(h^m(x))^2]
    pair = expect.pair(q, q, r)  # P_m of two tokens
    # T^m(x_u, x_j, x_j') for (j = j' = u), (j = u != j'), (j = j' != u), (j != j', both != u).
    triples = [expect.triple(q, q, q, one, one, one), expect.triple(q, q, q, one, r, r),
               expect.triple(q, q, q, r, r, one), expect.triple(q, q, q, r, r, r)]
    back_same = backward_covariances(same, s, s_out**2)
    back_diff = backward_covariances(pair, s, s_out**2)
    d = np.zeros(4)
    for m in range(hidden):
        th_d, th_o = ntk[m, 0, 0], ntk[m, 0, 1]
        term = np.array([
            triples[0][m] * back_same[m] * th_d * th_d,
            triples[1][m] * back_diff[m] * th_d * th_o,
            triples[2][m] * back_same[m] * th_o * th_o,
            triples[3][m] * back_diff[m] * th_o * th_o,
        ])
        d = term + s * s * same[m] * d
    return d


def onehot_drift_measures(center_freq: ArrayLike, context_dist: ArrayLike, eval_tokens: ArrayLike,
                          times: ArrayLike, widths: ArrayLike, *, input_scale: float | None = None,
                          centered: bool = True, unit_tokens: int = 16, num_samples: int = 256,
                          num_init_samples: int = 16, **network) -> dict[str, np.ndarray]:
    """The infinite-width values of the measured drift (``ntkdepth.empirical.final_drift``), one-hot inputs.

    The network and the training are those of :func:`onehot_drift_prediction`:
    gradient flow with loss weights ``p`` and targets ``Q`` for the times
    ``times``, from ``f_0 = 0`` if ``centered`` (the network ``f_theta - f_theta0``)
    else averaged over initializations. The per-unit law
    (:func:`~ntkdepth.theory.per_unit_drift_statistics`) is estimated
    at the last time on the first ``unit_tokens`` evaluation tokens. Computed
    in float64. ``network``: ``spec`` (a :class:`ntkdepth.models.NetworkSpec`)
    or the keywords ``depth`` (default 3), ``W_std``, ``b_std``, ``out_std``, ``activation``.

    Returns:
      ``aggregate``: ``[T, n_eval]`` the limit of ``|a_t(x_u) - a_0(x_u)|_2``;
      ``unit_mean_abs``: ``[n_unit]`` the limit of ``sqrt(n)`` times the mean
      over units of ``|a_{T,i}(x_u) - a_{0,i}(x_u)|``;
      ``unit_max``: ``[W, n_unit]`` ``sqrt(n)`` times its expected maximum over
      the ``n`` units of each of the ``[W]`` ``widths``; ``widths``: ``[W]``;
      ``per_neuron_mean``, ``per_neuron_max``: ``[W]`` the predicted mean over units
      and over evaluation tokens of ``|a_{T,i}(x_u) - a_{0,i}(x_u)|`` and of its
      maximum over units at each width, ``n^{-1/2}`` times the limits above.
    """
    if network.get("spec") is None:
        network.setdefault("depth", 3)
    vocab = np.asarray(center_freq).shape[-1]
    scale = math.sqrt(vocab) if input_scale is None else check_scale(input_scale, "input_scale")
    f0 = np.zeros((vocab, vocab)) if centered else None
    times = check_times(times)
    tokens = np.asarray(eval_tokens)
    widths = np.asarray(widths)
    with jax.enable_x64(True):
        d2 = onehot_drift_prediction(center_freq, context_dist, tokens, times, input_scale=scale, f0=f0,
                                     **network)
        eye = scale * np.eye(vocab)
        unit = per_unit_drift_statistics(
            eye, context_dist, eye[tokens[:unit_tokens]], [times[-1]], f0_train=f0, loss_weights=center_freq,
            num_samples=num_samples, num_init_samples=num_init_samples, **network,
        )
        unit_max = np.stack([unit.expected_max(int(w))[0] for w in widths])  # [W, n_unit]
    root_n = np.sqrt(widths.astype(np.float64))
    return {"aggregate": np.sqrt(np.maximum(d2, 0.0)), "unit_mean_abs": unit.mean_abs[0],
            "unit_max": unit_max, "widths": widths,
            "per_neuron_mean": float(unit.mean_abs[0].mean()) / root_n, "per_neuron_max": unit_max.mean(1) / root_n}
