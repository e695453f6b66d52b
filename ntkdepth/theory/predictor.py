"""The gradient-flow predictor of a kernel (Propositions 3 and 6; MATH.md, section 4).

Gradient flow on ``1/2 sum_i |f(x_i) - y_i|^2`` with a constant kernel
``Theta`` and learning rate ``eta`` gives (Remark 1: no ``1/n`` in the
exponent)

    f_t(x) = f_0(x) + Theta(x, X) P_t (Y - f_0(X)),
    P_t    = Theta(X, X)^{-1} (I - exp(-eta t Theta(X, X))),

and, with ``f_0`` averaged over initializations, the mean predictor
``mu_t(x) = Theta(x, X) P_t Y``. Everything here comes from one
eigendecomposition ``Theta = V diag(lambda) V^T``: ``P_t`` has eigenvalues
``(1 - exp(-eta t lambda)) / lambda <= min(eta t, 1 / lambda)``, computed
with ``expm1`` so that tiny eigenvalues give ``eta t`` rather than 0/0. No
inverse is ever formed; ``t = inf`` needs an invertible kernel and says so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GradientFlowPredictor", "SingularKernelError", "projection_spectrum"]


class SingularKernelError(ValueError):
    """The kernel matrix is singular where invertibility is needed (``t = inf``)."""


def _as_times(t) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, dtype=np.float64)
    scalar = arr.ndim == 0
    arr = np.atleast_1d(arr)
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"times must be >= 0 (np.inf allowed); got {arr}")
    return arr, scalar


def projection_spectrum(eigenvalues, times, learning_rate: float = 1.0) -> np.ndarray:
    """``[T, n]``: ``(1 - exp(-eta t lambda)) / lambda`` for each time and eigenvalue.

    ``expm1`` keeps it accurate for tiny ``eta t lambda`` (it tends to ``eta t``,
    also for eigenvalues that are 0 or slightly negative from rounding);
    ``t = inf`` gives ``1 / lambda``.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    out = np.empty((len(times), len(lam)))
    for i, ti in enumerate(times):
        if np.isinf(ti):
            out[i] = 1.0 / lam
            continue
        s = learning_rate * ti
        x = s * lam
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = -np.expm1(-x) / lam
        out[i] = np.where(np.abs(x) < 1e-300, s, ratio)
    return out


class GradientFlowPredictor:
    """Outputs of gradient flow with kernel ``k_train`` at any times, from one ``eigh``.

    Args:
      k_train: ``[n, n]`` symmetric kernel ``Theta(X, X)``.
      y_train: ``[n]`` or ``[n, K]`` targets.
      learning_rate: ``eta``; time enters as ``eta t``.
      rtol: eigenvalues below ``rtol * lambda_max`` count as zero for ``t = inf``.
    """

    def __init__(self, k_train, y_train, *, learning_rate: float = 1.0, rtol: float = 1e-13):
        k = np.asarray(k_train, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"k_train must be a square [n, n] matrix; got shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise ValueError("k_train contains NaN or inf")
        asym = np.max(np.abs(k - k.T)) if k.size else 0.0
        if asym > 1e-8 * max(np.max(np.abs(k)), 1e-300):
            raise ValueError(f"k_train is not symmetric (largest |K - K^T| = {asym:.3g})")
        y = np.asarray(y_train, dtype=np.float64)
        self._vector_targets = y.ndim == 1
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[0] != k.shape[0]:
            raise ValueError(f"y_train must be [n] or [n, K] with n = {k.shape[0]}; got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y_train contains NaN or inf")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
        self.eta = float(learning_rate)
        self.y = y
        self.eigenvalues, self.eigenvectors = np.linalg.eigh(0.5 * (k + k.T))
        self.rtol = rtol

    # -- the spectrum --------------------------------------------------------

    @property
    def lambda_min(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def condition_number(self) -> float:
        return float(self.lambda_max / self.lambda_min) if self.lambda_min > 0 else np.inf

    def _check_invertible(self):
        if self.lambda_min <= self.rtol * abs(self.lambda_max):
            raise SingularKernelError(
                f"the training kernel is singular (lambda_min = {self.lambda_min:.3e}, "
                f"lambda_max = {self.lambda_max:.3e}): t = inf needs an invertible kernel; "
                "use a finite time, or distinct, non-colinear inputs on the sphere"
            )

    def projection_eigenvalues(self, t) -> np.ndarray:
        """``[T, n]`` eigenvalues ``(1 - exp(-eta t lambda)) / lambda`` of ``P_t``."""
        times, _ = _as_times(t)
        if np.any(np.isinf(times)):
            self._check_invertible()
        return projection_spectrum(self.eigenvalues, times, self.eta)

    def projection(self, t) -> np.ndarray:
        """``P_t`` as a ``[n, n]`` matrix (or ``[T, n, n]`` for an array of times)."""
        p = self.projection_eigenvalues(t)
        v = self.eigenvectors
        mats = np.einsum("ij,tj,kj->tik", v, p, v)
        return mats[0] if np.ndim(t) == 0 else mats

    def projection_norm(self, t) -> np.ndarray | float:
        """Spectral norm of ``P_t``: ``max_i (1 - exp(-eta t lambda_i)) / lambda_i``."""
        norms = np.max(np.abs(self.projection_eigenvalues(t)), axis=1)
        return float(norms[0]) if np.ndim(t) == 0 else norms

    # -- predictions ---------------------------------------------------------

    def coefficients(self, t, f0_train=None) -> np.ndarray:
        """``[T, n, K]``: ``P_t (Y - f_0(X))`` (``f_0 = 0`` for the mean predictor)."""
        residual = self.y if f0_train is None else self.y - self._targets_like(f0_train, "f0_train")
        p = self.projection_eigenvalues(t)
        proj = self.eigenvectors.T @ residual  # [n, K]
        return np.einsum("ij,tj,jk->tik", self.eigenvectors, p, proj)

    def predict_train(self, t, f0_train=None) -> np.ndarray:
        """``f_t(X)``: ``[T, n, K]`` (shapes follow ``t`` and ``y_train``)."""
        times, scalar = _as_times(t)
        f0 = 0.0 if f0_train is None else self._targets_like(f0_train, "f0_train")
        residual = self.y - f0
        proj = self.eigenvectors.T @ residual
        if np.any(np.isinf(times)):
            self._check_invertible()
        finite = np.where(np.isinf(times), 0.0, times)
        decay = np.exp(-self.eta * finite[:, None] * self.eigenvalues[None, :])
        decay[np.isinf(times)] = 0.0
        out = f0 + np.einsum("ij,tj,jk->tik", self.eigenvectors, 1.0 - decay, proj)
        return self._shape(out, scalar)

    def predict(self, t, k_test_train, f0_train=None, f0_test=None) -> np.ndarray:
        """``f_t(x) = f_0(x) + Theta(x, X) P_t (Y - f_0(X))`` for test inputs.

        Args:
          t: a time or an array of times (``np.inf`` allowed).
          k_test_train: ``[m, n]`` kernel ``Theta(x, X)``.
          f0_train, f0_test: the network at initialization on ``X`` (``[n]`` or
            ``[n, K]``) and on the test inputs (``[m]`` or ``[m, K]``); both
            omitted gives the mean predictor.
        Returns:
          ``[m, K]`` (or ``[T, m, K]``; ``K`` dropped for ``[n]`` targets).
        """
        if (f0_train is None) != (f0_test is None):
            raise ValueError("give both f0_train and f0_test, or neither (the mean predictor)")
        k = np.asarray(k_test_train, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != self.y.shape[0]:
            raise ValueError(f"k_test_train must be [m, {self.y.shape[0]}]; got {k.shape}")
        _, scalar = _as_times(t)
        coeff = self.coefficients(t, f0_train)
        out = np.einsum("mi,tik->tmk", k, coeff)
        if f0_test is not None:
            f0t = np.asarray(f0_test, dtype=np.float64)
            out = out + (f0t[:, None] if f0t.ndim == 1 else f0t)
        return self._shape(out, scalar)

    def _targets_like(self, f0, name):
        f0 = np.asarray(f0, dtype=np.float64)
        f0 = f0[:, None] if f0.ndim == 1 else f0
        if f0.shape != self.y.shape:
            raise ValueError(f"{name} must have the shape of y_train {self.y.shape}; got {f0.shape}")
        return f0

    def _shape(self, out, scalar):
        if self._vector_targets:
            out = out[..., 0]
        return out[0] if scalar else out
