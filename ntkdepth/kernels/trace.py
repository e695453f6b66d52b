"""Kernels of deep networks with any elementwise activation: ``kernel_trace`` and ``kernel_fn``.

ReLU runs through :mod:`ntkdepth.kernels.relu` on its own engine; every other activation on the normalized
recursion of :mod:`ntkdepth.kernels.engine` with the expectations of
:mod:`ntkdepth.kernels.activations` (docs/activations.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.activations import ABRelu, Activation, activation as as_activation
from ntkdepth.kernels.engine import (
    BULK_RADII,
    layer_growth,
    layer_kinds,
    normalized_loop,
    plan_for_inputs,
    ratio_panels,
    static_plan,
    tabulate,
    tabulated_fields,
)
from ntkdepth.kernels.gaussian import MehlerPlan, nodes_for
from ntkdepth.kernels.interpolant import N, symmetric_mesh
from ntkdepth.kernels.residual import check_residual, readout_fields, residual_alpha, residual_loop
from ntkdepth.kernels.relu import (
    KernelTrace,
    check_output_scale_fields,
    kernels_tuple,
    output_scale_ratio,
    relu_kernel_fn,
    relu_kernel_trace,
    rescale_output_layer,
)
from ntkdepth.kernels.relu_engine import layer_one
from ntkdepth.kernels.scaling import into_normal_range
from ntkdepth.kernels.scan import is_every_layer, jit_scalar, loop_length, loop_options, requested_layers, run_length
from ntkdepth.kernels.validation import (
    KERNEL_FIELDS,
    check_depth_and_layers,
    check_hyperparameters,
    check_kernel_fields,
    check_kernel_inputs,
    precision,
    resolve_dtype,
    warn_float32_depth,
)

__all__ = ["kernel_fn", "kernel_trace"]


def _is_relu(act: Activation) -> bool:
    return isinstance(act, ABRelu) and (act.a, act.b) == (0.0, 1.0)


def kernel_trace(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    activation="relu",
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    layers: Sequence[int] | None = None,
    get: str | Sequence[str] = KERNEL_FIELDS,
    dtype=None,
    method: str = "auto",
    residual: float | None = None,
) -> KernelTrace:
    """Kernels of a network with ``activation`` at every requested depth.

    The network and the record are those of :func:`ntkdepth.kernels.relu_kernel_trace`
    (``Sigma^1 = W_std^2 <x, x'> / n0 + b_std^2``, docs/kernels.md#the-recursion); ``activation`` is a
    name of :data:`ntkdepth.kernels.ACTIVATION_NAMES`, an :class:`~ntkdepth.kernels.Activation`
    (``activation("leaky_relu", slope=0.2)``), or a JAX function (its derivative by ``jax.grad``).

    Args:
      x1: ``[n1, n0]`` inputs; x2: ``[n2, n0]`` or ``None`` for ``x1``.
      depth: the deepest network, ``>= 1``; layers: the depths to return (default all).
      get: one of :data:`~ntkdepth.kernels.KERNEL_FIELDS` or several.
      dtype: ``"float32"`` or ``"float64"`` (default: the inputs').
      method: ``"auto"``, ``"loop"`` or ``"interp"`` (the tabulated path, at Gram-matrix cost for
        inputs of one norm or a homogeneous activation without bias).
      residual: ``alpha`` of a residual network, ``h^{l+1} = h^l + alpha (W phi(h^l) + b)`` after the
        first layer (docs/residual.md); ``None``: the plain network. The fields are those of ``h^l``.

    Returns:
      A :class:`~ntkdepth.kernels.KernelTrace` of ``[len(layers), n1, n2]`` fields; its
      ``error_bound`` is the relative tail of the Hermite expansion per layer for an activation
      without a closed form (``None`` otherwise: rounding only; docs/activations.md#accuracy).
    """
    act = as_activation(activation)
    alpha = _check_residual(residual)
    if _is_relu(act) and alpha is None:
        return relu_kernel_trace(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=layers, get=get,
                                 dtype=dtype, method=method)
    out, bound = _generic(x1, x2, act, depth=depth, W_std=W_std, b_std=b_std, layers=layers, get=get,
                          dtype=dtype, method=method, alpha=alpha)
    out = {f: out.get(f) for f in KernelTrace._fields if f not in ("layers", "error_bound")}
    return KernelTrace(layers=check_depth_and_layers(depth, layers), error_bound=bound, **out)


def _log_diagonals(one, bias: bool):
    """``log Sigma^1(x, x)`` of each input (``[n1]``, ``[n2]``), in absolute units.

    The first layer's numbers with a bias are in units of ``4^scale_exp`` (docs/kernels.md#biases);
    the activations' expectations need the variances themselves.
    """
    if not bias:
        return 2.0 * one.log_g1, 2.0 * one.log_g2
    shift = (2.0 * math.log(2.0)) * jnp.asarray(one.scale_exp, one.q1.dtype)
    return jnp.log(one.q1) + shift, jnp.log(one.q2) + shift


@functools.partial(jax.jit, static_argnames=("bias", "symmetric", "closest"))
def _first_layer(x1, x2, W_std, b_std, bias, rescale, symmetric=False, closest=True):
    """``(rho_1, log Sigma^1(x, x) [n1], [n2], the smallest nonzero 1 - |rho_1|)`` in one compiled pass.

    Compiled once per shape (run eagerly, the conditional refinement of the close pairs,
    :mod:`ntkdepth.kernels.pairs`, would be compiled anew at every call); only what the normalized
    recursion and the tables' mesh need leaves it. ``closest=False``: the last is not computed
    (NaN; a pass over every pair that only the tables use).
    """
    one = layer_one(x1, x1 if symmetric else x2, W_std, b_std, bias, rescale, symmetric=symmetric, gap_used=False)
    lq1, lq2 = _log_diagonals(one, bias)
    return one.rho, lq1, lq2, (_closest(one.rho) if closest else jnp.asarray(jnp.nan, one.rho.dtype))


@jax.jit
def _closest(rho):
    """The smallest nonzero ``1 - |rho_1|``: the closest pair of inputs."""
    a = 1.0 - jnp.abs(rho)
    return jnp.min(jnp.where(a > 0, a, jnp.inf))


def _may_tabulate(bias: bool, norms) -> bool:
    """Whether the tables may apply (:func:`_tabulation_setting`), from what is known before the first
    layer: without bias (a homogeneous activation, or norms not computed), or with norms that could
    all give one ``Sigma^1(x, x)``."""
    if not bias or norms is None:
        return True
    norms = np.asarray(norms)
    return bool(np.all(np.isfinite(norms)) and np.ptp(norms) <= 1e-6 * np.max(norms))


def _check_residual(residual) -> float | None:
    """``alpha`` as a float, or ``None`` for the plain network; a clear error for anything else."""
    checked = check_residual(residual)
    if isinstance(checked, str):
        raise ValueError(
            f"kernel_trace's layers belong to one network, whose alpha is a number: for residual={residual!r} "
            "pass residual=residual_alpha(residual, depth) (ntkdepth.kernels.residual_alpha), or use "
            "kernel_fn(depth, ..., residual=...), one network of one depth")
    return checked


def _generic(x1, x2, act: Activation, *, depth, W_std, b_std, layers, get, dtype, method, squeeze=False,
             alpha=None, logs=False):
    """The fields of ``get`` by the normalized loop, and the expansion's tail (or ``None``)."""
    if method not in ("auto", "loop", "interp"):
        raise ValueError(f"method must be 'auto', 'interp' or 'loop'; got {method!r}")
    fields = check_kernel_fields(get)
    layer_array = check_depth_and_layers(depth, layers)
    squeeze = squeeze and len(layer_array) == 1
    symmetric = x2 is None
    dt = resolve_dtype(dtype, x1, x2)
    check_hyperparameters(W_std, b_std, dtype=dt)
    with precision(dt, x1, x2, W_std, b_std):
        x1, x2, bias, norms = check_kernel_inputs(x1, x2, W_std=W_std, b_std=b_std, dtype=dt)
        deepest = int(layer_array.max())
        warn_float32_depth(dt, deepest, "kernel_trace")
        x1, x2, b_in, rescale, norms = into_normal_range(x1, x2, W_std, b_std, bias, dt, norms)
        w, b = jit_scalar(W_std, dt), jit_scalar(b_std, dt)
        rho1, lq1, lq2, smallest = _first_layer(x1, x2, jnp.asarray(w), jnp.asarray(jit_scalar(b_in, dt)), bias,
                                                rescale, symmetric=symmetric,
                                                closest=_may_tabulate(bias, norms))
        plan = None
        if not act.closed_form:
            traced = any(isinstance(v, jax.core.Tracer) for v in (x1, x2, W_std, b_std))
            if traced:
                plan = MehlerPlan(256, nodes_for(256), float("nan"))
            else:
                lqs = np.concatenate([np.asarray(lq1, np.float64), np.asarray(lq2, np.float64)])
                # Plans depend on the inputs through the range of Sigma^1(x, x) alone: cached by it.
                span = tuple(float(np.format_float_positional(v, precision=6, unique=False, fractional=False))
                             for v in np.quantile(lqs, np.linspace(0.0, 1.0, 9)))
                # Planned for the compiled loop's length: every depth of a length shares the plan
                # (a variance range covering more layers covers fewer) and so the compiled loop.
                plan = _cached_plan(act, span, float(W_std), float(b_std), loop_length(deepest),
                                    np.dtype(dt).name, alpha)
                _warn_tail(act, plan, dt)
        ordered = tuple(f for f in KERNEL_FIELDS if f in fields) + (("_logs",) if logs else ())
        tabulate_at = _tabulation_setting(act, rho1, smallest, lq1, lq2, bias, dt, residual=alpha is not None)
        if _use_tables(method, tabulate_at, act, plan, layer_array, rho1.shape, dt, residual=alpha is not None):
            out = _tabulated(act, plan, float(W_std), float(b_std), tabulate_at, rho1, lq1, lq2, layer_array,
                             ordered, dt, squeeze, alpha)
            return out, (None if plan is None else plan.tail)
        requested = jax.numpy.asarray(requested_layers(layer_array))
        length, every_layer = run_length(layer_array), is_every_layer(layer_array)
        if alpha is not None:
            out = residual_loop(rho1, lq1, lq2, w, b, jit_scalar(alpha, dt), requested, act=act,
                                plan=static_plan(plan), length=length, n_out=len(layer_array), get=ordered,
                                bias=bias, every_layer=every_layer, squeeze=squeeze, symmetric=symmetric)
            return out, (None if plan is None else plan.tail)
        unroll, on_cpu = loop_options()
        out = normalized_loop(
            rho1, lq1, lq2, w, b, requested, act=act, plan=static_plan(plan), length=length,
            n_out=len(layer_array), get=ordered, bias=bias, every_layer=every_layer, unroll=unroll,
            on_cpu=on_cpu, squeeze=squeeze, symmetric=symmetric,
        )
    return out, (None if plan is None else plan.tail)


def _warn_tail(act: Activation, plan: MehlerPlan, dtype) -> None:
    """A warning where the Hermite expansion's tail, at the most terms a call uses, stays far above
    the rounding it was planned for (large variances: a wide first layer, a residual stream)."""
    tol = float(np.finfo(dtype).eps) if np.dtype(dtype) == np.float64 else 1e-8
    if plan.tail > 1e3 * tol:
        import warnings

        warnings.warn(
            f"{act.label}: the Hermite expansion's relative tail is {plan.tail:.1e} per layer at the variances "
            f"this network reaches, with {plan.terms} terms (the most a call uses); the kernels are accurate "
            "to about that per layer (KernelTrace.error_bound), not to rounding. Smaller W_std, b_std or "
            "input norms keep the variances where the expansion converges", UserWarning, stacklevel=4)


def _tabulation_setting(act, rho1, smallest, lq1, lq2, bias, dtype, residual=False):
    """``(lq, emin, radius)`` where the maps are functions of ``rho_1`` alone, else ``None``.

    They are for a homogeneous activation without bias (tabulated at ``Sigma^1 = 1``; of degree 1 in a
    residual network, whose skip connection mixes the powers of other degrees) and for any
    activation when every input has the same ``Sigma^1(x, x)`` (tabulated at that value). ``emin``
    puts the mesh's smallest panel below the closest pair of inputs (concrete values only); ``radius``
    is the smallest of :data:`~ntkdepth.kernels.engine.BULK_RADII` at least the largest ``|rho_1|`` of
    pairs neither identical nor opposite (``None`` if none is): there the maps may be one series.
    """
    if any(isinstance(v, jax.core.Tracer) for v in (rho1, smallest, lq1, lq2)):
        return None
    lqs = np.concatenate([np.asarray(lq1, np.float64), np.asarray(lq2, np.float64)])
    if act.degree is not None and not bias and (act.degree == 1 or not residual):
        lq = 0.0
    elif np.all(np.isfinite(lqs)) and lqs.max() - lqs.min() <= 8 * np.finfo(dtype).eps * max(1.0, abs(lqs.max())):
        lq = float(lqs[0])
    else:
        return None
    if math.isnan(float(smallest)):  # not reduced with the first layer (_may_tabulate)
        smallest = _closest(rho1)
    a_min = float(smallest)  # the closest pair (0 < 1 - |rho_1|)
    v_min = math.sqrt(0.5 * a_min) if math.isfinite(a_min) else 0.5
    floor = np.finfo(dtype).minexp + 2
    emin = max(floor, min(-3, 4 * math.floor((math.floor(math.log2(v_min)) - 1) / 4)))
    # Every pair neither identical nor opposite within |rho_1| <= radius: the maps may be one series there.
    widest = 1.0 - a_min if math.isfinite(a_min) else 0.0
    radius = min((r for r in BULK_RADII if widest <= r), default=None)
    return lq, emin, radius


# The cost model of method="auto" for the normalized and residual loops and the tables, in nanoseconds
# per pair, measured on a 2-core CPU (n = 1,000, d = 784, b_std = 0.1; depths 10 and 40; every layer
# against one): a layer of the loop (closed forms; a Hermite expansion costs more), the loop's write of
# a requested layer, and the tables' pass per requested layer (its Clenshaw sums and its write, every
# layer in one vectorized pass). The residual loop runs tiles of pairs through chunks of layers in the
# cache: its layers and writes cost less. The node run costs the loop's layer for each node.
_LOOP_LAYER = {("plain", "closed"): {"float32": 6.0, "float64": 12.0},
               ("plain", "hermite"): {"float32": 15.0, "float64": 45.0},
               ("residual", "closed"): {"float32": 2.2, "float64": 4.0},
               ("residual", "hermite"): {"float32": 6.0, "float64": 15.0}}
_LOOP_WRITE = {"plain": {"float32": 5.5, "float64": 10.0}, "residual": {"float32": 2.0, "float64": 3.5}}
_TABLE_PASS = {"float32": 3.0, "float64": 6.0}
_TABLE_SERIES = {"float32": 1.8, "float64": 3.5}  # the pass where the maps are one series (BulkSeries)
_TIE = 0.8  # the tables must cost less than this fraction of the loop
_HERMITE_TERMS = 128  # the Hermite loop's layer as measured (tanh, SiLU in their usual range); longer costs more


def _use_tables(method, setting, act, plan, layer_array, shape, dtype, residual=False) -> bool:
    """The tabulated path where it applies and its cost (a run over the mesh's nodes, then one pass
    per requested layer) is below 0.8 of the layer loop's (every layer over every pair, and a write per
    requested layer)."""
    if method == "loop":
        return False
    if setting is None:
        if method == "interp":
            raise ValueError(
                "method='interp' needs inputs of one norm (every Sigma^1(x, x) equal), or a positively "
                "homogeneous activation without bias, with concrete (not traced) values; use method='loop' or 'auto'")
        return False
    if method == "interp":
        return True
    # Near a tie the loop, exact to rounding (the tables to their interpolation's 1e-13), is kept.
    return tables_cost(setting, act, plan, layer_array, shape, dtype, residual) < _TIE * loop_cost(
        act, plan, layer_array, shape, dtype, residual)


def _kinds(act, plan, dtype, residual):
    net = "residual" if residual else "plain"
    name = "float32" if np.dtype(dtype) == np.float32 else "float64"
    per_layer = _LOOP_LAYER[(net, "closed" if act.closed_form else "hermite")][name]
    if plan is not None:  # a long expansion (large variances) costs more per layer
        per_layer *= max(1.0, plan.terms / _HERMITE_TERMS)
    return net, name, per_layer


def loop_cost(act, plan, layer_array, shape, dtype, residual=False) -> float:
    """The layer loop's modelled cost in nanoseconds (2-core CPU): every layer over every pair and the
    write of each requested layer."""
    net, name, per_layer = _kinds(act, plan, dtype, residual)
    pairs = int(np.prod(shape))
    return pairs * (int(layer_array.max()) * per_layer + len(layer_array) * _LOOP_WRITE[net][name])


def tables_cost(setting, act, plan, layer_array, shape, dtype, residual=False) -> float:
    """The tabulated path's modelled cost in nanoseconds: the loop over the mesh's nodes (``setting``
    of :func:`_tabulation_setting`) and one pass per requested layer over every pair."""
    _, name, per_layer = _kinds(act, plan, dtype, residual)
    nodes = len(symmetric_mesh(setting[1]).lo) * N + 1
    per_pair = (_TABLE_PASS if setting[2] is None else _TABLE_SERIES)[name]
    return nodes * int(layer_array.max()) * per_layer + int(np.prod(shape)) * len(layer_array) * per_pair


@functools.lru_cache(maxsize=64)
def _cached_plan(act, span, W_std, b_std, depth, dtype_name, alpha=None):
    return plan_for_inputs(act, np.asarray(span), W_std, b_std, depth, np.dtype(dtype_name), alpha=alpha)


@functools.lru_cache(maxsize=32)
def _cached_tables(act, plan, W_std, b_std, lq, layers, dtype_name, emin, needs, alpha, radius=None):
    with jax.ensure_compile_time_eval():
        return tabulate(act, plan, W_std, b_std, lq, layers, np.dtype(dtype_name), emin, needs, alpha=alpha,
                        bulk_radius=radius)


def _tabulated(act, plan, W_std, b_std, setting, rho1, lq1, lq2, layer_array, fields, dtype, squeeze, alpha=None):
    lq, emin, radius = setting
    needs = ("rho" in fields or "nngp" in fields, "ntk" in fields or "ntk_normalized" in fields,
             "nngp_dot" in fields)
    layers = tuple(int(l) for l in layer_array)
    tables = _cached_tables(act, plan, W_std, b_std, lq, layers, np.dtype(dtype).name, emin, needs, alpha, radius)
    mesh = symmetric_mesh(emin)
    degree = act.degree if (act.degree is not None and b_std == 0.0) else None
    # The one series where it meets the recursion to a few rounding units (float64: 3.6e-15), else the panels.
    if tables.bulk is not None and not float(tables.bulk.error) <= 16 * float(np.finfo(dtype).eps):
        tables = tables._replace(bulk=None)
    return tabulated_fields(rho1, lq1, lq2, tables, layer_growth(layers, degree, dtype), kinds=layer_kinds(layers),
                            get=fields, emin=emin, n_side=mesh.n_side, n_ratio=ratio_panels(mesh), squeeze=squeeze)


def kernel_fn(depth: int, activation="relu", W_std: float = math.sqrt(2.0), b_std: float = 0.0, *,
              out_std: float | None = None, dtype=None, method: str = "auto", residual: float | str | None = None):
    """The kernel function of one network with ``activation``, in neural-tangents' call style.

    Returns ``kernel_fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=...)``: with a string ``get``
    that ``[n1, n2]`` kernel, with a tuple a named tuple of them in the order asked
    (:func:`kernel_trace` at the last layer alone). ``out_std`` (default ``W_std``) is the last
    layer's weight scale, applied as in :func:`ntkdepth.kernels.relu_kernel_fn`
    (docs/networks.md#one-description-networkspec).

    With ``residual`` (``alpha > 0``, or ``"a/sqrt(L)"`` for ``alpha = a / sqrt(depth)``) the network is
    the residual MLP of :class:`ntkdepth.models.ResidualMLP`: ``depth`` layers of the stream, then
    a linear readout of ``h^depth`` with weight scale ``out_std`` and bias scale ``b_std``, whose
    kernels these are (docs/residual.md#the-readout). Correlations and the normalized NTK of the
    output are formed from the logarithms of the diagonals: exact where the raw kernels overflow.
    """
    act = as_activation(activation)
    alpha = residual_alpha(residual, depth)
    if _is_relu(act) and alpha is None:
        return relu_kernel_fn(depth, W_std, b_std, out_std=out_std, dtype=dtype, method=method)
    check_depth_and_layers(depth, [depth])
    check_hyperparameters(W_std, b_std)
    ratio2 = output_scale_ratio(out_std, W_std)
    b2 = float(b_std) ** 2
    default_dtype = dtype
    w_out = float(W_std if out_std is None else out_std)

    def fn(x1, x2=None, get=("nngp", "ntk"), *, dtype=default_dtype):
        fields = check_kernel_fields(get)
        if alpha is not None:
            values = _residual_output(x1, x2, act, depth=depth, W_std=W_std, b_std=b_std, w_out=w_out,
                                      fields=fields, dtype=dtype, method=method, alpha=alpha)
        else:
            check_output_scale_fields(fields, ratio2, b2)
            out, _ = _generic(x1, x2, act, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get=fields,
                              dtype=dtype, method=method, squeeze=True, alpha=alpha)
            values = rescale_output_layer([out[f] for f in fields], fields, ratio2, b2)
        if isinstance(get, str):
            return values[0]
        return kernels_tuple(fields)(*values)

    network = f"a depth-{depth}" if alpha is None else f"a residual (alpha={alpha:.6g}) depth-{depth}"
    fn.__doc__ = (f"Kernels of {network} network with activation {act.label} (W_std={W_std}, "
                  f"b_std={b_std}): kernel_fn(x1, x2=None, get=('nngp', 'ntk'), *, dtype=None), [n1, n2] each.")
    return fn


def _residual_output(x1, x2, act, *, depth, W_std, b_std, w_out, fields, dtype, method, alpha) -> list:
    """The output's fields (in the order of ``fields``) of a residual network with a linear readout."""
    need = ("rho", "ntk_normalized") + (("nngp_dot",) if "nngp_dot" in fields else ())
    dt = resolve_dtype(dtype, x1, x2)
    out, _ = _generic(x1, x2, act, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get=need,
                      dtype=dtype, method=method, squeeze=True, alpha=alpha, logs=True)
    with precision(dt, *out.values()):
        read = readout_fields(out, w_out, b_std)
        return [read[f] for f in fields]
