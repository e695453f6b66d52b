"""The law of a single unit's drift in the last hidden layer, in the infinite-width limit."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.theory.drift.aggregate import PROBLEM_KEYWORDS, setup
from ntkdepth.theory.drift.kernels import (
    CHUNK_ENTRIES,
    layer_drifts,
    residual_integral_map,
    residual_moments,
)

__all__ = ["UnitDriftStatistics", "per_unit_drift_statistics"]


@dataclass(frozen=True)
class UnitDriftStatistics:
    """The law of ``u_i = sqrt(n) |a_{t,i}(x) - a_{0,i}(x)|`` over the units i of the last hidden layer.

    In the limit a fraction ``moving`` of the units has ``u_i ~ |N(0, sigma^2)|``
    with ``sigma`` drawn from the Monte Carlo sample ``scales``, and the others
    do not move: for ReLU ``moving = 1/2`` (a unit with ``phi'(h_i(x)) = 0``
    stays put) and the sample is conditioned on ``phi'(h_i(x)) = 1``; for the
    other activations ``moving = 1`` and ``sigma`` includes the factor
    ``|phi'(h_i(x))|`` (0 where it vanishes). All arrays are float64.

    Attributes:
      times: ``[T]``.
      scales: ``[T, n_eval, S]`` the conditional standard deviations ``sigma``.
      mean_abs: ``[T, n_eval]`` the mean of ``u_i`` over units.
      second_moment: ``[T, n_eval]`` the mean of ``u_i^2``, a Monte Carlo
        estimate of the aggregate drift ``|a_t(x) - a_0(x)|^2``.
      aggregate: ``[T, n_eval]`` the exact aggregate (:func:`drift_prediction`).
      moving: the fraction of the units that the sample ``scales`` describes.
    """

    times: np.ndarray
    scales: np.ndarray
    mean_abs: np.ndarray
    second_moment: np.ndarray
    aggregate: np.ndarray
    moving: float = 0.5

    def quantile(self, levels: ArrayLike) -> np.ndarray:
        """``[T, n_eval, Q]``: the quantiles of ``u`` at ``levels`` in ``[0, 1)`` (0 at levels <= 1 - moving)."""
        q = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        if q.ndim != 1 or np.any(np.isnan(q)) or np.any(q < 0) or np.any(q >= 1):
            raise ValueError(f"levels must lie in [0, 1); got {levels}")
        n_times, n_eval, n_samples = self.scales.shape
        flat = self.scales.reshape(n_times * n_eval, n_samples)
        rows = max(1, CHUNK_ENTRIES // max(n_samples * len(q), 1))
        out = np.concatenate([
            np.asarray(_mixture_quantile(jnp.asarray(flat[i:i + rows]), jnp.asarray(1.0 - q), moving=self.moving),
                       np.float64)
            for i in range(0, len(flat), rows)
        ]).reshape(n_times, n_eval, len(q))
        return np.where(q <= 1.0 - self.moving, 0.0, out)

    def expected_max(self, width: int) -> np.ndarray:
        """``[T, n_eval]``: the mean of ``max_i u_i`` over ``width`` independent units.

        ``E max = int_0^inf (1 - (1 - P(u > a))^width) da``, integrated between
        the quantiles ``1 - 40 / width`` (below which the integrand is 1 up to
        ``e^{-40}``) and ``1 - 1e-12 / width``. The maximum of
        ``|a_{t,i} - a_{0,i}|`` over a layer of width n is about
        ``expected_max(n) / sqrt(n)``; it lies a little above the
        ``1 - 1/n`` quantile, the location of the maximum's law.
        """
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"width must be an integer >= 1; got {width!r}")
        # 1 - 1e-12 / width rounds to 1 beyond width ~9,000: stop at 1 - eps there (the tail beyond
        # holds a mass width * eps, below 1e-11 for any width that fits in memory).
        top = 1.0 - max(1e-12 / width, float(np.finfo(np.float64).eps))
        bounds = self.quantile([max(0.0, 1.0 - 40.0 / width), top])
        n_times, n_eval, n_samples = self.scales.shape
        flat = self.scales.reshape(n_times * n_eval, n_samples)
        ends = bounds.reshape(n_times * n_eval, 2)
        rows = max(1, CHUNK_ENTRIES // max(n_samples * _MAX_NODES, 1))
        out = np.concatenate([
            np.asarray(_mixture_expected_max(jnp.asarray(flat[i:i + rows]), jnp.asarray(ends[i:i + rows]),
                                             float(width), moving=self.moving), np.float64)
            for i in range(0, len(flat), rows)
        ])
        return out.reshape(n_times, n_eval)


# Trapezoid nodes of the expected maximum's integral.
_MAX_NODES = 257


def _mixture_tail(scales, a, moving):
    """``P(u > a)``: ``scales`` ``[B, S]``, ``a`` ``[B, G]`` (``a > 0``) -> ``[B, G]``."""
    sig = scales[:, None, :]
    z = a[:, :, None] / (math.sqrt(2.0) * jnp.where(sig > 0, sig, 1.0))
    # A unit moves with probability `moving`; then P(|N(0, sigma^2)| > a) = erfc(a / (sqrt(2) sigma)).
    return moving * jnp.mean(jnp.where(sig > 0, jax.scipy.special.erfc(z), 0.0), axis=-1)


@functools.partial(jax.jit, static_argnames=("moving",))
def _mixture_quantile(scales, tail_target, *, moving):
    """``[B, Q]``: the ``a`` with ``P(u > a) = tail_target``, by bisection."""
    smax = jnp.max(scales, axis=-1)
    # P(u > a) <= moving exp(-a^2 / (2 smax^2)) bounds the search interval.
    hi = smax[:, None] * (jnp.sqrt(2.0 * jnp.log(jnp.maximum(moving / tail_target, 1.0))) + 1e-3)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = _mixture_tail(scales, mid, moving) > tail_target
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, halve, (jnp.zeros_like(hi), hi))
    return 0.5 * (lo + hi)


@functools.partial(jax.jit, static_argnames=("moving",))
def _mixture_expected_max(scales, ends, width, *, moving):
    """``[B]``: ``a0 + int_{a0}^{a1} (1 - (1 - P(u > a))^width) da`` with ``ends = (a0, a1)``."""
    a0, a1 = ends[:, 0], ends[:, 1]
    grid = a0[:, None] + (a1 - a0)[:, None] * jnp.linspace(0.0, 1.0, _MAX_NODES)
    tail = jnp.minimum(_mixture_tail(scales, grid, moving), 1.0)
    integrand = -jnp.expm1(width * jnp.log1p(-tail))
    mean = jnp.sum(0.5 * (integrand[:, 1:] + integrand[:, :-1]), axis=-1) / (_MAX_NODES - 1)
    return a0 + (a1 - a0) * mean


def per_unit_drift_statistics(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    times: ArrayLike,
    *,
    num_samples: int = 4096,
    num_init_samples: int = 256,
    seed: int = 0,
    **problem,
) -> UnitDriftStatistics:
    """Limit law of ``sqrt(n) |a_{t,i}(x) - a_{0,i}(x)|`` over the units of the last hidden layer.

    For a unit i with ``phi'(h_i(x)) = 1``, conditionally on its sign pattern
    ``e_j = phi'(h_i(x_j))`` on the training inputs,

        sqrt(n) (a_{t,i}(x) - a_{0,i}(x))  ->  N(0, sigma^2),
        sigma^2 = s_out^2 sum_k c_k^2 + s^2 sum_k R_k^T D^{L-2}(x) R_k,
        c_k     = sum_j R_jk e_j Theta^{L-1}(x, x_j),

    the first term from the unit's own output weights ``W^L_{ik}``, the second
    from the layers below reaching it through all other units (absent for
    ``depth = 2``). ``(h_i(x), h_i(X))`` is Gaussian with covariance
    ``Sigma^{L-1}``; the sign patterns are sampled from it (``num_samples``,
    conditioned on ``h_i(x) > 0`` by symmetry). For an activation other than
    ReLU, ``e_j = phi'(h_i(x_j))`` is sampled the same way (unconditioned) and the
    unit's drift is ``phi'(h_i(x))`` times that Gaussian (docs/drift.md#activations).
    Without ``f0_train`` the
    residuals are random too: ``num_init_samples`` draws of ``f_0(X)`` share
    the samples, and their spread dominates the Monte Carlo error (about
    ``sqrt(2 / (K num_init_samples))`` relative on ``second_moment``); given
    ``f0_train`` the error is that of the sign patterns alone. ``problem``:
    the keyword arguments of :func:`drift_prediction` that describe the
    network and the loss (``spec`` or ``depth``, ``W_std``, ``b_std``,
    ``out_std``, ``activation``; ``f0_train``, ``loss_weights``). ``second_moment``, the mean
    of the squared drift over units, estimates the aggregate.

    Returns:
      :class:`UnitDriftStatistics`.

    Cost: ``O(num_samples * n_eval * N * T * K)`` plus the aggregate's.
    """
    for value, name in ((num_samples, "num_samples"), (num_init_samples, "num_init_samples")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    unknown = sorted(set(problem) - set(PROBLEM_KEYWORDS))
    if unknown:
        raise TypeError(f"per_unit_drift_statistics got unknown keyword(s) {unknown}; "
                        f"it takes {', '.join(PROBLEM_KEYWORDS)}, num_samples, num_init_samples, seed")
    prob = setup(x_train, y_train, x_eval, times, with_eval_nngp=True, **problem)
    n_times, n_eval = len(prob.times), prob.x_eval.shape[0]
    if prob.kern is None:
        z = np.zeros((n_times, n_eval))
        return UnitDriftStatistics(prob.times, np.zeros((n_times, n_eval, num_samples)), z, z, z)
    rng = np.random.default_rng(seed)
    kern, n = prob.kern, prob.y.shape[0]
    dtype = kern.theta_et.dtype
    g = residual_integral_map(kern.theta_out, prob.weights, prob.times)  # [T, N, N]
    if prob.f0 is not None:
        f0_draws = prob.f0[None]
    else:
        n_init = min(num_init_samples, num_samples)
        lam, vec = np.linalg.eigh(kern.sigma_out)
        root = vec * np.sqrt(np.clip(lam, 0.0, None))
        f0_draws = root @ rng.standard_normal((n_init, n, prob.y.shape[1]))
    n_init = f0_draws.shape[0]
    per_draw = -(-num_samples // n_init)  # sign patterns per draw of f_0
    resid = g[None] @ (f0_draws - prob.y[None])[:, None]  # [F, T, N, K]
    # The second term, s^2 sum_k R_k^T D^{L-2} R_k, for every draw of f_0.
    below = np.zeros((n_init, n_times, n_eval))
    if prob.depth > 2:
        block = max(1, CHUNK_ENTRIES // (n_times * n * n))  # draws whose [T, N, N] moments are held at once
        for start in range(0, n_init, block):
            r = resid[start:start + block]
            moments = (r @ np.swapaxes(r, 2, 3)).reshape(-1, n, n)
            below[start:start + block] = layer_drifts(kern, moments, prob.s)[prob.depth - 3].reshape(
                len(r), n_times, n_eval)
    # Sign patterns of h^{L-1} over (x_eval, x_train), jointly Gaussian with covariance Sigma^{L-1}.
    cov = prob.unit_nngp
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    h = rng.standard_normal((n_init * per_draw, len(cov))) @ (vec * np.sqrt(np.clip(lam, 0.0, None))).T
    h = h.reshape(n_init, per_draw, len(cov))
    # ReLU's sample is conditioned on the half of the units that move; other activations' is not.
    act = None if kern.expect is None else kern.expect.activation
    moving = 0.5 if act is None else 1.0
    scales = _unit_scales(
        jnp.asarray(h[:, :, :n_eval], dtype), jnp.asarray(h[:, :, n_eval:], dtype), kern.theta_et[-1],
        jnp.asarray(resid, dtype), jnp.asarray(below, dtype), prob.s, prob.s_out, act,
    )  # [T, n_eval, S]
    aggregate = layer_drifts(kern, residual_moments(g, prob.y, prob.f0, kern.sigma_out), prob.s)[-1]
    return UnitDriftStatistics(
        times=prob.times, scales=scales,
        mean_abs=moving * math.sqrt(2.0 / math.pi) * scales.mean(axis=-1),
        second_moment=moving * np.mean(scales**2, axis=-1), aggregate=aggregate, moving=moving,
    )


@jax.jit
def _unit_scales_chunk(h_e, h_t, theta_e, resid, below, s, s_out):
    """``[F, S, T, c]`` conditional standard deviations for a chunk of c evaluation points.

    ``h_e``: ``[F, S, c]`` and ``h_t``: ``[F, S, N]`` samples of ``h_i``;
    ``theta_e``: ``[c, N]``; ``resid``: ``[F, T, N, K]``; ``below``: ``[F, T, c]``.
    """
    # Sign pattern on the training inputs given h_i(x) > 0: a sample with h_i(x) < 0 is flipped.
    signs = (h_t[:, :, None, :] * jnp.sign(h_e)[:, :, :, None] > 0).astype(theta_e.dtype)  # [F, S, c, N]
    own = jnp.einsum("fscj,cj,ftjk->fstck", signs, theta_e, resid)  # c_k
    var = s_out**2 * jnp.sum(own * own, axis=-1) + s**2 * below[:, None]
    return jnp.sqrt(jnp.maximum(var, 0.0))


@functools.partial(jax.jit, static_argnames=("act",))
def _activation_unit_scales_chunk(h_e, h_t, theta_e, resid, below, s, s_out, *, act):
    """:func:`_unit_scales_chunk` for an activation other than ReLU: ``e_j = phi'(h_i(x_j))`` and the
    factor ``|phi'(h_i(x))|``, from unconditioned samples."""
    slopes = act.derivative(h_t)  # [F, S, N]
    # c_k, the residual weighted by the kernel first: XLA on CPU contracts the three-operand product
    # wrongly when the slopes are a constant (the identity) and S is large.
    weighted = theta_e[None, None, :, :, None] * resid[:, :, None]  # [F, T, c, N, K]
    own = jnp.einsum("fsj,ftcjk->fstck", slopes, weighted)
    var = s_out**2 * jnp.sum(own * own, axis=-1) + s**2 * below[:, None]
    return jnp.abs(act.derivative(h_e))[:, :, None, :] * jnp.sqrt(jnp.maximum(var, 0.0))


def _unit_scales(h_e, h_t, theta_e, resid, below, s, s_out, act=None) -> np.ndarray:
    """``[T, n_eval, F * S]`` conditional standard deviations, chunked over evaluation points."""
    n_init, per_draw, n_eval = h_e.shape
    n_times, n, k = resid.shape[1], resid.shape[2], resid.shape[3]
    chunk = int(max(1, min(n_eval, CHUNK_ENTRIES // max(n_init * per_draw * max(n, n_times * k), 1))))
    pad = (-n_eval) % chunk
    h_e = jnp.pad(h_e, ((0, 0), (0, 0), (0, pad)), constant_values=1.0)
    theta_e = jnp.pad(theta_e, ((0, pad), (0, 0)))
    below = jnp.pad(below, ((0, 0), (0, 0), (0, pad)))
    outs = []
    for start in range(0, n_eval + pad, chunk):
        sl = slice(start, start + chunk)
        if act is None:  # ReLU
            outs.append(_unit_scales_chunk(h_e[:, :, sl], h_t, theta_e[sl], resid, below[:, :, sl], s, s_out))
        else:
            outs.append(_activation_unit_scales_chunk(h_e[:, :, sl], h_t, theta_e[sl], resid, below[:, :, sl], s,
                                                      s_out, act=act))
    out = np.asarray(jnp.concatenate(outs, axis=3)[..., :n_eval], np.float64)  # [F, S, T, n_eval]
    return np.transpose(out, (2, 3, 0, 1)).reshape(n_times, n_eval, n_init * per_draw)

