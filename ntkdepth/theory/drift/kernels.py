"""The kernels the drift needs, layer by layer, and the training dynamics ``R = G r(0)``.

Shared by the aggregate drift (:mod:`.aggregate`), the per-unit law
(:mod:`.units`) and the one-hot setting (:mod:`.onehot`); the formulas are
those of ``docs/drift.md`` (ReLU's orthant probabilities, every other activation's
expectations from :mod:`.expectations`).
"""

from __future__ import annotations

from typing import NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels import kernel_trace, relu_kernel_trace
from ntkdepth.kernels.activations import Activation
from ntkdepth.theory.drift.expectations import DriftExpectations, is_relu
from ntkdepth.theory.drift.validation import check_times, check_weights
from ntkdepth.theory.predictor import SingularKernelError, projection_spectrum

__all__ = ["LayerKernels", "backward_covariances", "layer_drifts", "network_kernels", "output_kernels",
           "residual_integral_map", "residual_moments"]

# Entries of the largest working block held at a time (``D^m`` for a chunk of
# evaluation points, ``[chunk, N, N]``; residual moments; sign-pattern samples).
CHUNK_ENTRIES = 1 << 21


def residual_integral_map(
    theta_train: ArrayLike, loss_weights: ArrayLike | None, times: ArrayLike
) -> np.ndarray:
    """``[T, N, N]``: the matrix ``G_t`` with ``int_0^t W r(s) ds = G_t r(0)``.

    Gradient flow on ``1/2 sum_j w_j |f(x_j) - y_j|^2`` with a constant kernel
    ``Theta`` moves the residual as ``r(s) = exp(-s Theta W) r(0)``, so that
    ``G_t = W^{1/2} phi_t(A) W^{1/2}`` with ``A = W^{1/2} Theta W^{1/2}`` and
    ``phi_t(lambda) = (1 - exp(-t lambda)) / lambda`` (``= t`` at ``lambda = 0``),
    from one eigendecomposition of ``A``; no inverse is formed.

    Args:
      theta_train: ``[N, N]`` symmetric kernel ``Theta^L(X, X)``.
      loss_weights: ``[N]`` weights ``w_j >= 0``, or ``None`` for ones.
      times: a time or ``[T]`` times ``>= 0``; ``np.inf`` needs ``A`` invertible.

    Raises:
      ValueError: a kernel that is not square, symmetric and finite, bad weights
        or times; :class:`~ntkdepth.theory.SingularKernelError` for ``t = inf`` with a singular ``A``.
    """
    k = np.asarray(theta_train, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"theta_train must be a square [N, N] matrix; got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("theta_train contains NaN or inf")
    scale = max(float(np.max(np.abs(k))), 1e-300) if k.size else 1.0
    if k.size and np.max(np.abs(k - k.T)) > 1e-6 * scale:
        raise ValueError("theta_train is not symmetric")
    w = check_weights(loss_weights, k.shape[0])
    t = check_times(times)
    sw = np.sqrt(w)
    lam, vec = np.linalg.eigh(sw[:, None] * (0.5 * (k + k.T)) * sw[None, :])
    if np.any(np.isinf(t)) and (lam.size == 0 or lam[0] <= 1e-13 * abs(lam[-1])):
        raise SingularKernelError(
            "t = inf needs W^{1/2} Theta W^{1/2} invertible; it is singular "
            f"(smallest eigenvalue {lam[0] if lam.size else 0.0:.3e}): use a finite time"
        )
    phi = projection_spectrum(lam, t)  # [T, N]
    g = (vec[None] * phi[:, None, :]) @ vec.T
    return sw[None, :, None] * g * sw[None, None, :]


def residual_moments(g, y, f0, sigma_out) -> np.ndarray:
    """``[T, N, N]``: ``sum_k R_k R_k^T`` given ``f0``, or its mean over ``f_0 ~ N(0, Sigma^L)``."""
    if f0 is not None:
        r = g @ (f0 - y)
        return r @ np.swapaxes(r, 1, 2)
    m = y.shape[1] * sigma_out + y @ y.T
    return g @ m @ g  # G is symmetric


class LayerKernels(NamedTuple):
    """Everything the drift needs from the kernels (``Lh = depth - 1`` hidden layers).

    theta_et:  [Lh, n_eval, N]  Theta^m(x, x_j)
    asin_et:   [Lh, n_eval, N]  asin rho^m(x, x_j)        (ReLU; None otherwise)
    asin_tt:   [Lh, N, N]       asin rho^m(x_j, x_j')     (ReLU; None otherwise)
    back:      [Lh, N, N]       B^m_{jj'} (backpropagated-signal covariance)
    theta_out: [N, N]           Theta^L(X, X) (float64)
    sigma_out: [N, N]           Sigma^L(X, X) (float64)
    expect:    the activation's expectations; None for ReLU, whose orthant
               probabilities come from the arcsines. Then also:
    var_e:     [Lh, n_eval]     Sigma^m(x, x)
    var_t:     [Lh, N]          Sigma^m(x_j, x_j)
    rho_et:    [Lh, n_eval, N]  rho^m(x, x_j)
    rho_tt:    [Lh, N, N]       rho^m(x_j, x_j')
    """

    theta_et: jax.Array
    asin_et: jax.Array | None
    asin_tt: jax.Array | None
    back: jax.Array
    theta_out: np.ndarray
    sigma_out: np.ndarray
    expect: DriftExpectations | None = None
    var_e: jax.Array | None = None
    var_t: jax.Array | None = None
    rho_et: jax.Array | None = None
    rho_tt: jax.Array | None = None


def _asin(rho):
    return jnp.arcsin(jnp.clip(rho, -1.0, 1.0))


def network_kernels(x_train, x_eval, depth, s, b, s_out, act: Activation, *, with_eval_nngp=False):
    """The kernels of :class:`LayerKernels`, from one kernel trace over the evaluation and training inputs.

    With ``with_eval_nngp`` the trace runs over all pairs of ``(x_eval, x_train)``
    and also returns ``Sigma^{L-1}`` over them (``[n_eval + N, n_eval + N]``,
    float64), the law of a last-hidden-layer unit's pre-activations.
    """
    if not is_relu(act):
        return _activation_kernels(x_train, x_eval, depth, s, b, s_out, DriftExpectations(act), with_eval_nngp)
    hidden, n_eval = depth - 1, x_eval.shape[0]
    x_all = jnp.concatenate([x_eval, x_train])
    tr = relu_kernel_trace(x_all, x_all if with_eval_nngp else x_train, depth=depth, W_std=s, b_std=b,
                           get=("nngp", "nngp_dot", "ntk", "rho"))
    cols = slice(n_eval, None) if with_eval_nngp else slice(None)
    tt = lambda a: a[:, n_eval:, cols]  # noqa: E731  (training rows and columns)
    et = lambda a: a[:hidden, :n_eval, cols]  # noqa: E731  (evaluation rows, training columns)
    sigma_out, theta_out = output_kernels(tt(tr.nngp)[-1], tt(tr.nngp_dot)[-1], tt(tr.ntk)[-2], s, b, s_out)
    rho_tt = tt(tr.rho)[:hidden]
    # P_m(x_j, x_j') = E[phi'(h^m) phi'(h^m)] for m = 1..L-1, from layer m's correlations.
    p_tt = (jnp.pi - jnp.arccos(jnp.clip(rho_tt, -1.0, 1.0))) / (2.0 * jnp.pi)
    back = backward_covariances(p_tt, s, jnp.full(p_tt.shape[1:], s_out**2, p_tt.dtype))
    kern = LayerKernels(
        theta_et=et(tr.ntk), asin_et=_asin(et(tr.rho)), asin_tt=_asin(rho_tt),
        back=jnp.stack(back), theta_out=theta_out, sigma_out=sigma_out,
    )
    if not with_eval_nngp:
        return kern
    return kern, np.asarray(tr.nngp[hidden - 1], np.float64)


def _activation_kernels(x_train, x_eval, depth, s, b, s_out, expect: DriftExpectations, with_eval_nngp):
    """:func:`network_kernels` for an activation other than ReLU: variances and correlations."""
    hidden, n_eval = depth - 1, x_eval.shape[0]
    x_all = jnp.concatenate([x_eval, x_train])
    tr = kernel_trace(x_all, x_all if with_eval_nngp else x_train, depth=depth, activation=expect.activation,
                      W_std=s, b_std=b, get=("nngp", "nngp_dot", "ntk", "rho"))
    cols = slice(n_eval, None) if with_eval_nngp else slice(None)
    tt = lambda a: a[:, n_eval:, cols]  # noqa: E731  (training rows and columns)
    et = lambda a: a[:hidden, :n_eval, cols]  # noqa: E731  (evaluation rows, training columns)
    sigma_out, theta_out = output_kernels(tt(tr.nngp)[-1], tt(tr.nngp_dot)[-1], tt(tr.ntk)[-2], s, b, s_out)
    var_e, var_t = tr.nngp_diag1[:hidden, :n_eval], tr.nngp_diag1[:hidden, n_eval:]
    rho_tt = tt(tr.rho)[:hidden]
    # P_m(x_j, x_j') = E[phi'(h^m(x_j)) phi'(h^m(x_j'))] for m = 1..L-1.
    p_tt = expect.pair(var_t[:, :, None], var_t[:, None, :], rho_tt)
    back = backward_covariances(p_tt, s, jnp.full(p_tt.shape[1:], s_out**2, p_tt.dtype))
    kern = LayerKernels(
        theta_et=et(tr.ntk), asin_et=None, asin_tt=None, back=jnp.stack(back), theta_out=theta_out,
        sigma_out=sigma_out, expect=expect, var_e=var_e, var_t=var_t, rho_et=et(tr.rho), rho_tt=rho_tt,
    )
    if not with_eval_nngp:
        return kern
    return kern, np.asarray(tr.nngp[hidden - 1], np.float64)


@jax.jit
def _layer_drifts_chunk(theta_e, asin_e, asin_tt, back, moments, half_s2):
    """``[Lh, P, c]``: ``sum_{jj'} D^m_{jj'}(x) M_{p, jj'}`` for every hidden layer m.

    ``theta_e``, ``asin_e``: ``[Lh, c, N]`` for a chunk of c evaluation points;
    ``asin_tt``, ``back``: ``[Lh, N, N]``; ``moments``: ``[P, N, N]``.
    """

    def layer(d_prev, xs):
        th, ae, att, bk = xs
        orthant = 0.125 + (ae[:, :, None] + ae[:, None, :] + att[None]) / (4.0 * jnp.pi)
        d = orthant * bk[None] * th[:, :, None] * th[:, None, :] + half_s2 * d_prev
        return d, jnp.einsum("cjl,pjl->pc", d, moments)

    c, n = theta_e.shape[1], theta_e.shape[2]
    _, out = jax.lax.scan(layer, jnp.zeros((c, n, n), theta_e.dtype), (theta_e, asin_e, asin_tt, back))
    return out


@functools.partial(jax.jit, static_argnames=("expect",))
def _activation_layer_drifts_chunk(theta_e, rho_e, var_e, var_t, rho_tt, back, moments, s2, *, expect):
    """:func:`_layer_drifts_chunk` for an activation other than ReLU, from variances and correlations.

    ``rho_e``: ``[Lh, c, N]``, ``var_e``: ``[Lh, c]``, ``var_t``: ``[Lh, N]``, ``rho_tt``: ``[Lh, N, N]``;
    ``D^m = T^m B^m Theta^m Theta^m + s^2 E[phi'(h^m(x))^2] D^{m-1}``.
    """

    def layer(d_prev, xs):
        th, re, ve, vt, rtt, bk = xs
        triple = expect.triple(ve[:, None, None], vt[None, :, None], vt[None, None, :],
                               re[:, :, None], re[:, None, :], rtt[None])
        d = triple * bk[None] * th[:, :, None] * th[:, None, :] + s2 * expect.square(ve)[:, None, None] * d_prev
        return d, jnp.einsum("cjl,pjl->pc", d, moments)

    c, n = theta_e.shape[1], theta_e.shape[2]
    _, out = jax.lax.scan(layer, jnp.zeros((c, n, n), theta_e.dtype),
                          (theta_e, rho_e, var_e, var_t, rho_tt, back))
    return out


def layer_drifts(kern: LayerKernels, moments: np.ndarray, s: float) -> np.ndarray:
    """``[Lh, P, n_eval]`` float64: ``sum_{jj'} D^m_{jj'}(x) M_{p, jj'}``, chunked over ``x``."""
    hidden, n_eval, n = kern.theta_et.shape
    dtype = kern.theta_et.dtype
    chunk = int(max(1, min(n_eval, CHUNK_ENTRIES // max(n * n, 1))))
    pad = (-n_eval) % chunk
    mom = jnp.asarray(moments, dtype)
    outs = []
    if kern.expect is None:
        padded = [jnp.pad(a, ((0, 0), (0, pad), (0, 0))) for a in (kern.theta_et, kern.asin_et)]
        half_s2 = jnp.asarray(0.5 * s * s, dtype)
        for start in range(0, n_eval + pad, chunk):
            sl = slice(start, start + chunk)
            outs.append(_layer_drifts_chunk(padded[0][:, sl], padded[1][:, sl], kern.asin_tt, kern.back,
                                            mom, half_s2))
    else:
        theta_e, rho_e = (jnp.pad(a, ((0, 0), (0, pad), (0, 0))) for a in (kern.theta_et, kern.rho_et))
        var_e = jnp.pad(kern.var_e, ((0, 0), (0, pad)), constant_values=1.0)
        s2 = jnp.asarray(s * s, dtype)
        for start in range(0, n_eval + pad, chunk):
            sl = slice(start, start + chunk)
            outs.append(_activation_layer_drifts_chunk(theta_e[:, sl], rho_e[:, sl], var_e[:, sl], kern.var_t,
                                                       kern.rho_tt, kern.back, mom, s2, expect=kern.expect))
    return np.asarray(jnp.concatenate(outs, axis=2)[:, :, :n_eval], np.float64)


def output_kernels(nngp_last, sdot_last, ntk_prev, s: float, b: float, s_out: float):
    """``(Sigma^L, Theta^L)`` float64 when the last layer has its own weight scale ``s_out``.

    A kernel trace at weight scale ``s`` gives ``Sigma^L``, ``Sigmadot^L`` (any
    shape, e.g. ``[N, N]``) and ``Theta^{L-1}``; with ``s_out`` in the last
    layer ``Sigma^L - b^2`` and ``Sigmadot^L`` scale by ``(s_out / s)^2`` and
    ``Theta^L = Theta^{L-1} Sigmadot^L + Sigma^L``.
    """
    ratio = (s_out / s) ** 2
    sigma_out = ratio * (np.asarray(nngp_last, np.float64) - b**2) + b**2
    sdot_out = ratio * np.asarray(sdot_last, np.float64)
    theta_out = np.asarray(ntk_prev, np.float64) * sdot_out + sigma_out
    return sigma_out, theta_out


def backward_covariances(p, s: float, last) -> list:
    """``[B^1, ..., B^{L-1}]``: the covariances of the backpropagated signal at each hidden layer.

    ``B^{L-1} = last`` (``s_out^2``, as a scalar or an array of the wanted
    shape) and ``B^{m-1} = s^2 P_m B^m``, where ``p[m - 1] = P_m`` for
    ``m = 1..L-1`` (``p`` of length ``L - 1``; ``P_1`` is not used).
    """
    back = [last]
    for m in range(len(p) - 1, 0, -1):
        back.append(s**2 * p[m] * back[-1])
    return back[::-1]
