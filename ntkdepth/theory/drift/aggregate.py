"""The aggregate drift ``|a^m_t(x) - a^m_0(x)|^2`` of a hidden layer in the infinite-width limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.validation import check_inputs
from ntkdepth.theory.drift.kernels import (
    LayerKernels,
    layer_drifts,
    network_kernels,
    residual_integral_map,
    residual_moments,
)
from ntkdepth.theory.drift.validation import (
    as_matrix,
    check_layer,
    check_network,
    check_times,
    check_weights,
)

if TYPE_CHECKING:
    from ntkdepth.models.spec import NetworkSpec

__all__ = ["drift_norm_prediction", "drift_prediction"]

# The keywords that describe the network and the training problem, shared by the predictions.
PROBLEM_KEYWORDS = ("spec", "depth", "W_std", "b_std", "out_std", "activation", "f0_train", "loss_weights")


class Problem(NamedTuple):
    """A drift problem after its checks: the training inputs with a positive weight and their kernels."""

    times: np.ndarray
    y: np.ndarray       # [N+, K]  targets of the training inputs with w > 0
    f0: np.ndarray | None
    weights: np.ndarray  # [N+]
    kern: LayerKernels | None  # None when no training input has a positive weight
    s: float
    s_out: float
    depth: int
    activation: Activation
    x_train: jax.Array  # [N+, n0]
    x_eval: jax.Array
    unit_nngp: np.ndarray | None  # Sigma^{L-1} over (x_eval, x_train), for per-unit statistics


def setup(x_train, y_train, x_eval, times, *, spec=None, depth=None, W_std=None, b_std=None, out_std=None,
          activation=None, f0_train=None, loss_weights=None, with_eval_nngp=False) -> Problem:
    """The checked arguments and the kernels of a drift problem (arguments of :func:`drift_prediction`)."""
    depth, s, b, s_out, act = check_network(depth, W_std, b_std, out_std, spec, activation)
    try:
        x_train, x_eval = check_inputs(x_train, x_eval, b_std=b)
    except ValueError as err:  # name the arguments as the caller knows them
        raise ValueError(str(err).replace("x1", "x_train").replace("x2", "x_eval")) from None
    n = x_train.shape[0]
    y = as_matrix(y_train, n, "y_train", "N")
    f0 = None if f0_train is None else as_matrix(f0_train, n, "f0_train", "N")
    if f0 is not None and f0.shape != y.shape:
        raise ValueError(f"f0_train must have the shape of y_train {y.shape}; got {f0.shape}")
    w = check_weights(loss_weights, n)
    t = check_times(times)
    # Inputs with zero weight do not enter the loss: R_j = 0 for them.
    keep = np.flatnonzero(w > 0)
    x_train = x_train[keep]
    y, w = y[keep], w[keep]
    f0 = None if f0 is None else f0[keep]
    kern, nngp = None, None
    if keep.size:
        kern = network_kernels(x_train, x_eval, depth, s, b, s_out, act, with_eval_nngp=with_eval_nngp)
        if with_eval_nngp:
            kern, nngp = kern
    return Problem(t, y, f0, w, kern, s, s_out, depth, act, x_train, x_eval, nngp)


def drift_prediction(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_eval: ArrayLike,
    times: ArrayLike,
    *,
    spec: NetworkSpec | None = None,
    depth: int | None = None,
    W_std: float | None = None,
    b_std: float | None = None,
    out_std: float | None = None,
    activation: str | Activation | None = None,
    f0_train: ArrayLike | None = None,
    loss_weights: ArrayLike | None = None,
    layer: int | None = None,
) -> np.ndarray:
    """Infinite-width limit of ``|a^m_t(x) - a^m_0(x)|^2`` for each evaluation input.

    The network is that of ``docs/networks.md``: ``depth`` weight layers at NTK
    parameterization, weight scale ``W_std`` in layers ``1..depth-1`` and
    ``out_std`` in the last, bias scale ``b_std`` everywhere, all parameters
    ``N(0, 1)``, an activation of
    :data:`~ntkdepth.theory.drift.expectations.DRIFT_ACTIVATIONS` (ReLU by
    default; docs/drift.md#activations); given either as ``spec`` or as the
    keywords ``depth``, ``W_std``, ``b_std``, ``out_std``, ``activation``. It is trained by gradient flow on
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
      spec: a :class:`ntkdepth.models.NetworkSpec` (``"ntk"``
        parameterization, ``depth >= 2``) in place of the five keywords below.
      depth: ``L >= 2`` weight layers (``L - 1`` hidden layers).
      W_std, b_std: weight and bias scales ``s`` (default ``sqrt(2)``) and ``b`` (default 0).
      out_std: the last layer's weight scale ``s_out`` (default ``W_std``).
      activation: a name of
        :data:`~ntkdepth.theory.drift.expectations.DRIFT_ACTIVATIONS` or an
        :class:`~ntkdepth.kernels.Activation` of those families (default ReLU).
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
        ``depth < 2``, bad scales or ``layer``, a spec together with the
        keywords, a parameterization other than NTK or an activation the
        drift does not cover; :class:`~ntkdepth.theory.SingularKernelError` for
        ``t = inf`` with a singular kernel.

    Cost: ``O(depth * n_eval * N^2 * T)``, in chunks of evaluation points.
    """
    prob = setup(x_train, y_train, x_eval, times, spec=spec, depth=depth, W_std=W_std, b_std=b_std,
                 out_std=out_std, activation=activation, f0_train=f0_train, loss_weights=loss_weights)
    m = check_layer(layer, prob.depth)
    if prob.kern is None:
        return np.zeros((len(prob.times), prob.x_eval.shape[0]))
    g = residual_integral_map(prob.kern.theta_out, prob.weights, prob.times)
    moments = residual_moments(g, prob.y, prob.f0, prob.kern.sigma_out)
    return layer_drifts(prob.kern, moments, prob.s)[m - 1]


def drift_norm_prediction(
    x_train: ArrayLike, y_train: ArrayLike, x_eval: ArrayLike, times: ArrayLike, **network
) -> np.ndarray:
    """``[T, n_eval]``: the square root of :func:`drift_prediction`.

    Takes the same arguments (``network``: its keyword arguments ``spec``,
    ``depth``, ``W_std``, ``b_std``, ``out_std``, ``activation``, ``f0_train``,
    ``loss_weights``, ``layer``). Conditioned on ``f0_train`` this is the limit of
    ``|a^m_t(x) - a^m_0(x)|``; averaged over initializations it is the root
    mean square.
    """
    sq = drift_prediction(x_train, y_train, x_eval, times, **network)
    return np.sqrt(np.maximum(sq, 0.0))
