"""Dense symmetric linear algebra in float64: an eigendecomposition in the matrix's own storage,
Cholesky solves, and the compiled products of the gradient-flow predictor with the eigenvectors
(:class:`ntkdepth.theory.GradientFlowPredictor`; docs/predictor.md#computing-it-at-scale).
"""

from __future__ import annotations

import jax
import numpy as np
import scipy.linalg
from scipy.linalg import lapack

__all__ = [
    "SymmetricEigen",
    "cholesky",
    "cholesky_solve",
    "on_cpu",
    "project",
    "reciprocal_condition",
    "spectral_apply",
    "spectral_matrix",
    "spectral_predict",
]

_BLOCK = 64  # Householder reflectors applied together (compact WY form)


class SymmetricEigen:
    """``K = V diag(w) V^T`` from ``K = Q T Q^T`` and ``T = S diag(w) S^T``, ``V = Q S`` formed in ``S``.

    Args:
      a: ``[n, n]`` symmetric float64, Fortran-contiguous; overwritten by the
        Householder vectors of ``Q`` (LAPACK ``dsytrd``, lower), then released.

    Attributes:
      w: ``[n]`` the eigenvalues, ascending.
      vt: ``[n, n]`` ``V^T`` as a float64 JAX array on the CPU (the products below take it).
      vectors: ``[n, n]`` ``V``, the eigenvectors as columns (a read-only view of ``vt``).
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
            self.vt = jax.device_put(v.T, _cpu())
        del v
        self.vectors = np.asarray(self.vt).T  # read-only view of the JAX buffer

    @staticmethod
    def _factorize(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = a.shape[0]
        lwork, info = lapack.dsytrd_lwork(n, lower=1)
        a, d, e, tau, info = lapack.dsytrd(a, lower=1, lwork=int(lwork), overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"tridiagonal reduction failed (LAPACK dsytrd info = {info})")
        w, s = scipy.linalg.eigh_tridiagonal(d, e, lapack_driver="stemr", check_finite=False)
        return w, _apply_reflectors(a, tau, np.asfortranarray(s))  # V = Q S, in the storage of S


def _cpu():
    """The first CPU device: the products with ``V`` run there, in float64."""
    return jax.devices("cpu")[0]


def on_cpu(a) -> bool:
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
def project(vt, r):
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
def spectral_apply(vt, p, z):
    """``[T * K, n]``: ``(V diag(p_t) z)^T``, rows ``(t, k)`` (:func:`_spectral_rows`)."""
    return _spectral_rows(vt, p, z)


@_x64
def spectral_predict(vt, p, z, k_test):
    """``[m, T * K]``: ``k_test V diag(p_t) z``, ``k_test [m, n]``, columns ``(t, k)``."""
    return jax.lax.dot_general(k_test.astype(vt.dtype), _spectral_rows(vt, p, z), (((1,), (1,)), ((), ())))


@_x64
def spectral_matrix(vt, p):
    """``[n, n]``: ``V diag(p) V^T``."""
    return (vt.T * p) @ vt


def _apply_reflectors(a: np.ndarray, tau: np.ndarray, z: np.ndarray) -> np.ndarray:
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


def cholesky(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``(c, info)``: the lower Cholesky factor of the symmetric ``a [n, n]`` (float64,
    Fortran-contiguous), computed in ``a``'s storage (LAPACK ``dpotrf``); ``info > 0`` is the row
    at which ``a`` is found not positive definite (``c`` is then unusable)."""
    c, info = lapack.dpotrf(a, lower=1, clean=1, overwrite_a=1)
    return c, int(info)


def reciprocal_condition(c: np.ndarray, norm1: float) -> float:
    """The reciprocal 1-norm condition number of ``a = c c^T``, estimated by LAPACK ``dpocon`` from
    its Cholesky factor ``c`` and its 1-norm ``norm1``."""
    rcond, _ = lapack.dpocon(c, norm1, uplo="L")
    return float(rcond)


def cholesky_solve(c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``[n, k]``: ``a^{-1} r`` for ``r [n, k]``, from the Cholesky factor ``c`` of ``a`` (``dpotrs``)."""
    x, _ = lapack.dpotrs(c, np.asfortranarray(r), lower=1)
    return x
