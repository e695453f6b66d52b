"""Infinite-width drift of the hidden layers under gradient flow (MATH.md, section 5).

The paper's Table 1 shows that the last hidden layer ``a^{L-1}`` of a wide
network at NTK parameterization moves by an amount that does not vanish with
width, while every single unit's movement does. This module computes that
movement exactly in the infinite-width limit, from kernels alone. The
derivation is in ``docs/drift.md``; in short, for the network of MATH.md,
section 1 (ReLU, ``depth = L`` weight layers, weight scale ``s = W_std`` in
layers ``1..L-1``, ``s_out`` in the last one, bias scale ``b_std``), trained
by gradient flow on ``1/2 sum_j w_j |f(x_j) - y_j|^2`` for a time ``t``:

    |a^m_t(x) - a^m_0(x)|^2  ->  sum_k R_k^T D^m(x) R_k            (each hidden layer m)

    R   = int_0^t W r(s) ds = W^{1/2} A^{-1} (I - exp(-t A)) W^{1/2} r(0),
          A = W^{1/2} Theta^L W^{1/2},  W = diag(w),  r(0) = f_0(X) - Y   ([N, K])
    D^m_{jj'}(x) = T^m(x, x_j, x_j') B^m_{jj'} Theta^m(x, x_j) Theta^m(x, x_j')
                   + (s^2 / 2) D^{m-1}_{jj'}(x),                    D^0 = 0
    B^{L-1} = s_out^2,   B^{m-1}_{jj'} = s^2 P_m(x_j, x_j') B^m_{jj'}

with the Gaussian orthant probabilities of ``h^m ~ N(0, Sigma^m)``

    P_m(a, b)    = E[phi'(h^m(a)) phi'(h^m(b))] = (pi - arccos rho_ab) / (2 pi)
    T^m(a, b, c) = E[phi'(h^m(a)) phi'(h^m(b)) phi'(h^m(c))]
                 = 1/8 + (asin rho_ab + asin rho_ac + asin rho_bc) / (4 pi)

(``rho`` the layer-m correlations). Averaged over initializations,
``f_0(X) ~ N(0, Sigma^L)`` independently over the K outputs, and the mean is
``sum_k trace(G (Sigma^L + y_k y_k^T) G D^m(x))`` with ``R = G r(0)``.
For depth 3 it reduces to the two-hidden-layer formula (``docs/drift.md``,
section "Depth 3").

Per unit (last hidden layer): half of the units (``phi'(h_i(x)) = 0``) do not
move in the limit; the other half move by ``n^{-1/2}`` times a Gaussian scale
mixture, computed here by Monte Carlo over the unit's sign pattern on the
training inputs (:func:`per_unit_drift_statistics`).

Public functions:

- :func:`drift_prediction`: ``[T, n_eval]`` predicted ``|a_t(x) - a_0(x)|^2``.
- :func:`drift_norm_prediction`: its square root.
- :func:`per_unit_drift_statistics`: mean, second moment, quantiles and the
  expected maximum of ``sqrt(n) |a_{t,i}(x) - a_{0,i}(x)|`` over units.
- :func:`onehot_drift_prediction`: the one-hot (skip-gram, Table 1) setting,
  using the symmetry of one-hot kernels for vocabularies of thousands.
- :func:`residual_integral_map`: the matrix ``G`` that maps ``r(0)`` to ``R``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels import relu_kernel_trace
from ntkdepth.kernels.validation import check_hyperparameters, check_inputs
from ntkdepth.theory.predictor import SingularKernelError, projection_spectrum

__all__ = [
    "UnitDriftStatistics",
    "drift_prediction",
    "drift_norm_prediction",
    "onehot_drift_prediction",
    "per_unit_drift_statistics",
    "residual_integral_map",
]

# Entries of the largest working block held at a time (``D^m`` for a chunk of
# evaluation points, ``[chunk, N, N]``; residual moments; sign-pattern samples).
_CHUNK_ENTRIES = 1 << 21


# --------------------------------------------------------------------------
# Input checks.


def _check_times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"times must be a number or a 1-D array; got shape {t.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError(f"times must be >= 0 (np.inf allowed); got {t}")
    return t


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth must be an integer >= 2 (at least one hidden layer); got {depth!r}")
    return int(depth)


def _check_scale(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _as_matrix(a, rows: int, name: str, rows_name: str) -> np.ndarray:
    """``a`` as a finite float64 ``[rows, K]`` matrix (a ``[rows]`` vector becomes ``K = 1``)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != rows or arr.shape[1] == 0:
        raise ValueError(f"{name} must be [{rows_name}] or [{rows_name}, K] with {rows_name} = {rows}; "
                         f"got shape {np.shape(a)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_weights(loss_weights, n: int, name: str = "loss_weights") -> np.ndarray:
    if loss_weights is None:
        return np.ones(n)
    w = np.asarray(loss_weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must be a [{n}] vector (one weight per training input); got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {w}")
    return w


# --------------------------------------------------------------------------
# The training dynamics: R = G r(0).


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
        or times; :class:`SingularKernelError` for ``t = inf`` with a singular ``A``.
    """
    k = np.asarray(theta_train, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"theta_train must be a square [N, N] matrix; got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("theta_train contains NaN or inf")
    scale = max(float(np.max(np.abs(k))), 1e-300) if k.size else 1.0
    if k.size and np.max(np.abs(k - k.T)) > 1e-6 * scale:
        raise ValueError("theta_train is not symmetric")
    w = _check_weights(loss_weights, k.shape[0])
    t = _check_times(times)
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


def _residual_moments(g, y, f0, sigma_out) -> np.ndarray:
    """``[T, N, N]``: ``sum_k R_k R_k^T`` given ``f0``, or its mean over ``f_0 ~ N(0, Sigma^L)``."""
    if f0 is not None:
        r = g @ (f0 - y)
        return r @ np.swapaxes(r, 1, 2)
    m = y.shape[1] * sigma_out + y @ y.T
    return g @ m @ g  # G is symmetric


# --------------------------------------------------------------------------
# Kernels of the network, layer by layer.


class _Kernels(NamedTuple):
    """Everything the drift needs from the kernels (``Lh = depth - 1`` hidden layers).

    theta_et:  [Lh, n_eval, N]  Theta^m(x, x_j)
    asin_et:   [Lh, n_eval, N]  asin rho^m(x, x_j)
    asin_tt:   [Lh, N, N]       asin rho^m(x_j, x_j')
    back:      [Lh, N, N]       B^m_{jj'} (backpropagated-signal covariance)
    theta_out: [N, N]           Theta^L(X, X) (float64)
    sigma_out: [N, N]           Sigma^L(X, X) (float64)
    """

    theta_et: jax.Array
    asin_et: jax.Array
    asin_tt: jax.Array
    back: jax.Array
    theta_out: np.ndarray
    sigma_out: np.ndarray


def _asin(rho):
    return jnp.arcsin(jnp.clip(rho, -1.0, 1.0))


def _network_kernels(x_train, x_eval, depth, s, b, s_out, *, with_eval_nngp=False):
    """The kernels of :class:`_Kernels`, from one kernel trace over the evaluation and training inputs.

    With ``with_eval_nngp`` the trace runs over all pairs of ``(x_eval, x_train)``
    and also returns ``Sigma^{L-1}`` over them (``[n_eval + N, n_eval + N]``,
    float64), the law of a last-hidden-layer unit's pre-activations.
    """
    hidden, n_eval = depth - 1, x_eval.shape[0]
    x_all = jnp.concatenate([x_eval, x_train])
    tr = relu_kernel_trace(x_all, x_all if with_eval_nngp else x_train, depth=depth, W_std=s, b_std=b,
                           get=("nngp", "nngp_dot", "ntk", "rho"))
    cols = slice(n_eval, None) if with_eval_nngp else slice(None)
    tt = lambda a: a[:, n_eval:, cols]  # noqa: E731  (training rows and columns)
    et = lambda a: a[:hidden, :n_eval, cols]  # noqa: E731  (evaluation rows, training columns)
    # The output layer has its own scale: Sigma^L - b^2 and Sigmadot^L scale with s_out^2.
    ratio = (s_out / s) ** 2
    sigma_out = ratio * (np.asarray(tt(tr.nngp)[-1], np.float64) - b**2) + b**2
    sdot_out = ratio * np.asarray(tt(tr.nngp_dot)[-1], np.float64)
    theta_out = np.asarray(tt(tr.ntk)[-2], np.float64) * sdot_out + sigma_out
    rho_tt = tt(tr.rho)[:hidden]
    # P_m(x_j, x_j') = E[phi'(h^m) phi'(h^m)] for m = 1..L-1, from layer m's correlations.
    p_tt = (jnp.pi - jnp.arccos(jnp.clip(rho_tt, -1.0, 1.0))) / (2.0 * jnp.pi)
    back = [jnp.full(p_tt.shape[1:], s_out**2, p_tt.dtype)]
    for m in range(hidden - 1, 0, -1):  # B^{m-1} = s^2 P_m B^m, with B^{L-1} = s_out^2
        back.append(s**2 * p_tt[m] * back[-1])
    kern = _Kernels(
        theta_et=et(tr.ntk), asin_et=_asin(et(tr.rho)), asin_tt=_asin(rho_tt),
        back=jnp.stack(back[::-1]), theta_out=theta_out, sigma_out=sigma_out,
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


def _layer_drifts(kern: _Kernels, moments: np.ndarray, s: float) -> np.ndarray:
    """``[Lh, P, n_eval]`` float64: ``sum_{jj'} D^m_{jj'}(x) M_{p, jj'}``, chunked over ``x``."""
    hidden, n_eval, n = kern.theta_et.shape
    dtype = kern.theta_et.dtype
    chunk = int(max(1, min(n_eval, _CHUNK_ENTRIES // max(n * n, 1))))
    pad = (-n_eval) % chunk
    padded = [jnp.pad(a, ((0, 0), (0, pad), (0, 0))) for a in (kern.theta_et, kern.asin_et)]
    mom = jnp.asarray(moments, dtype)
    half_s2 = jnp.asarray(0.5 * s * s, dtype)
    outs = []
    for start in range(0, n_eval + pad, chunk):
        sl = slice(start, start + chunk)
        outs.append(_layer_drifts_chunk(padded[0][:, sl], padded[1][:, sl], kern.asin_tt, kern.back,
                                        mom, half_s2))
    return np.asarray(jnp.concatenate(outs, axis=2)[:, :, :n_eval], np.float64)


# --------------------------------------------------------------------------
# The general setting.


class _Problem(NamedTuple):
    times: np.ndarray
    y: np.ndarray       # [N+, K]  targets of the training inputs with w > 0
    f0: np.ndarray | None
    weights: np.ndarray  # [N+]
    kern: _Kernels | None  # None when no training input has a positive weight
    s: float
    s_out: float
    depth: int
    x_train: jax.Array  # [N+, n0]
    x_eval: jax.Array
    unit_nngp: np.ndarray | None  # Sigma^{L-1} over (x_eval, x_train), for per-unit statistics


def _setup(x_train, y_train, x_eval, times, depth, W_std, b_std, out_std, f0_train, loss_weights,
           with_eval_nngp=False):
    depth = _check_depth(depth)
    check_hyperparameters(W_std, b_std)
    s = _check_scale(W_std, "W_std")
    b = float(b_std)
    s_out = s if out_std is None else _check_scale(out_std, "out_std")
    try:
        x_train, x_eval = check_inputs(x_train, x_eval, b_std=b)
    except ValueError as err:  # name the arguments as the caller knows them
        raise ValueError(str(err).replace("x1", "x_train").replace("x2", "x_eval")) from None
    n = x_train.shape[0]
    y = _as_matrix(y_train, n, "y_train", "N")
    f0 = None if f0_train is None else _as_matrix(f0_train, n, "f0_train", "N")
    if f0 is not None and f0.shape != y.shape:
        raise ValueError(f"f0_train must have the shape of y_train {y.shape}; got {f0.shape}")
    w = _check_weights(loss_weights, n)
    t = _check_times(times)
    # Inputs with zero weight do not enter the loss: R_j = 0 for them.
    keep = np.flatnonzero(w > 0)
    x_train = x_train[keep]
    y, w = y[keep], w[keep]
    f0 = None if f0 is None else f0[keep]
    kern, nngp = None, None
    if keep.size:
        kern = _network_kernels(x_train, x_eval, depth, s, b, s_out, with_eval_nngp=with_eval_nngp)
        if with_eval_nngp:
            kern, nngp = kern
    return _Problem(t, y, f0, w, kern, s, s_out, depth, x_train, x_eval, nngp)


def _check_layer(layer, depth: int) -> int:
    if layer is None:
        return depth - 1
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= depth - 1:
        raise ValueError(f"layer must be a hidden layer, an integer in 1..{depth - 1}; got {layer!r}")
    return int(layer)


def drift_prediction(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    times: ArrayLike,
    *,
    depth: int,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    out_std: float | None = None,
    f0_train: ArrayLike | None = None,
    loss_weights: ArrayLike | None = None,
    layer: int | None = None,
) -> np.ndarray:
    """Infinite-width limit of ``|a^m_t(x) - a^m_0(x)|^2`` for each evaluation input.

    The network is MATH.md's (section 1): ReLU, ``depth`` weight layers at NTK
    parameterization, weight scale ``W_std`` in layers ``1..depth-1`` and
    ``out_std`` in the last, bias scale ``b_std`` everywhere, all parameters
    ``N(0, 1)``. It is trained by gradient flow on
    ``1/2 sum_j w_j |f(x_j) - y_j|^2`` for time ``t`` (gradient descent with a
    small learning rate ``eta`` for ``t / eta`` steps). ``m`` is the last
    hidden layer unless ``layer`` says otherwise.

    Args:
      x_train: ``[N, n0]`` training inputs.
      y_train: ``[N]`` or ``[N, K]`` targets.
      x_eval: ``[n_eval, n0]`` inputs at which the drift is predicted (in the
        training set or not).
      times: a time or ``[T]`` times ``>= 0`` (``t = 0`` gives exactly 0;
        ``np.inf`` needs an invertible weighted kernel).
      depth: ``L >= 2`` weight layers (``L - 1`` hidden layers).
      W_std, b_std: weight and bias scales ``s`` and ``b``.
      out_std: the last layer's weight scale ``s_out`` (default ``W_std``).
      f0_train: ``[N]`` or ``[N, K]`` network outputs at initialization on
        ``x_train``: the prediction conditioned on them. ``None`` averages over
        initializations (``f_0(X) ~ N(0, Sigma^L)``, independent outputs).
      loss_weights: ``[N]`` per-example weights ``w_j >= 0`` (default 1).
      layer: the hidden layer ``1 <= m <= depth - 1`` (default ``depth - 1``).

    Returns:
      ``[T, n_eval]`` float64: the squared drift (its mean over initializations
      when ``f0_train`` is ``None``).

    Raises:
      ValueError: NaN/inf or mismatched shapes, negative times or weights,
        ``depth < 2``, bad scales or ``layer``; :class:`SingularKernelError` for
        ``t = inf`` with a singular kernel.

    Cost: ``O(depth * n_eval * N^2 * T)``, in chunks of evaluation points.
    """
    prob = _setup(x_train, y_train, x_eval, times, depth, W_std, b_std, out_std, f0_train, loss_weights)
    m = _check_layer(layer, prob.depth)
    if prob.kern is None:
        return np.zeros((len(prob.times), prob.x_eval.shape[0]))
    g = residual_integral_map(prob.kern.theta_out, prob.weights, prob.times)
    moments = _residual_moments(g, prob.y, prob.f0, prob.kern.sigma_out)
    return _layer_drifts(prob.kern, moments, prob.s)[m - 1]


def drift_norm_prediction(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    times: ArrayLike,
    *,
    depth: int,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    out_std: float | None = None,
    f0_train: ArrayLike | None = None,
    loss_weights: ArrayLike | None = None,
    layer: int | None = None,
) -> np.ndarray:
    """``[T, n_eval]``: the square root of :func:`drift_prediction` (same arguments).

    Conditioned on ``f0_train`` this is the limit of ``|a^m_t(x) - a^m_0(x)|``;
    averaged over initializations it is the root mean square.
    """
    sq = drift_prediction(x_train, y_train, x_eval, times, depth=depth, W_std=W_std, b_std=b_std,
                          out_std=out_std, f0_train=f0_train, loss_weights=loss_weights, layer=layer)
    return np.sqrt(np.maximum(sq, 0.0))


# --------------------------------------------------------------------------
# Per-unit statistics of the last hidden layer.


@dataclass(frozen=True)
class UnitDriftStatistics:
    """The law of ``u_i = sqrt(n) |a_{t,i}(x) - a_{0,i}(x)|`` over the units i of the last hidden layer.

    In the limit a unit with ``phi'(h_i(x)) = 0`` (probability 1/2) does not
    move; the others have ``u_i ~ |N(0, sigma^2)|`` with ``sigma`` drawn from
    the Monte Carlo sample ``scales``. All arrays are float64.

    Attributes:
      times: ``[T]``.
      scales: ``[T, n_eval, S]`` the conditional standard deviations ``sigma``.
      mean_abs: ``[T, n_eval]`` the mean of ``u_i`` over units.
      second_moment: ``[T, n_eval]`` the mean of ``u_i^2``, a Monte Carlo
        estimate of the aggregate drift ``|a_t(x) - a_0(x)|^2``.
      aggregate: ``[T, n_eval]`` the exact aggregate (:func:`drift_prediction`).
    """

    times: np.ndarray
    scales: np.ndarray
    mean_abs: np.ndarray
    second_moment: np.ndarray
    aggregate: np.ndarray

    def quantile(self, levels: ArrayLike) -> np.ndarray:
        """``[T, n_eval, Q]``: the quantiles of ``u`` at ``levels`` in ``[0, 1)`` (0 at levels <= 1/2)."""
        q = np.atleast_1d(np.asarray(levels, dtype=np.float64))
        if q.ndim != 1 or np.any(np.isnan(q)) or np.any(q < 0) or np.any(q >= 1):
            raise ValueError(f"levels must lie in [0, 1); got {levels}")
        n_times, n_eval, n_samples = self.scales.shape
        flat = self.scales.reshape(n_times * n_eval, n_samples)
        rows = max(1, _CHUNK_ENTRIES // max(n_samples * len(q), 1))
        out = np.concatenate([
            np.asarray(_mixture_quantile(jnp.asarray(flat[i:i + rows]), jnp.asarray(1.0 - q)), np.float64)
            for i in range(0, len(flat), rows)
        ]).reshape(n_times, n_eval, len(q))
        return np.where(q <= 0.5, 0.0, out)

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
        rows = max(1, _CHUNK_ENTRIES // max(n_samples * _MAX_NODES, 1))
        out = np.concatenate([
            np.asarray(_mixture_expected_max(jnp.asarray(flat[i:i + rows]), jnp.asarray(ends[i:i + rows]),
                                             float(width)), np.float64)
            for i in range(0, len(flat), rows)
        ])
        return out.reshape(n_times, n_eval)


# Trapezoid nodes of the expected maximum's integral.
_MAX_NODES = 257


def _mixture_tail(scales, a):
    """``P(u > a)``: ``scales`` ``[B, S]``, ``a`` ``[B, G]`` (``a > 0``) -> ``[B, G]``."""
    sig = scales[:, None, :]
    z = a[:, :, None] / (math.sqrt(2.0) * jnp.where(sig > 0, sig, 1.0))
    # A unit moves with probability 1/2; then P(|N(0, sigma^2)| > a) = erfc(a / (sqrt(2) sigma)).
    return 0.5 * jnp.mean(jnp.where(sig > 0, jax.scipy.special.erfc(z), 0.0), axis=-1)


@jax.jit
def _mixture_quantile(scales, tail_target):
    """``[B, Q]``: the ``a`` with ``P(u > a) = tail_target``, by bisection."""
    smax = jnp.max(scales, axis=-1)
    # P(u > a) <= exp(-a^2 / (2 smax^2)) / 2 bounds the search interval.
    hi = smax[:, None] * (jnp.sqrt(2.0 * jnp.log(jnp.maximum(0.5 / tail_target, 1.0))) + 1e-3)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = _mixture_tail(scales, mid) > tail_target
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, halve, (jnp.zeros_like(hi), hi))
    return 0.5 * (lo + hi)


@jax.jit
def _mixture_expected_max(scales, ends, width):
    """``[B]``: ``a0 + int_{a0}^{a1} (1 - (1 - P(u > a))^width) da`` with ``ends = (a0, a1)``."""
    a0, a1 = ends[:, 0], ends[:, 1]
    grid = a0[:, None] + (a1 - a0)[:, None] * jnp.linspace(0.0, 1.0, _MAX_NODES)
    tail = jnp.minimum(_mixture_tail(scales, grid), 1.0)
    integrand = -jnp.expm1(width * jnp.log1p(-tail))
    mean = jnp.sum(0.5 * (integrand[:, 1:] + integrand[:, :-1]), axis=-1) / (_MAX_NODES - 1)
    return a0 + (a1 - a0) * mean


def per_unit_drift_statistics(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    times: ArrayLike,
    *,
    depth: int,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    out_std: float | None = None,
    f0_train: ArrayLike | None = None,
    loss_weights: ArrayLike | None = None,
    num_samples: int = 4096,
    num_init_samples: int = 256,
    seed: int = 0,
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
    conditioned on ``h_i(x) > 0`` by symmetry). Without ``f0_train`` the
    residuals are random too: ``num_init_samples`` draws of ``f_0(X)`` share
    the samples, and their spread dominates the Monte Carlo error (about
    ``sqrt(2 / (K num_init_samples))`` relative on ``second_moment``); given
    ``f0_train`` the error is that of the sign patterns alone. Arguments as in
    :func:`drift_prediction`; ``second_moment``, the mean of the squared drift
    over units, estimates the aggregate.

    Returns:
      :class:`UnitDriftStatistics`.

    Cost: ``O(num_samples * n_eval * N * T * K)`` plus the aggregate's.
    """
    for value, name in ((num_samples, "num_samples"), (num_init_samples, "num_init_samples")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    prob = _setup(x_train, y_train, x_eval, times, depth, W_std, b_std, out_std, f0_train, loss_weights,
                  with_eval_nngp=True)
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
        block = max(1, _CHUNK_ENTRIES // (n_times * n * n))  # draws whose [T, N, N] moments are held at once
        for start in range(0, n_init, block):
            r = resid[start:start + block]
            moments = (r @ np.swapaxes(r, 2, 3)).reshape(-1, n, n)
            below[start:start + block] = _layer_drifts(kern, moments, prob.s)[prob.depth - 3].reshape(
                len(r), n_times, n_eval)
    # Sign patterns of h^{L-1} over (x_eval, x_train), jointly Gaussian with covariance Sigma^{L-1}.
    cov = prob.unit_nngp
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    h = rng.standard_normal((n_init * per_draw, len(cov))) @ (vec * np.sqrt(np.clip(lam, 0.0, None))).T
    h = h.reshape(n_init, per_draw, len(cov))
    scales = _unit_scales(
        jnp.asarray(h[:, :, :n_eval], dtype), jnp.asarray(h[:, :, n_eval:], dtype), kern.theta_et[-1],
        jnp.asarray(resid, dtype), jnp.asarray(below, dtype), prob.s, prob.s_out,
    )  # [T, n_eval, S]
    aggregate = _layer_drifts(kern, _residual_moments(g, prob.y, prob.f0, kern.sigma_out), prob.s)[-1]
    return UnitDriftStatistics(
        times=prob.times, scales=scales,
        mean_abs=0.5 * math.sqrt(2.0 / math.pi) * scales.mean(axis=-1),
        second_moment=0.5 * np.mean(scales**2, axis=-1), aggregate=aggregate,
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


def _unit_scales(h_e, h_t, theta_e, resid, below, s, s_out) -> np.ndarray:
    """``[T, n_eval, F * S]`` conditional standard deviations, chunked over evaluation points."""
    n_init, per_draw, n_eval = h_e.shape
    n_times, n, k = resid.shape[1], resid.shape[2], resid.shape[3]
    chunk = int(max(1, min(n_eval, _CHUNK_ENTRIES // max(n_init * per_draw * max(n, n_times * k), 1))))
    pad = (-n_eval) % chunk
    h_e = jnp.pad(h_e, ((0, 0), (0, 0), (0, pad)), constant_values=1.0)
    theta_e = jnp.pad(theta_e, ((0, pad), (0, 0)))
    below = jnp.pad(below, ((0, 0), (0, 0), (0, pad)))
    outs = []
    for start in range(0, n_eval + pad, chunk):
        sl = slice(start, start + chunk)
        outs.append(_unit_scales_chunk(h_e[:, :, sl], h_t, theta_e[sl], resid, below[:, :, sl], s, s_out))
    out = np.asarray(jnp.concatenate(outs, axis=3)[..., :n_eval], np.float64)  # [F, S, T, n_eval]
    return np.transpose(out, (2, 3, 0, 1)).reshape(n_times, n_eval, n_init * per_draw)


# --------------------------------------------------------------------------
# One-hot inputs (the skip-gram setting of Table 1).


def onehot_drift_prediction(
    center_freq: ArrayLike,
    context_dist: ArrayLike,
    eval_tokens: ArrayLike,
    times: ArrayLike,
    *,
    depth: int = 3,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    out_std: float | None = None,
    input_scale: float | None = None,
    f0: ArrayLike | None = None,
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
      depth, W_std, b_std, out_std: as in :func:`drift_prediction`.
      input_scale: the norm of a one-hot input (default ``sqrt(V)``).
      f0: ``[V, V]`` the network's outputs at initialization (row c for token
        c), or ``None`` to average over initializations.

    Returns:
      ``[T, n_eval]`` float64 predicted ``|a^{L-1}_t(x_u) - a^{L-1}_0(x_u)|^2``.
    """
    depth = _check_depth(depth)
    check_hyperparameters(W_std, b_std)
    s = _check_scale(W_std, "W_std")
    b = float(b_std)
    s_out = s if out_std is None else _check_scale(out_std, "out_std")
    p = np.asarray(center_freq, dtype=np.float64)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"center_freq must be a [V] vector with V >= 2; got shape {p.shape}")
    vocab = p.size
    p = _check_weights(p, vocab, "center_freq")
    q = _as_matrix(context_dist, vocab, "context_dist", "V")
    if q.shape != (vocab, vocab):
        raise ValueError(f"context_dist must be [V, V] = [{vocab}, {vocab}]; got {q.shape}")
    f0m = None if f0 is None else _as_matrix(f0, vocab, "f0", "V")
    if f0m is not None and f0m.shape != q.shape:
        raise ValueError(f"f0 must be [V, V] = [{vocab}, {vocab}]; got {f0m.shape}")
    tokens = np.asarray(eval_tokens)
    if tokens.ndim == 0:
        tokens = tokens[None]
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer) or np.any(tokens < 0) \
            or np.any(tokens >= vocab):
        raise ValueError(f"eval_tokens must be integers in 0..{vocab - 1}; got {eval_tokens!r}")
    scale = math.sqrt(vocab) if input_scale is None else _check_scale(input_scale, "input_scale")
    t = _check_times(times)

    # Kernels of two distinct tokens give every entry: [0, 0] the diagonal, [0, 1] the rest.
    two = np.zeros((2, vocab))
    two[0, 0] = two[1, 1] = scale
    tr = relu_kernel_trace(jnp.asarray(two, jnp.result_type(float)), depth=depth, W_std=s, b_std=b,
                           get=("nngp", "nngp_dot", "ntk", "rho"))
    nngp, sdot, ntk = (np.asarray(a, np.float64) for a in (tr.nngp, tr.nngp_dot, tr.ntk))
    rho = np.clip(np.asarray(tr.rho, np.float64)[:, 0, 1], -1.0, 1.0)
    ratio = (s_out / s) ** 2
    sig_out = ratio * (nngp[-1] - b**2) + b**2
    theta_out = ntk[-2] * ratio * sdot[-1] + sig_out  # [2, 2]

    # The five values of D^{L-1}: (j=j'=u), (one of j, j' = u), (j=j'!=u), (j!=j', both != u).
    hidden = depth - 1
    asin = np.arcsin(rho[:hidden])
    pair = 0.25 + asin / (2 * np.pi)  # P_m for two distinct tokens; 1/2 for one token
    back_same, back_diff = [s_out**2], [s_out**2]
    for m in range(hidden - 1, 0, -1):
        back_same.append(s**2 * 0.5 * back_same[-1])
        back_diff.append(s**2 * pair[m] * back_diff[-1])
    back_same, back_diff = back_same[::-1], back_diff[::-1]
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
    v1, v2, v3, v4 = d
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
