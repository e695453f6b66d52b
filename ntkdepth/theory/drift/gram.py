"""The infinite-width Gram matrix of the last hidden layer's change between one-hot tokens,
``<a_t(x_u) - a_0(x_u), a_t(x_v) - a_0(x_v)>``, and the cosines it implies (docs/drift.md#between-two-words).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels import activation as as_activation
from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.theory.drift.kernels import backward_covariances, output_kernels, residual_integral_map
from ntkdepth.theory.drift.validation import as_matrix, check_network, check_scale, check_times, check_weights

__all__ = ["equicorrelated_orthant", "onehot_drift_gram"]


def equicorrelated_orthant(rho: float, k: int) -> float:
    """``P(z_1 > 0, ..., z_k > 0)`` for ``k`` standard Gaussians with every correlation ``rho`` in [0, 1].

    Writing ``z_i = sqrt(rho) w + sqrt(1 - rho) e_i`` with independent
    standard ``w, e_i``, it is ``int phi(w) Phi(w sqrt(rho / (1 - rho)))^k dw``
    (adaptive quadrature; ``2^-k`` at ``rho = 0``, ``1/2`` at ``rho = 1``).
    For ``k = 2, 3`` it equals ``1/4 + asin(rho) / (2 pi)`` and
    ``1/8 + 3 asin(rho) / (4 pi)``.
    """
    from scipy.integrate import quad
    from scipy.special import ndtr

    rho = float(rho)
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k must be a count of variables >= 0; got {k!r}")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1] (equicorrelated Gaussians with rho >= 0); got {rho!r}")
    k = int(k)
    if k == 0:
        return 1.0
    if k == 1 or rho == 1.0:
        return 0.5
    if rho == 0.0:
        return 0.5**k
    c = math.sqrt(rho / (1.0 - rho))
    value, _ = quad(lambda w: math.exp(-0.5 * w * w) * ndtr(c * w) ** k, -np.inf, np.inf,
                    epsabs=1e-15, epsrel=1e-13, limit=200)
    return value / math.sqrt(2.0 * math.pi)


def _layer_values(rho, ntk, s: float, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``D^{L-1}(x_u, x_v)_{jj'}`` over the classes of ``(j, j')``: one token
    ``[4]`` (docs/drift.md#one-hot-inputs-table-1) and two distinct tokens ``[10]``."""
    hidden = len(rho)
    p2 = np.array([equicorrelated_orthant(r, 2) for r in rho])
    p3 = np.array([equicorrelated_orthant(r, 3) for r in rho])
    p4 = np.array([equicorrelated_orthant(r, 4) for r in rho])
    back_same = backward_covariances([0.5] * hidden, s, s_out**2)
    back_diff = backward_covariances(p2, s, s_out**2)
    one, two = np.zeros(4), np.zeros(10)
    for m in range(hidden):
        td, to = ntk[m, 0, 0], ntk[m, 0, 1]
        bs, bd = back_same[m], back_diff[m]
        one = np.array([0.5 * bs * td * td, p2[m] * bd * td * to, p2[m] * bs * to * to,
                        p3[m] * bd * to * to]) + 0.5 * s * s * one
        # (j, j') = (u, u), (v, v), (u, v), (v, u), (u, w), (w, u), (v, w), (w, v), (w, w), (w, w'),
        # with w, w' other tokens than u and v and w != w'.
        two = np.array([p2[m] * bs * td * to, p2[m] * bs * to * td, p2[m] * bd * td * td, p2[m] * bd * to * to,
                        p3[m] * bd * td * to, p3[m] * bd * to * to, p3[m] * bd * to * to, p3[m] * bd * to * td,
                        p3[m] * bs * to * to, p4[m] * bd * to * to]) + s * s * p2[m] * two
    return one, two


def onehot_drift_gram(
    center_freq: ArrayLike,
    context_dist: ArrayLike,
    times: ArrayLike,
    *,
    tokens: ArrayLike | None = None,
    input_scale: float | None = None,
    f0: ArrayLike | None = None,
    **network,
) -> np.ndarray:
    """``[T, n, n]``: the limit of ``<a_t(x_u) - a_0(x_u), a_t(x_v) - a_0(x_v)>`` over tokens u, v.

    The setting of :func:`~ntkdepth.theory.onehot_drift_prediction`
    (one-hot tokens ``x_c = input_scale e_c``, gradient flow with loss
    weights ``center_freq`` and targets ``context_dist`` for the times
    ``times``), whose diagonal this is. In the limit the change of token u's
    features is ``-sum_{jk} R_jk xi_jk(x_u)`` per unit (``R = G r(0)``) and
    the Gram matrix is ``sum_k R_k^T D(x_u, x_v) R_k``, with ``D`` the
    two-token form of the drift's recursion: for one-hot tokens its entries
    take ten values, so the matrix needs only ``M = R R^T``, its row sums and
    its trace.

    Args:
      center_freq: ``[V]`` loss weights ``p_c >= 0``.
      context_dist: ``[V, V]`` targets (row c: the context distribution of c).
      times: a time or ``[T]`` times ``>= 0``.
      tokens: ``[n]`` token indices (default: the whole vocabulary).
      input_scale: the norm of a one-hot input (default ``sqrt(V)``).
      f0: ``[V, V]`` the outputs at initialization, ``0`` for the centred
        network ``f_theta - f_theta0``; ``None`` averages over initializations.
      network: ``spec`` (a ReLU :class:`ntkdepth.models.NetworkSpec` at NTK
        parameterization) or the keywords ``depth`` (default 3), ``W_std``,
        ``b_std``, ``out_std``.

    Returns:
      ``[T, n, n]`` float64, symmetric positive semidefinite.
    """
    unknown = sorted(set(network) - {"spec", "depth", "W_std", "b_std", "out_std"})
    if unknown:
        raise TypeError(f"onehot_drift_gram got unknown keyword(s) {unknown}; the network is "
                        "spec= or depth=, W_std=, b_std=, out_std=")
    if network.get("spec") is None:
        network.setdefault("depth", 3)
    depth, s, b, s_out, act = check_network(**network, purpose="the one-hot drift Gram matrix")
    if act != as_activation("relu"):
        # The orthant probabilities below are ReLU's (docs/drift.md#between-two-words).
        raise ValueError(f"the one-hot drift Gram matrix is derived for ReLU networks; got {act.label} "
                         "(spec.replace(activation='relu'))")
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
    idx = np.arange(vocab) if tokens is None else np.atleast_1d(np.asarray(tokens))
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or np.any(idx < 0) \
            or np.any(idx >= vocab) or np.unique(idx).size != idx.size:
        raise ValueError(f"tokens must be distinct integers in 0..{vocab - 1}; got {tokens!r}")
    scale = math.sqrt(vocab) if input_scale is None else check_scale(input_scale, "input_scale")
    t = check_times(times)

    two_tokens = np.zeros((2, vocab))
    two_tokens[0, 0] = two_tokens[1, 1] = scale
    with jax.enable_x64(True):
        tr = relu_kernel_trace(jnp.asarray(two_tokens, jnp.float64), depth=depth, W_std=s, b_std=b,
                               get=("nngp", "nngp_dot", "ntk", "rho"))
        nngp, sdot, ntk = (np.asarray(a, np.float64) for a in (tr.nngp, tr.nngp_dot, tr.ntk))
        rho = np.clip(np.asarray(tr.rho, np.float64)[: depth - 1, 0, 1], 0.0, 1.0)
    sig_out, theta_out = output_kernels(nngp[-1], sdot[-1], ntk[-2], s, b, s_out)
    (v1, v2, v3, v4), c = _layer_values(rho, ntk, s, s_out)
    delta = v1 - v3 - 2 * v2 + 2 * v4
    a, same = c[9], c[8]  # (w, w') and (w, w)
    c_u, c_v = c[4] + c[5] - 2 * a, c[6] + c[7] - 2 * a
    c_uv = c[2] + c[3] - 2 * a

    out = np.zeros((len(t), idx.size, idx.size))
    keep = np.flatnonzero(p > 0)
    if keep.size == 0:
        return out
    theta = (theta_out[0, 0] - theta_out[0, 1]) * np.eye(keep.size) + theta_out[0, 1]
    g = residual_integral_map(theta, p[keep], t)  # [T, V+, V+]
    for i in range(len(t)):
        m_full = np.zeros((vocab, vocab))
        if f0m is not None:
            r = g[i] @ (f0m[keep] - q[keep])  # R on the kept tokens: [V+, K]
            m_full[np.ix_(keep, keep)] = r @ r.T
        else:
            # E[r(0) r(0)^T] = K Sigma^L + Q Q^T, with Sigma^L = (sd - so) I + so 1 1^T.
            sd, so = sig_out[0, 0], sig_out[0, 1]
            gi = g[i]
            g1 = gi.sum(axis=1)
            gq = gi @ q[keep]
            m_full[np.ix_(keep, keep)] = vocab * ((sd - so) * gi @ gi + so * np.outer(g1, g1)) + gq @ gq.T
        rows = m_full.sum(axis=1)
        total, trace = rows.sum(), np.trace(m_full)
        m = m_full[np.ix_(idx, idx)]
        d, r_ = np.diag(m), rows[idx]
        gram = (a * total + (same - a) * trace
                + c_u * (r_ - d)[:, None] + c_v * (r_ - d)[None, :] + (c_uv - c_u - c_v) * m
                + (c[0] - same) * d[:, None] + (c[1] - same) * d[None, :])
        np.fill_diagonal(gram, v4 * total + (v3 - v4) * trace + 2 * (v2 - v4) * r_ + delta * d)
        out[i] = 0.5 * (gram + gram.T)
    return out
