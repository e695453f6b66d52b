"""The gradient-flow predictor of a fixed kernel and its projection operator ``P_t`` (Propositions 3
and 6; docs/predictor.md#the-predictor): finite times from an eigendecomposition in place,
``t = inf`` by Cholesky, singularity judged at the kernel's rounding
(docs/predictor.md#computing-it-at-scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from scipy.linalg import lapack

__all__ = ["GradientFlowPredictor", "SingularKernelError", "projection_spectrum"]

_BLOCK = 64  # Householder reflectors applied together (compact WY form)
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


class _Eigen:
    """``K = V diag(w) V^T`` from ``K = Q T Q^T`` and ``T = S diag(w) S^T``, ``V = Q S`` formed in ``S``.

    Args:
      a: ``[n, n]`` symmetric float64, Fortran-contiguous; overwritten by the
        Householder vectors of ``Q`` (LAPACK ``dsytrd``, lower), then released.
    """

    def __init__(self, a: np.ndarray):
        n = a.shape[0]
        self.n = n
        if n == 1:
            self.w, v = a[0].copy(), np.ones((1, 1))
        else:
            self.w, v = self._factorize(a)
        del a  # the reflectors: the kernel's storage (or its copy) is released here
        with jax.enable_x64(True):
            # V^T is C-contiguous: no copy when its buffer is aligned for XLA, else one.
            self.vt = jax.device_put(v.T, _CPU())
        del v
        self.vectors = np.asarray(self.vt).T  # read-only view of the JAX buffer
        self.z_targets = None  # V^T Y for the predictor's own targets, on first use

    @staticmethod
    def _factorize(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = a.shape[0]
        lwork, info = lapack.dsytrd_lwork(n, lower=1)
        a, d, e, tau, info = lapack.dsytrd(a, lower=1, lwork=int(lwork), overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"tridiagonal reduction failed (LAPACK dsytrd info = {info})")
        w, s = scipy.linalg.eigh_tridiagonal(d, e, lapack_driver="stemr", check_finite=False)
        return w, _apply_q(a, tau, np.asfortranarray(s))  # V = Q S, in the storage of S


def _CPU():
    return jax.devices("cpu")[0]


def _on_cpu(a) -> bool:
    """A JAX array held on the CPU alone (passed to the compiled products as it is)."""
    return isinstance(a, jax.Array) and all(d.platform == "cpu" for d in a.devices())


def _x64(fn):
    """``fn`` jitted, called in x64 mode (the products stay float64 whatever JAX's setting)."""
    jitted = jax.jit(fn)

    def call(*args):
        with jax.enable_x64(True):
            return jitted(*args)

    return call


@_x64
def _vt_dot(vt, r):
    """``[n, c]``: ``V^T r``."""
    return vt @ r


def _spectral_rows(vt, p, z):
    """``[T * K, n]``: ``(V diag(p_t) z)^T`` for the rows ``p_t`` of ``p [T, n]``, ``z [n, K]``.

    Formed as ``X^T V^T`` with ``V^T`` in row-major order (XLA's CPU matrix
    product is faster on it than on ``V`` read transposed).
    """
    n = z.shape[0]
    return (p[:, None, :] * z.T[None, :, :]).reshape(-1, n) @ vt


@_x64
def _spectral_apply(vt, p, z):
    """``[T * K, n]``: ``(V diag(p_t) z)^T``, rows ``(t, k)`` (:func:`_spectral_rows`)."""
    return _spectral_rows(vt, p, z)


@_x64
def _spectral_predict(vt, p, z, k_test):
    """``[m, T * K]``: ``k_test V diag(p_t) z``, ``k_test [m, n]``, columns ``(t, k)``."""
    return jax.lax.dot_general(k_test.astype(vt.dtype), _spectral_rows(vt, p, z), (((1,), (1,)), ((), ())))


@_x64
def _spectral_matrix(vt, p):
    """``[n, n]``: ``V diag(p) V^T``."""
    return (vt.T * p) @ vt


def _apply_q(a: np.ndarray, tau: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``Q z`` in place, ``Q = H_0 H_1 ... H_{n-2}`` from ``dsytrd`` (lower), 64 reflectors at a time.

    Each block of reflectors is applied as ``I - Y T Y^T`` (compact WY form: three
    matrix products); ``Y [n - j0 - 1, b]`` holds reflector ``i`` in column
    ``i - j0``: 1 in row ``i - j0``, ``a[i+2:, i]`` below it.
    """
    n = a.shape[0]
    for j0 in reversed(range(0, n - 1, _BLOCK)):
        j1 = min(j0 + _BLOCK, n - 1)
        b = j1 - j0
        y = np.zeros((n - j0 - 1, b), order="F")
        for c, i in enumerate(range(j0, j1)):
            y[i - j0, c] = 1.0
            y[i - j0 + 1:, c] = a[i + 2:, i]
        t = np.zeros((b, b))
        for c in range(b):
            t[c, c] = tau[j0 + c]
            if c:
                t[:c, c] = -tau[j0 + c] * (t[:c, :c] @ (y[:, :c].T @ y[:, c]))
        zz = z[j0 + 1:]
        zz -= y @ (t @ (y.T @ zz))
    return z


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
        self._eig: _Eigen | None = None
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

    def _spectral(self) -> _Eigen:
        if self._eig is None:
            eig = _Eigen(self._kernel_for_factorization("eigendecomposition"))
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
            c, info = lapack.dpotrf(a, lower=1, clean=1, overwrite_a=1)
            if info != 0:
                raise SingularKernelError(
                    f"the training kernel is not positive definite (Cholesky fails at row {info} of "
                    f"{self.n}): singular within rounding or indefinite; t = inf needs an invertible "
                    "kernel; use a finite time, or distinct, non-colinear inputs, or a float64 kernel"
                )
            anorm = float(np.max(self._norm1))
            rcond, info = lapack.dpocon(c, anorm, uplo="L")
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
            return _vt_dot(eig.vt, residual)
        if eig.z_targets is None:
            eig.z_targets = _vt_dot(eig.vt, residual)
        return eig.z_targets

    def _solve(self, r: np.ndarray) -> np.ndarray:
        """``K^{-1} r`` for ``r [n, c]``: from the spectrum if computed, else by Cholesky."""
        if self._eig is not None:
            self._check_invertible()
            eig = self._eig
            return np.array(_spectral_apply(eig.vt, 1.0 / eig.w[None, :], self._project(r)).T)
        c = self._cholesky()
        x, info = lapack.dpotrs(c, np.asfortranarray(r), lower=1)
        return x

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
        mats = np.stack([np.asarray(_spectral_matrix(vt, pi)) for pi in p])
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
            moved = _spectral_apply(eig.vt, p, self._project(residual))  # [Tf * K, n]
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
            moved = np.asarray(_spectral_apply(eig.vt, growth, self._project(residual)))  # [Tf * K, n]
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
            k = k_test_train if _on_cpu(k_test_train) else np.asarray(k_test_train, dtype=np.float64)
            eig = self._spectral()
            p = projection_spectrum(eig.w, times, self.eta)  # [T, n]
            kk = residual.shape[1]
            out = np.array(_spectral_predict(eig.vt, p, self._project(residual), k))
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
