"""Input checks of every kernel function (the layer loops, the tabulated paths, the tiles): clear errors
before any JAX code runs, and the fields a call may ask for.

Checks on values (NaN, zero vectors, ranges) run only on concrete arrays; under
``jax.jit`` or ``jax.grad`` the inputs are tracers and only shapes are checked.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FLOAT32_MAX_DEPTH",
    "KERNEL_FIELDS",
    "CheckedInputs",
    "check_host_inputs",
    "check_inputs",
    "check_kernel_fields",
    "check_kernel_inputs",
    "check_hyperparameters",
    "check_depth_and_layers",
    "check_fields",
    "check_real",
    "check_finite",
    "precision",
    "resolve_dtype",
    "warn_float32_depth",
]

#: The kernel fields a call may ask for through ``get``.
KERNEL_FIELDS = ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized")

#: Below this depth float32 keeps ``Thetabar^l`` to about 1e-5 relative; beyond it
#: the kernel functions warn (docs/kernels.md#precision-per-call).
FLOAT32_MAX_DEPTH = 1000


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_finite(x, name: str) -> None:
    """Raises ``ValueError`` naming the first NaN or infinite entry of ``x``."""
    if not _is_concrete(x):
        return
    a = np.asarray(x)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(a[idx]) else "an infinite value"
        raise ValueError(f"{name} contains {kind} at index {idx} ({int(bad.sum())} non-finite entries)")


def resolve_dtype(dtype, *arrays) -> np.dtype:
    """The floating dtype of a kernel call: ``dtype`` if given, else that of the inputs.

    Inputs that are not JAX arrays count with NumPy's dtype (so a float64 NumPy
    array asks for float64 even where JAX's x64 mode is off); integers count
    as float64, as in NumPy; ``None`` entries are skipped.
    """
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from err
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        return dt
    found = []
    for x in arrays:
        if x is None:
            continue
        d = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
        if d == np.float64 or not np.issubdtype(d, np.floating) and np.issubdtype(d, np.number):
            found.append(np.dtype(np.float64))
        else:
            found.append(np.dtype(np.float32))
    return max(found, key=lambda d: d.itemsize) if found else np.dtype(np.float32)


@contextlib.contextmanager
def precision(dtype, *values):
    """Runs the body with JAX's x64 mode on when ``dtype`` is float64 and it is off.

    Only for this call: the setting is restored on exit. Under a JAX
    transformation (traced ``values``) the mode cannot change; float64 then
    needs ``jax.enable_x64(True)`` around the transformation.
    """
    want64 = np.dtype(dtype) == np.float64
    if not want64 or jax.config.jax_enable_x64:
        yield
        return
    if any(isinstance(v, jax.core.Tracer) for v in values):
        raise ValueError(
            "float64 kernels inside jax.jit/grad/vmap need x64 mode: wrap the transformed call "
            "in `with jax.enable_x64(True):`, or ask for dtype='float32'"
        )
    with jax.enable_x64(True):
        yield


def check_real(x, name: str) -> None:
    """Raises ``ValueError`` if ``x`` holds complex numbers (a cast would drop their imaginary parts)."""
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(
            f"{name} is complex ({np.dtype(dtype).name}); the kernels are defined for real "
            f"inputs: pass its real part ({name}.real) or a real representation explicitly"
        )


def _check_matrix(x, name: str):
    if x.ndim != 2:
        raise ValueError(f"{name} must be a [n, n0] matrix of inputs; got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x


def _as_float_matrix(x, name: str, dtype=None) -> jax.Array:
    check_real(x, name)
    if not (isinstance(x, jax.Array) and (dtype is None or x.dtype == dtype)):
        x = jnp.asarray(x) if dtype is None else jnp.asarray(x, dtype=dtype)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return _check_matrix(x, name)


def _check_feature_dimensions(x1, x2) -> None:
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(
            f"feature dimensions differ: x1 has {x1.shape[1]} features, x2 has {x2.shape[1]}"
        )


def _check_rows(a: np.ndarray, name: str, without_bias: bool, norms: np.ndarray | None = None) -> None:
    """Finite entries and, without bias, no zero row; ``norms``: the rows' norms, if known.

    One pass for the common case: every row norm (or squared norm) finite, so is every entry, and,
    without bias, > 0 (no zero row). Overflow or underflow of a square only sends the check to the
    exact tests below.
    """
    squares = np.einsum("ij,ij->i", a, a) if norms is None else norms
    if np.all(np.isfinite(squares)) and (not without_bias or np.all(squares > 0)):
        return
    check_finite(a, name)
    if without_bias:
        zero = np.flatnonzero(~np.any(a != 0, axis=1))
        if zero.size:
            raise ValueError(
                f"{name}[{zero[0]}] is the zero vector: with b_std == 0 its correlation "
                f"with any other input is undefined ({zero.size} zero rows in {name})"
            )


def check_inputs(x1, x2, *, b_std, dtype=None, norms: Callable | None = None) -> tuple:
    """Validates and returns ``(x1, x2)`` as floating ``[n, n0]`` arrays (``x2`` defaults to ``x1``).

    With ``dtype`` both are cast to it. A row is "the zero vector" only when
    every entry is exactly 0 (a norm of 1e-30 is a valid input). ``norms``: a
    callable ``(x1, x2) -> [n1 + n2]`` row norms (or ``None`` if they cannot be
    known), called once on the cast inputs and used by the checks; its value is
    then the third element returned.
    """
    x1 = _as_float_matrix(x1, "x1", dtype)
    x2 = x1 if x2 is None else _as_float_matrix(x2, "x2", dtype)
    _check_feature_dimensions(x1, x2)
    dtype = jnp.promote_types(x1.dtype, x2.dtype)
    same = x2 is x1
    x1, x2 = (x if x.dtype == dtype else x.astype(dtype) for x in (x1, x2))
    without_bias = _is_concrete(b_std) and float(b_std) == 0.0
    known = None if norms is None else norms(x1, x2)
    n1 = x1.shape[0]
    for x, name, part in ((x1, "x1", slice(0, n1)),) if same else ((x1, "x1", slice(0, n1)),
                                                                   (x2, "x2", slice(n1, None))):
        if _is_concrete(x):
            _check_rows(np.asarray(x), name, without_bias, None if known is None else known[part])
    return (x1, x2) if norms is None else (x1, x2, known)


def check_host_inputs(x1, x2, *, b_std) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_inputs` for inputs kept on the host: ``(x1, x2)`` as NumPy ``[n, n0]`` arrays,
    uncast (``x2`` is ``x1`` when ``None``)."""
    arrays = []
    for x, name in ((x1, "x1"), (x2, "x2")):
        if x is None:
            arrays.append(arrays[0])
            continue
        check_real(x, name)
        arrays.append(_check_matrix(np.asarray(x), name))
    x1, x2 = arrays
    _check_feature_dimensions(x1, x2)
    without_bias = float(b_std) == 0.0
    for x, name in ((x1, "x1"),) if x2 is x1 else ((x1, "x1"), (x2, "x2")):
        _check_rows(x, name, without_bias)
    return x1, x2


def check_kernel_fields(get) -> tuple[str, ...]:
    """``get`` as a tuple of names of :data:`KERNEL_FIELDS` (a single name is allowed)."""
    return check_fields(get, KERNEL_FIELDS)


def warn_float32_depth(dtype, depth: int, name: str, stacklevel: int = 3) -> None:
    """Warns that float32 beyond :data:`FLOAT32_MAX_DEPTH` loses digits, advising float64
    (``stacklevel`` as for :func:`warnings.warn` called here)."""
    if np.dtype(dtype) == np.float32 and depth > FLOAT32_MAX_DEPTH:
        warnings.warn(
            f"{name}: float32 at depth {depth} loses digits (rounding accumulates over the "
            f"layers: Thetabar^l keeps ~1e-5 relative up to depth {FLOAT32_MAX_DEPTH}, "
            f"within 1e-3 at 1e5); pass dtype='float64' (or float64 inputs)",
            stacklevel=stacklevel,
        )


def _row_norms(x1, x2) -> np.ndarray | None:
    """``[n1 + n2]`` the norms of the rows of ``x1`` and ``x2`` in float64 (``None`` if traced)."""
    if any(isinstance(v, jax.core.Tracer) for v in (x1, x2)):
        return None

    def norms(x):
        # np.linalg.norm's sum, squared as float64 without a float64 copy of the inputs first.
        return np.sqrt(np.add.reduce(np.square(np.asarray(x), dtype=np.float64), axis=1))

    n1 = norms(x1)
    return np.concatenate([n1, n1 if x2 is x1 else norms(x2)])


def _check_bias_scale(norms, n1: int, n0: int, W_std, b_std, dtype) -> None:
    """With a bias, ``Sigma^1(x, x)`` must be finite in ``dtype`` (concrete values only)."""
    if norms is None or any(isinstance(v, jax.core.Tracer) for v in (W_std, b_std)):
        return
    q = float(W_std) ** 2 / n0 * norms**2 + float(b_std) ** 2
    if np.any(q > float(np.finfo(dtype).max)):
        i = int(np.argmax(q))
        name, row = ("x1", i) if i < n1 else ("x2", i - n1)
        raise ValueError(
            f"{name}[{row}]: Sigma^1(x, x) = {q[i]:.3g} overflows {np.dtype(dtype).name} "
            f"(with a bias the raw kernels are of that size); pass dtype='float64' or rescale "
            f"the inputs or W_std"
        )


class CheckedInputs(NamedTuple):
    """The inputs of a kernel call, checked: ``x1 [n1, n0]``, ``x2 [n2, n0]`` of one floating dtype,
    whether the network has a bias (``b_std`` traced or not 0), and with a bias the rows' norms
    ``[n1 + n2]`` in float64 (``None`` without bias or for traced inputs)."""

    x1: jax.Array
    x2: jax.Array
    bias: bool
    norms: np.ndarray | None


def check_kernel_inputs(x1, x2, *, W_std, b_std, dtype) -> CheckedInputs:
    """:func:`check_inputs`, and with a bias the rows' norms, computed once, and the check that every
    ``Sigma^1(x, x)`` is finite in ``dtype``. Call inside :func:`precision` (``dtype``), after
    :func:`check_hyperparameters`."""
    bias = isinstance(b_std, jax.core.Tracer) or float(b_std) != 0.0
    if not bias:
        x1, x2 = check_inputs(x1, x2, b_std=b_std, dtype=dtype)
        return CheckedInputs(x1, x2, False, None)
    x1, x2, norms = check_inputs(x1, x2, b_std=b_std, dtype=dtype, norms=_row_norms)
    _check_bias_scale(norms, x1.shape[0], x1.shape[1], W_std, b_std, dtype)
    return CheckedInputs(x1, x2, True, norms)


def _scale_value(value, name: str) -> float | None:
    """``float(value)`` for a real scalar (``None`` if traced); a clear error for anything else."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a real number; got {value!r}")
    shape = np.shape(value)
    if shape != ():
        raise ValueError(
            f"{name} must be a single number; got an array of shape {shape}: call once per value"
        )
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"{name} must be a real number; got {value!r} ({np.dtype(dtype).name})")
    return float(np.asarray(value)) if _is_concrete(value) else None


def check_hyperparameters(W_std, b_std, dtype=None) -> None:
    """``W_std > 0`` and ``b_std >= 0``, both finite real scalars.

    With a ``dtype``, ``W_std`` must be a normal number of it (XLA flushes
    smaller ones to 0); with a bias also ``W_std^2`` and ``b_std^2`` must be
    finite in that dtype (without bias any finite ``W_std`` works).
    """
    w = _scale_value(W_std, "W_std")
    b = _scale_value(b_std, "b_std")
    if w is not None:
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"W_std must be a finite number > 0; got {w}")
        if dtype is not None and w < float(np.finfo(dtype).tiny):
            raise ValueError(
                f"W_std={w:g} is below the smallest normal {np.dtype(dtype).name} "
                f"({float(np.finfo(dtype).tiny):.3g}), which the computation flushes to 0; "
                f"pass dtype='float64' (or a larger W_std)"
            )
    if b is not None:
        if not np.isfinite(b) or b < 0:
            raise ValueError(f"b_std must be a finite number >= 0; got {b}")
        if dtype is not None and b > 0 and w is not None:
            big = float(np.finfo(dtype).max)
            for name, v in (("W_std", w), ("b_std", b)):
                if v * v > big:
                    raise ValueError(
                        f"{name}={v:g}: with a bias, {name}^2 must be finite in "
                        f"{np.dtype(dtype).name}; pass dtype='float64'"
                    )


# Layers are counted in int32 inside the compiled recursions.
MAX_DEPTH = 2**31 - 1


def check_depth_and_layers(depth, layers: Sequence[int] | None) -> np.ndarray:
    """Returns ``layers`` as an int array of distinct depths in ``1..depth``."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1; got {depth}")
    if depth > MAX_DEPTH:
        raise ValueError(
            f"depth {depth} exceeds {MAX_DEPTH:,} (2^31 - 1): every path steps through the layers one "
            f"by one with 32-bit layer counters; pass a depth up to {MAX_DEPTH:,}")
    if layers is None:
        return np.arange(1, depth + 1)
    arr = np.asarray(layers)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"layers must be a non-empty sequence of integers; got {layers!r}")
    outside = arr[(arr < 1) | (arr > depth)]
    if outside.size:
        raise ValueError(f"layers must lie in 1..depth={depth}; got {outside.tolist()}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"layers must be distinct; got {arr.tolist()}")
    return arr.astype(np.int64)


def check_fields(get, known: tuple[str, ...]) -> tuple[str, ...]:
    """``get`` (one field name, or a list or tuple of distinct ones) as a tuple of names in ``known``."""
    hint = f"pass one of {known} or a tuple of them, e.g. get=({known[0]!r}, {known[-1]!r})"
    if isinstance(get, str):
        fields = (get,)
    elif isinstance(get, (list, tuple)):
        fields = tuple(get)
    else:
        raise ValueError(f"get={get!r} ({type(get).__name__}) is not a field name or a tuple of them: {hint}")
    if not fields:
        raise ValueError(f"get={get!r} asks for no field: {hint}")
    wrong = [f for f in fields if not isinstance(f, str)]
    if wrong:
        raise ValueError(f"get={get!r}: {wrong[0]!r} is not a field name: {hint}")
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"get={get!r}: unknown field(s) {unknown}; choose from {known}")
    twice = sorted({f for f in fields if fields.count(f) > 1})
    if twice:
        raise ValueError(f"get={get!r} names {twice} more than once; name each field once")
    return fields
