"""Argument checks of the drift predictions, on top of :mod:`ntkdepth.kernels.validation`.

Each check returns the value in the form the computations use (float64
arrays, Python numbers) or raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math

import numpy as np

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.validation import check_hyperparameters
from ntkdepth.theory.drift.expectations import drift_activation

__all__ = ["as_matrix", "check_depth", "check_layer", "check_network", "check_scale", "check_times",
           "check_weights"]


def check_times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"times must be a number or a 1-D array; got shape {t.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError(f"times must be >= 0 (np.inf allowed); got {t}")
    return t


def check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth must be an integer >= 2 (at least one hidden layer); got {depth!r}")
    return int(depth)


def check_scale(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def as_matrix(a, rows: int, name: str, rows_name: str) -> np.ndarray:
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


def check_weights(loss_weights, n: int, name: str = "loss_weights") -> np.ndarray:
    if loss_weights is None:
        return np.ones(n)
    w = np.asarray(loss_weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must be a [{n}] vector (one weight per training input); got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {w}")
    return w


def check_network(depth=None, W_std=None, b_std=None, out_std=None, spec=None, activation=None, *,
                  purpose: str = "the drift prediction") -> tuple[int, float, float, float, Activation]:
    """``(depth, s, b, s_out, activation)`` of the network: ``depth >= 2`` weight layers, scales
    ``W_std > 0``, ``b_std >= 0`` and ``out_std > 0``, an activation the drift covers
    (:func:`~ntkdepth.theory.drift.expectations.drift_activation`).

    The network comes either from ``spec`` (a :class:`ntkdepth.models.NetworkSpec`
    at NTK parameterization) or from the keywords, never both; in the keyword form
    ``W_std`` defaults to ``sqrt(2)``, ``b_std`` to 0, ``out_std`` to ``W_std``
    (``None`` for each) and ``activation`` to ReLU.
    """
    if spec is not None:
        from ntkdepth.models.spec import network_arguments  # only a caller holding a spec pays for it

        depth, W_std, b_std, out_std, activation = network_arguments(
            spec, depth=depth, W_std=W_std, b_std=b_std, out_std=out_std, activation=activation, purpose=purpose)
    elif depth is None:
        raise ValueError(f"{purpose} needs the network: pass spec=NetworkSpec(...) or depth=")
    W_std = math.sqrt(2.0) if W_std is None else W_std
    b_std = 0.0 if b_std is None else b_std
    depth = check_depth(depth)
    check_hyperparameters(W_std, b_std)
    s = check_scale(W_std, "W_std")
    b = float(b_std)
    s_out = s if out_std is None else check_scale(out_std, "out_std")
    act = drift_activation("relu" if activation is None else activation, purpose)
    return depth, s, b, s_out, act


def check_layer(layer, depth: int) -> int:
    """A hidden layer ``1 <= layer <= depth - 1``; ``None`` is the last one."""
    if layer is None:
        return depth - 1
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= depth - 1:
        raise ValueError(f"layer must be a hidden layer, an integer in 1..{depth - 1}; got {layer!r}")
    return int(layer)
