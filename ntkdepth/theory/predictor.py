"""The gradient-flow predictor of a fixed kernel and its projection operator ``P_t`` (Propositions 3
and 6; docs/predictor.md#the-predictor): finite times from an eigendecomposition in place,
``t = inf`` by Cholesky, singularity judged at the kernel's rounding
(docs/predictor.md#computing-it-at-scale).
"""

from __future__ import annotations

import jax
import numpy as np

from ntkdepth.linalg import (
    SymmetricEigen,
    cholesky,
    cholesky_solve,
    on_cpu,
    project,
    reciprocal_condition,
    spectral_apply,
    spectral_matrix,
    spectral_predict,
)

__all__ = ["GradientFlowPredictor", "SingularKernelError", "projection_spectrum"]

_CHECK_ROWS = 1024  # rows per block of the O(n^2) input checks


class SingularKernelError(ValueError):
    """The kernel matrix is singular where invertibility is needed (``t = inf``)."""


def _as_times(t) -> tuple[np.ndarray, bool]:
    _check_real(t, "t")
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or arr.size == 0 or np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"times must be a time or a non-empty 1-d array of times >= 0 "
                         f"(np.inf allowed); got {t!r}")
    return np.atleast_1d(arr), arr.ndim == 0


def _check_real(x, name: str) -> None:
    """Complex arrays are refused: a cast to float64 would drop their imaginary parts."""
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{name} is complex ({np.dtype(dtype).name}); the predictor works with "
                         f"real kernels and targets: pass {name}.real explicitly if that is meant")


def _learning_rate(value) -> float:
    """The learning rate as a float: one finite real number > 0."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.shape(value) != () or not (
            np.issubdtype(np.asarray(value).dtype, np.integer)
            or np.issubdtype(np.asarray(value).dtype, np.floating)):
        raise ValueError(f"learning_rate must be one finite number > 0 (a float such as 0.1); "
                         f"got {value!r}")
    eta = float(value)
    if not eta > 0 or not np.isfinite(eta):
        raise ValueError(f"learning_rate must be a finite number > 0; got {eta}")
    return eta


def _eps(dtype) -> float:
    """Unit roundoff of a kernel's dtype (float64's for integer kernels)."""
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


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
    """Outputs of gradient flow with kernel ``k_train`` at any times.

    Args:
      k_train: ``[n, n]`` symmetric positive semi-definite kernel ``Theta(X, X)``.
      y_train: ``[n]`` or ``[n, K]`` targets.
      learning_rate: ``eta``; time enters as ``eta t``.
      rtol: eigenvalues ``<= rtol * lambda_max`` count as zero for ``t = inf``
        (and a reciprocal condition number ``<= rtol`` on the Cholesky path);
        default ``n * eps`` with ``eps`` the unit roundoff of ``k_train``'s dtype.
      overwrite_k: let the factorizations overwrite ``k_train`` (a C- or
        Fortran-contiguous float64 array) instead of a copy: memory is then the
        kernel plus one ``[n, n]`` matrix. The first factorization consumes the
        kernel, so ask for finite times (or the spectrum) before ``t = inf``.

    ``GradientFlowPredictor.from_spec(spec, x_train, y_train)`` builds it from
    a :class:`ntkdepth.models.NetworkSpec` instead of a kernel.
    """

    def __init__(self, k_train, y_train, *, learning_rate: float = 1.0, rtol: float | None = None,
                 overwrite_k: bool = False):
        k_in = k_train if isinstance(k_train, np.ndarray) else np.asarray(k_train)
        _check_real(k_in, "k_train")
        _check_real(y_train, "y_train")
        eta = _learning_rate(learning_rate)
        if k_in.ndim != 2 or k_in.shape[0] != k_in.shape[1] or k_in.shape[0] == 0:
            raise ValueError(f"k_train must be a square [n, n] matrix with n >= 1; got shape {k_in.shape}")
        self.eps = _eps(k_in.dtype)
        k = np.asarray(k_in, dtype=np.float64)
        n = k.shape[0]
        self.n = n
        self._norm1, kmax, asym = self._check_kernel(k)
        if asym > np.sqrt(self.eps) * max(kmax, 1e-300):
            raise ValueError(
                f"k_train is not symmetric: largest |K - K^T| = {asym:.3g} against max |K| = {kmax:.3g} "
                f"(allowed: sqrt(eps) max |K| for {k_in.dtype}); pass a symmetric kernel, e.g. (K + K.T) / 2"
            )
        y = np.asarray(y_train, dtype=np.float64)
        self._vector_targets = y.ndim == 1
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[0] != n:
            raise ValueError(f"y_train must be [n] or [n, K] with n = {n}; got {np.shape(y_train)}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y_train contains NaN or inf")
        if rtol is not None and not 0 <= rtol < 1:
            raise ValueError(f"rtol must be in [0, 1) or None (n * eps); got {rtol}")
        self.eta = eta
        self.y = y
        self.rtol = float(rtol) if rtol is not None else n * self.eps
        # The kernel in Fortran order (a C-contiguous symmetric K is its own transpose).
        owned = k is not k_in  # a float64 copy made here
        if k.flags.f_contiguous:
            self._k = k
        elif k.flags.c_contiguous:
            self._k = k.T
        else:
            self._k, owned = np.asfortranarray(k), True
        # Never write into a read-only buffer (e.g. a JAX array seen through NumPy).
        self._overwrite = owned or (bool(overwrite_k) and self._k.flags.writeable)
        self._eig: SymmetricEigen | None = None
        self._z_targets = None  # V^T Y for the predictor's own targets, on first use
        self._chol: np.ndarray | None = None
        self.spec = self._kernel_fn = self._x_train = None  # set by from_spec

    @classmethod
    def from_spec(cls, spec, x_train, y_train, *, learning_rate: float = 1.0, rtol: float | None = None,
                  dtype="float64") -> GradientFlowPredictor:
        """The predictor of the infinite-width network ``spec`` trained on ``(x_train, y_train)``.

        ``k_train = spec.kernel_fn()(x_train, get="ntk")`` (``[n, n]``, in
        ``dtype``, float64 by default), so the kernel is the limit of the
        NTK of ``spec.model(...)`` by construction. :meth:`predict_at` then
        predicts at new inputs without a kernel argument. ``spec``: a
        :class:`ntkdepth.models.NetworkSpec` with an infinite-width NTK (ReLU,
        ``"ntk"`` parameterization); ``x_train``: ``[n, n0]``.
        """
        from ntkdepth.models.spec import NetworkSpec

        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"spec must be a NetworkSpec; got {type(spec).__name__}")
        kernel_fn = spec.kernel_fn(dtype=dtype)
        pred = cls(np.array(kernel_fn(x_train, get="ntk"), dtype=np.float64), y_train,
                   learning_rate=learning_rate, rtol=rtol)
        pred.spec, pred._kernel_fn, pred._x_train = spec, kernel_fn, x_train
        return pred

    def predict_at(self, t, x_test, f0_train=None, f0_test=None) -> np.ndarray:
        """:meth:`predict` at inputs ``x_test`` ``[m, n0]``, for a predictor made by :meth:`from_spec`.

        ``Theta(x_test, X)`` comes from the spec's kernel function.
        """
        if self._kernel_fn is None:
            raise ValueError(
                "predict_at needs the network that made the kernel: build the predictor with "
                "GradientFlowPredictor.from_spec(spec, x_train, y_train), or pass Theta(x, X) to predict"
            )
        k = np.asarray(self._kernel_fn(x_test, self._x_train, get="ntk"), dtype=np.float64)
        return self.predict(t, k, f0_train, f0_test)

    @staticmethod
    def _check_kernel(k) -> tuple[np.ndarray, float, float]:
        """Row block by row block: finiteness, 1-norm (column sums), max |K|, max |K - K^T|."""
        n = k.shape[0]
        colsum = np.zeros(n)
        kmax = asym = 0.0
        for i in range(0, n, _CHECK_ROWS):
            rows = k[i:i + _CHECK_ROWS]
            if not np.all(np.isfinite(rows)):
                raise ValueError("k_train contains NaN or inf; compute the kernel again (in float64)")
            a = np.abs(rows)
            colsum += a.sum(axis=0)
            kmax = max(kmax, float(a.max()))
            asym = max(asym, float(np.max(np.abs(rows - k[:, i:i + _CHECK_ROWS].T))))
        return colsum, kmax, asym

    # -- factorizations ------------------------------------------------------

    def _kernel_for_factorization(self, what: str) -> np.ndarray:
        if self._k is None:
            raise RuntimeError(
                f"the {what} needs the training kernel, which an earlier factorization overwrote "
                "(overwrite_k=True): ask for finite times before t = inf, or pass overwrite_k=False"
            )
        a = self._k if self._overwrite else np.array(self._k, order="F")
        if self._overwrite:
            self._k = None
        return a

    def _spectral(self) -> SymmetricEigen:
        if self._eig is None:
            eig = SymmetricEigen(self._kernel_for_factorization("eigendecomposition"))
            lmax = float(np.max(np.abs(eig.w)))
            psd_tol = max(self.n * self.eps, np.sqrt(self.eps)) * lmax
            if eig.w[0] < -psd_tol:
                raise ValueError(
                    f"k_train is not positive semi-definite: lambda_min = {eig.w[0]:.3e} against "
                    f"lambda_max = {eig.w[-1]:.3e}, beyond rounding (allowed down to -{psd_tol:.2e}); "
                    "a kernel matrix must be positive semi-definite: check how it was computed"
                )
            self._eig = eig
            self._chol = None  # the spectrum serves t = inf from now on
        return self._eig

    @property
    def eigenvalues(self) -> np.ndarray:
        """``[n]`` eigenvalues of ``k_train``, ascending."""
        return self._spectral().w

    @property
    def eigenvectors(self) -> np.ndarray:
        """``[n, n]`` orthonormal eigenvectors (columns)."""
        return self._spectral().vectors

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
        lmin, lmax = self.lambda_min, self.lambda_max
        if lmin <= self.rtol * abs(lmax):
            raise SingularKernelError(
                f"the training kernel is singular within rounding (lambda_min = {lmin:.3e} <= "
                f"rtol * lambda_max = {self.rtol:.2e} * {lmax:.3e}, rtol = n eps for n = {self.n} "
                "unless given): t = inf needs an invertible kernel; use a finite time, or distinct, "
                "non-colinear inputs, or a deeper kernel, or a float64 kernel"
            )

    def _cholesky(self) -> np.ndarray:
        if self._chol is None:
            a = self._kernel_for_factorization("Cholesky factorization")
            c, info = cholesky(a)
            if info != 0:
                raise SingularKernelError(
                    f"the training kernel is not positive definite (Cholesky fails at row {info} of "
                    f"{self.n}): singular within rounding or indefinite; t = inf needs an invertible "
                    "kernel; use a finite time, or distinct, non-colinear inputs, or a float64 kernel"
                )
            anorm = float(np.max(self._norm1))
            rcond = reciprocal_condition(c, anorm)
            if not rcond > self.rtol:
                raise SingularKernelError(
                    f"the training kernel is singular within rounding (reciprocal condition number "
                    f"{rcond:.3e} <= rtol = {self.rtol:.2e}, n eps for n = {self.n} unless given): "
                    "t = inf needs an invertible kernel; use a finite time, or distinct, non-colinear "
                    "inputs, or a float64 kernel"
                )
            self._chol = c
        return self._chol

    def _project(self, residual: np.ndarray) -> jax.Array:
        """``[n, K]``: ``V^T r``, kept for the predictor's own targets (``residual is self.y``)."""
        eig = self._spectral()
        if residual is not self.y:
            return project(eig.vt, residual)
        if self._z_targets is None:
            self._z_targets = project(eig.vt, residual)
        return self._z_targets

    def _solve(self, r: np.ndarray) -> np.ndarray:
        """``K^{-1} r`` for ``r [n, c]``: from the spectrum if computed, else by Cholesky."""
        if self._eig is not None:
            self._check_invertible()
            eig = self._eig
            return np.array(spectral_apply(eig.vt, 1.0 / eig.w[None, :], self._project(r)).T)
        return cholesky_solve(self._cholesky(), r)

    # -- the projection ------------------------------------------------------

    def projection_eigenvalues(self, t) -> np.ndarray:
        """``[T, n]`` eigenvalues ``(1 - exp(-eta t lambda)) / lambda`` of ``P_t``."""
        times, _ = _as_times(t)
        if np.any(np.isinf(times)):
            self._check_invertible()
        return projection_spectrum(self.eigenvalues, times, self.eta)

    def projection(self, t) -> np.ndarray:
        """``P_t`` as a ``[n, n]`` matrix (or ``[T, n, n]`` for an array of times)."""
        p = self.projection_eigenvalues(t)
        vt = self._spectral().vt
        mats = np.stack([np.asarray(spectral_matrix(vt, pi)) for pi in p])
        return mats[0] if np.ndim(t) == 0 else mats

    def projection_norm(self, t) -> np.ndarray | float:
        """Spectral norm of ``P_t``: ``max_i (1 - exp(-eta t lambda_i)) / lambda_i``."""
        norms = np.max(np.abs(self.projection_eigenvalues(t)), axis=1)
        return float(norms[0]) if np.ndim(t) == 0 else norms

    # -- predictions ---------------------------------------------------------

    def coefficients(self, t, f0_train=None) -> np.ndarray:
        """``[T, n, K]``: ``P_t (Y - f_0(X))`` (``f_0 = 0`` for the mean predictor)."""
        times, _ = _as_times(t)
        residual = self.y if f0_train is None else self.y - self._targets_like(f0_train, "f0_train", self.n)
        n, k = residual.shape
        out = np.empty((len(times), n, k))
        finite = np.isfinite(times)
        if finite.any():
            eig = self._spectral()
            p = projection_spectrum(eig.w, times[finite], self.eta)  # [Tf, n]
            moved = spectral_apply(eig.vt, p, self._project(residual))  # [Tf * K, n]
            out[finite] = np.asarray(moved).reshape(-1, k, n).transpose(0, 2, 1)
        if not finite.all():
            out[~finite] = self._solve(residual)
        return out

    def predict_train(self, t, f0_train=None) -> np.ndarray:
        """``f_t(X)``: ``[T, n, K]`` (shapes follow ``t`` and ``y_train``); ``Y`` at ``t = inf``."""
        times, scalar = _as_times(t)
        f0 = np.zeros_like(self.y) if f0_train is None else self._targets_like(f0_train, "f0_train", self.n)
        n, k = self.y.shape
        out = np.empty((len(times), n, k))
        finite = np.isfinite(times)
        if finite.any():
            eig = self._spectral()
            residual = self.y if f0_train is None else self.y - f0
            growth = -np.expm1(-self.eta * times[finite][:, None] * eig.w[None, :])  # [Tf, n]
            moved = np.asarray(spectral_apply(eig.vt, growth, self._project(residual)))  # [Tf * K, n]
            out[finite] = f0 + moved.reshape(-1, k, n).transpose(0, 2, 1)
        if not finite.all():
            # Interpolation, once the kernel is known to be invertible.
            if self._eig is not None:
                self._check_invertible()
            else:
                self._cholesky()
            out[~finite] = self.y
        return self._shape(out, scalar)

    def predict(self, t, k_test_train, f0_train=None, f0_test=None) -> np.ndarray:
        """``f_t(x) = f_0(x) + Theta(x, X) P_t (Y - f_0(X))`` for test inputs.

        Args:
          t: a time or an array of times (``np.inf`` allowed).
          k_test_train: ``[m, n]`` kernel ``Theta(x, X)``.
          f0_train, f0_test: the network at initialization on ``X`` (``[n]`` or
            ``[n, K]``) and on the test inputs (``[m]`` or ``[m, K]``, matching
            ``y_train``); both omitted gives the mean predictor.
        Returns:
          ``[m, K]`` (or ``[T, m, K]``; ``K`` dropped for ``[n]`` targets).
        """
        if (f0_train is None) != (f0_test is None):
            raise ValueError("give both f0_train and f0_test, or neither (the mean predictor)")
        times, scalar = _as_times(t)
        _check_real(k_test_train, "k_test_train")
        shape = np.shape(k_test_train)
        if len(shape) != 2 or shape[1] != self.n:
            raise ValueError(f"k_test_train must be [m, {self.n}]; got {shape}")
        bad_k = "k_test_train contains NaN or inf; compute the kernel again (in float64)"
        f0t = None if f0_test is None else self._targets_like(f0_test, "f0_test", shape[0])
        if np.isfinite(times).all():
            # One compiled program: k_test V diag(p_t) V^T r (V^T r kept for the targets).
            residual = self.y if f0_train is None else self.y - self._targets_like(f0_train, "f0_train", self.n)
            k = k_test_train if on_cpu(k_test_train) else np.asarray(k_test_train, dtype=np.float64)
            eig = self._spectral()
            p = projection_spectrum(eig.w, times, self.eta)  # [T, n]
            kk = residual.shape[1]
            out = np.array(spectral_predict(eig.vt, p, self._project(residual), k))
            # A NaN or inf in k_test reaches every output of its row (the coefficients are finite):
            # the [m, n] kernel is read again only then.
            if not np.all(np.isfinite(out)) and not np.all(np.isfinite(np.asarray(k_test_train))):
                raise ValueError(bad_k)
            out = out.reshape(-1, len(times), kk).transpose(1, 0, 2)
        else:
            k = np.asarray(k_test_train, dtype=np.float64)
            if not np.all(np.isfinite(k)):
                raise ValueError(bad_k)
            coeff = self.coefficients(t, f0_train)  # [T, n, K]
            T, n, kk = coeff.shape
            out = (k @ coeff.transpose(1, 0, 2).reshape(n, T * kk)).reshape(-1, T, kk).transpose(1, 0, 2)
        if f0t is not None:
            out = out + f0t
        return self._shape(out, scalar)

    def _targets_like(self, f0, name, rows):
        _check_real(f0, name)
        f0 = np.asarray(f0, dtype=np.float64)
        f0 = f0[:, None] if f0.ndim == 1 else f0
        want = (rows, self.y.shape[1])
        if f0.shape != want:
            alt = f" (or [{rows}])" if want[1] == 1 else ""
            raise ValueError(
                f"{name} must have shape [{rows}, {want[1]}]{alt}: one row per input of its kernel and "
                f"the columns of y_train, exactly (no broadcasting); got {np.shape(f0)}"
            )
        if not np.all(np.isfinite(f0)):
            raise ValueError(f"{name} contains NaN or inf")
        return f0

    def _shape(self, out, scalar):
        if self._vector_targets:
            out = out[..., 0]
        return out[0] if scalar else out
