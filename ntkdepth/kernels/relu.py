"""Exact infinite-width kernels of deep ReLU networks, resolved by depth: the public functions.

Each checks its call (:mod:`ntkdepth.kernels.validation`) and runs the layer loop
(:mod:`ntkdepth.kernels.relu_engine`) or, without bias or for inputs of one norm, the interpolated
path (:mod:`ntkdepth.kernels.interp`) at the cost of one Gram matrix (docs/kernels.md).
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.angles import angle_from_correlation, one_minus_arccos_kernel
from ntkdepth.kernels.interp import (
    CORRELATION_TABLE_FIELDS,
    interp_correlation,
    interp_setting,
    interp_trace,
    tables_built,
    use_interp,
)
from ntkdepth.kernels.relu_engine import correlation_loop, layer_loop
from ntkdepth.kernels.scaling import into_normal_range
from ntkdepth.kernels.scan import is_every_layer, jit_scalar, loop_options, requested_layers, run_length
from ntkdepth.kernels.validation import (
    FLOAT32_MAX_DEPTH,
    KERNEL_FIELDS,
    check_depth_and_layers,
    check_finite,
    check_hyperparameters,
    check_kernel_fields,
    check_kernel_inputs,
    check_real,
    precision,
    resolve_dtype,
    warn_float32_depth,
)

__all__ = [
    "KernelTrace",
    "CorrelationTrace",
    "KERNEL_FIELDS",
    "relu_kernel_trace",
    "relu_ntk",
    "relu_nngp",
    "relu_kernel_fn",
    "FLOAT32_MAX_DEPTH",
    "correlation_trace",
    "correlation_map",
    "correlation_map_derivative",
    "check_output_scale_fields",
    "kernels_tuple",
    "output_scale_ratio",
    "rescale_output_layer",
]



class KernelTrace(NamedTuple):
    """Kernels of a deep ReLU network at a set of depths.

    Every matrix field is ``[len(layers), n1, n2]``; diagonals are
    ``[len(layers), n1]`` (for ``x1``) and ``[len(layers), n2]`` (for ``x2``).
    Fields not requested through ``get`` are ``None``.

    Attributes:
      layers: ``[m]`` the depths, in the order requested.
      nngp: ``Sigma^l(x1, x2)``, the NNGP kernel (covariance of layer l's pre-activations).
      nngp_dot: ``Sigmadot^l(x1, x2)``, the derivative kernel (0 at l = 1).
      ntk: ``Theta^l(x1, x2)``, the NTK of the depth-l network.
      rho: ``rho_l(x1, x2) = Sigma^l / sqrt(Sigma^l(x1,x1) Sigma^l(x2,x2))``.
      ntk_normalized: ``Thetabar^l(x1, x2)`` (Definition 4).
      nngp_diag1, nngp_diag2: ``Sigma^l(x, x)`` for the rows / columns.
      ntk_diag1, ntk_diag2: ``Theta^l(x, x)`` for the rows / columns.
      error_bound: for an activation without a closed form, the relative tail of its Hermite
        expansion per layer (docs/activations.md#accuracy); ``None`` where only rounding errs.
    """

    layers: np.ndarray
    nngp: jax.Array | None
    nngp_dot: jax.Array | None
    ntk: jax.Array | None
    rho: jax.Array | None
    ntk_normalized: jax.Array | None
    nngp_diag1: jax.Array | None
    nngp_diag2: jax.Array | None
    ntk_diag1: jax.Array | None
    ntk_diag2: jax.Array | None
    error_bound: float | None = None


class CorrelationTrace(NamedTuple):
    """The correlation-space recursion at a set of depths (sphere, ``W_std^2 = 2``, no bias).

    Every field but ``layers`` is ``[len(layers), *rho_1.shape]``.

    Attributes:
      layers: ``[m]`` the depths.
      rho: ``rho_l`` (``rho_1`` is the starting correlation).
      one_minus_rho: ``1 - rho_l``, accurate even where ``rho_l`` rounds to 1.
      fprime: ``f'(rho_l) = Sigmadot^{l+1}``, the derivative kernel of the next layer.
      ntk_normalized: ``Thetabar^l`` (equal to ``Theta^l / l`` here).
    """

    layers: np.ndarray
    rho: jax.Array
    one_minus_rho: jax.Array
    fprime: jax.Array
    ntk_normalized: jax.Array


def correlation_map(rho: jax.Array) -> jax.Array:
    """The ReLU correlation map ``f(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi``.

    Definition 5 of the paper; ``rho_{l+1} = f(rho_l)`` on the sphere with
    ``W_std^2 = 2`` and no bias. Elementwise, any shape, ``rho in [-1, 1]``.
    """
    rho = jnp.asarray(rho)
    t = angle_from_correlation(rho)
    return 1.0 - one_minus_arccos_kernel(t)


def correlation_map_derivative(rho: jax.Array) -> jax.Array:
    """``f'(rho) = (pi - arccos rho) / pi`` (Definition 5), elementwise."""
    rho = jnp.asarray(rho)
    return (jnp.pi - angle_from_correlation(rho)) / jnp.pi



def relu_kernel_trace(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    layers: Sequence[int] | None = None,
    get: str | Sequence[str] = KERNEL_FIELDS,
    dtype=None,
    method: str = "auto",
) -> KernelTrace:
    """Kernels of a ReLU network at every requested depth.

    The network has ``l`` weight layers at NTK parameterization, with weight
    and bias standard deviations ``W_std`` and ``b_std`` (docs/kernels.md,
    "The recursion"). Two paths give the same numbers (docs/kernels.md,
    "Evaluating kernels fast"):

    - the layer loop: one ``lax.scan`` up to the deepest requested layer,
      time ``O(depth n1 n2)``, memory ``O(len(layers) n1 n2)`` for the
      requested fields;
    - the interpolated path, without bias or with inputs of one norm: the
      recursion tabulated once as a function of the input angle (time
      ``O(depth)``, independent of ``n1, n2``), then one Gram matrix and one
      elementwise pass per requested layer, whose cost does not depend on
      the depth.

    Args:
      x1: ``[n1, n0]`` inputs (any norm; not restricted to the sphere).
      x2: ``[n2, n0]`` inputs, or ``None`` for ``x1``.
      depth: the deepest network, ``>= 1``.
      W_std: weight standard deviation ``sigma_w > 0``.
      b_std: bias standard deviation ``sigma_b >= 0``.
      layers: the depths to return, distinct integers in ``1..depth`` (default
        all of them), returned in the order given.
      get: one of ``KERNEL_FIELDS`` or several; the others are ``None``.
      dtype: ``"float32"`` or ``"float64"`` (the latter enters
        ``jax.enable_x64`` for this call only). Default: the inputs' dtype,
        NumPy's for non-JAX inputs, so float64 NumPy arrays give float64
        kernels whether or not x64 is enabled.
      method: ``"auto"`` (the interpolated path where it applies and pays:
        a few layers of a deep network over many pairs), ``"interp"`` or
        ``"loop"``.

    Returns:
      A :class:`KernelTrace` whose matrices are ``[len(layers), n1, n2]``.

    Raises:
      ValueError: NaN/inf inputs, a zero input vector with ``b_std == 0`` (its
        correlation is undefined), mismatched feature dimensions, ``depth < 1``,
        ``W_std <= 0``, ``b_std < 0``, ``layers`` outside ``1..depth``, an
        unknown field in ``get``, an unknown ``dtype`` or ``method``.

    Warns:
      UserWarning: float32 beyond depth :data:`FLOAT32_MAX_DEPTH`.

    Differentiable with respect to ``x1``, ``x2``, ``W_std`` and ``b_std``;
    gradients are finite everywhere (including identical and antipodal points).
    """
    out = _kernel_dict(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=layers, get=get,
                       dtype=dtype, method=method)
    out = {f: out.get(f) for f in KernelTrace._fields if f not in ("layers", "error_bound")}
    return KernelTrace(layers=check_depth_and_layers(depth, layers), **out)


def _kernel_dict(x1, x2, *, depth, W_std, b_std, layers, get, dtype, method, squeeze=False) -> dict:
    """:func:`relu_kernel_trace`'s fields as a dict; with ``squeeze`` (one layer) ``[n1, n2]`` each.

    Dropping the layer axis inside the compiled function keeps the result's
    buffer: outside it, ``trace.ntk[0]`` would copy the whole kernel.
    """
    fields = check_kernel_fields(get)
    layer_array = check_depth_and_layers(depth, layers)
    squeeze = squeeze and len(layer_array) == 1
    dt = resolve_dtype(dtype, x1, x2)
    check_hyperparameters(W_std, b_std, dtype=dt)
    symmetric = x2 is None
    with precision(dt, x1, x2, W_std, b_std):
        x1, x2, bias, norms = check_kernel_inputs(x1, x2, W_std=W_std, b_std=b_std, dtype=dt)
        deepest = int(layer_array.max())
        warn_float32_depth(dt, deepest, "relu_kernel_trace")
        x1, x2, b_std, rescale, norms = into_normal_range(x1, x2, W_std, b_std, bias, dt, norms)
        ordered = tuple(f for f in KERNEL_FIELDS if f in fields)
        setting = interp_setting(norms, x1.shape[1], W_std, b_std, bias, dt)
        layers = tuple(int(l) for l in layer_array)
        built = setting is not False and tables_built(layers, dt, ordered, setting)
        if use_interp(method, setting, layer_array, x1.shape[0] * x2.shape[0], dt, built):
            return interp_trace(x1, x2, W_std, b_std, layers=layers,
                                get=ordered, bias_setting=setting, squeeze=squeeze,
                                rescale=rescale, symmetric=symmetric)
        unroll, on_cpu = loop_options()
        return layer_loop(
            x1, x2, jit_scalar(W_std, dt), jit_scalar(b_std, dt),
            jnp.asarray(requested_layers(layer_array)), rescale, length=run_length(layer_array),
            n_out=len(layer_array), get=ordered, bias=bias, every_layer=is_every_layer(layer_array),
            unroll=unroll, on_cpu=on_cpu, squeeze=squeeze, symmetric=symmetric,
        )


def relu_ntk(x1, x2=None, *, depth: int, W_std: float = math.sqrt(2.0), b_std: float = 0.0,
             dtype=None, method: str = "auto"):
    """``Theta^depth(x1, x2)``, ``[n1, n2]``: the NTK of a depth-``depth`` ReLU network.

    ``dtype`` and ``method`` as in :func:`relu_kernel_trace`.
    """
    return _kernel_dict(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get="ntk",
                        dtype=dtype, method=method, squeeze=True)["ntk"]


def relu_nngp(x1, x2=None, *, depth: int, W_std: float = math.sqrt(2.0), b_std: float = 0.0,
              dtype=None, method: str = "auto"):
    """``Sigma^depth(x1, x2)``, ``[n1, n2]``: the NNGP kernel of a depth-``depth`` ReLU network.

    ``dtype`` and ``method`` as in :func:`relu_kernel_trace`.
    """
    return _kernel_dict(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get="nngp",
                        dtype=dtype, method=method, squeeze=True)["nngp"]


def output_scale_ratio(out_std, W_std) -> float:
    """``(out_std / W_std)^2``, the last layer's rescaling (1 for ``out_std=None``); checks ``out_std``."""
    if out_std is not None and not (isinstance(out_std, (int, float, np.floating, np.integer))
                                    and math.isfinite(out_std) and out_std > 0):
        raise ValueError(f"out_std must be a finite number > 0 (or None: W_std); got {out_std!r}")
    return 1.0 if out_std is None else (float(out_std) / float(W_std)) ** 2


def check_output_scale_fields(fields, ratio2: float, b2: float) -> None:
    """Refuses ``rho``/``ntk_normalized`` where an output scale with a bias changes them."""
    ratios = sorted({"rho", "ntk_normalized"} & set(fields))
    if ratio2 != 1.0 and b2 > 0 and ratios:
        raise ValueError(
            f"{ratios} of a network with out_std != W_std and a bias are not available: "
            "ask for 'nngp' and 'ntk' and normalize them"
        )


def rescale_output_layer(values: list, fields, ratio2: float, b2: float) -> list:
    """The last layer's kernels at scale ``out_std``: ``Sigma, Theta -> r^2 (K - b^2) + b^2``,
    ``Sigmadot -> r^2 Sigmadot`` (docs/networks.md#one-description-networkspec)."""
    if ratio2 == 1.0:
        return values
    with precision(values[0].dtype, *values):  # float64 stays float64 outside x64 mode
        return [ratio2 * (v - b2) + b2 if f in ("nngp", "ntk") and b2 else
                ratio2 * v if f in ("nngp", "ntk", "nngp_dot") else v
                for f, v in zip(fields, values)]


@functools.lru_cache(maxsize=None)
def kernels_tuple(fields: tuple[str, ...]):
    """The named tuple class ``Kernels`` of ``fields`` that ``kernel_fn(..., get=fields)`` returns."""
    return collections.namedtuple("Kernels", fields)


def relu_kernel_fn(depth: int, W_std: float = math.sqrt(2.0), b_std: float = 0.0, *,
                   out_std: float | None = None, dtype=None, method: str = "auto"):
    """The kernel function of one network, in neural-tangents' call style.

    Returns ``kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=...)`` for a
    ReLU network of ``depth`` weight layers: with a string ``get`` it returns
    that ``[n1, n2]`` kernel, with a tuple a named tuple of them in the order
    asked (fields of :data:`KERNEL_FIELDS`; ``nngp`` and ``ntk`` are
    neural-tangents' ``kernel_fn(x1, x2, get)`` of ``stax_mlp(depth, ...)``).
    ``dtype`` and ``method`` as in :func:`relu_kernel_trace`.

    ``out_std`` (default ``W_std``) is the weight scale of the last layer
    alone. With ``r = out_std / W_std`` it maps the last layer's kernels as
    ``Sigma -> r^2 (Sigma - b_std^2) + b_std^2``, ``Theta -> r^2 (Theta - b_std^2) + b_std^2``
    and ``Sigmadot -> r^2 Sigmadot`` (docs/networks.md#one-description-networkspec);
    ``rho`` and ``ntk_normalized`` are unchanged without bias and, with a bias
    and ``out_std != W_std``, not available (``ValueError``).
    """
    check_depth_and_layers(depth, [depth])
    check_hyperparameters(W_std, b_std)
    ratio2 = output_scale_ratio(out_std, W_std)
    b2 = float(b_std) ** 2
    default_dtype = dtype

    def kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=default_dtype):
        fields = check_kernel_fields(get)
        check_output_scale_fields(fields, ratio2, b2)
        out = _kernel_dict(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth],
                           get=fields, dtype=dtype, method=method, squeeze=True)
        values = rescale_output_layer([out[f] for f in fields], fields, ratio2, b2)
        if isinstance(get, str):
            return values[0]
        return kernels_tuple(fields)(*values)

    out = "" if out_std is None else f", out_std={out_std}"
    kernel_fn.__doc__ = (
        f"Kernels of a depth-{depth} ReLU network (W_std={W_std}, b_std={b_std}{out}): "
        "kernel_fn(x1, x2=None, get=('nngp', 'ntk'), *, dtype=None), [n1, n2] each."
    )
    return kernel_fn




def correlation_trace(
    rho: jax.Array, *, depth: int, layers: Sequence[int] | None = None, dtype=None,
    method: str = "auto",
) -> CorrelationTrace:
    """``rho_l``, ``f'(rho_l)`` and ``Thetabar^l`` from starting correlations ``rho_1``.

    The setting of the paper's section 6: inputs on the sphere, ``W_std^2 = 2``
    and no bias, so ``rho_{l+1} = f(rho_l)`` (Definition 5) and ``Thetabar``
    follows Proposition 5. Elementwise over any array shape; cheap at depths
    of 1e5 and beyond (time ``O(depth * rho.size)``, memory
    ``O(len(layers) * rho.size)``).

    Args:
      rho: starting correlations ``<x, x'>`` in ``[-1, 1]``, any shape.
      depth: the deepest layer, ``>= 1``.
      layers: distinct depths in ``1..depth`` to return (default all).
      dtype: ``"float32"`` or ``"float64"`` as in :func:`relu_kernel_trace`
        (default: that of ``rho``; NumPy's for non-JAX input).
      method: ``"auto"``, ``"interp"`` or ``"loop"``, as in
        :func:`relu_kernel_trace` (the interpolated path pays for many
        correlations and few of the layers).
    """
    layer_array = check_depth_and_layers(depth, layers)
    dt = resolve_dtype(dtype, rho)
    with precision(dt, rho):
        check_real(rho, "rho")
        rho = jnp.asarray(rho, dtype=dt)
        check_finite(rho, "rho")
        if not isinstance(rho, jax.core.Tracer):
            r = np.asarray(rho)
            if np.any(np.abs(r) > 1.0):
                raise ValueError(f"rho must lie in [-1, 1]; got values from {r.min()} to {r.max()}")
        deepest = int(layer_array.max())
        warn_float32_depth(dt, deepest, "correlation_trace")
        layers = tuple(int(l) for l in layer_array)
        built = tables_built(layers, dt, CORRELATION_TABLE_FIELDS)
        if use_interp(method, None, layer_array, int(np.prod(rho.shape)), dt, built):
            out = interp_correlation(jnp.clip(rho, -1.0, 1.0), layers=layers)
            return CorrelationTrace(layers=layer_array, **out)
        out = correlation_loop(
            rho, jnp.asarray(requested_layers(layer_array)), length=run_length(layer_array),
            n_out=len(layer_array), ones=tuple(int(i) for i in np.flatnonzero(layer_array == 1)),
            every_layer=is_every_layer(layer_array),
            **dict(zip(("unroll", "on_cpu"), loop_options())),
        )
    return CorrelationTrace(layers=layer_array, **out)

