"""Kernels at Gram-matrix cost: the layer recursion tabulated as a function of the input angle.

Without bias, and with a bias when every input has the same norm, every kernel
of a deep ReLU network is a fixed function of the first layer's correlation
``rho_1`` times scale factors known in closed form (docs/kernels.md,
"The interpolated path"):

    rho_l(x, x')      = 1 - (1 - rho_1) R_l(v)
    Thetabar^l(x, x') = B_l(v)
    Sigmadot^l(x, x') = (W_std^2 / 2) F_l(v)
    Sigma^l(x, x')    = S_l sqrt(Q_l(x) Q_l(x')) rho_l(x, x')
    Theta^l(x, x')    = S_l sqrt(T_l(x) T_l(x')) Thetabar^l(x, x')

with ``v = sqrt((1 - |rho_1|) / 2)`` (``sin(theta_1 / 2)`` for ``rho_1 >= 0``,
``cos(theta_1 / 2)`` below), ``S_l`` the rescaling of the layer loop and
``Q_l``, ``T_l`` the rescaled diagonals. ``R_l``, ``B_l`` and ``F_l`` are
smooth in ``v`` on each side of ``rho_1 = 0``. They are computed once per call
by the layer loop itself (:func:`ntkdepth.kernels.relu_engine.recursion`) at the
Chebyshev points of a piecewise mesh in ``v`` (octaves split in eight, down to
``2^-22`` at depth 10^6, where deep iterates vary on the scale ``1/l``; sixteen
equal panels for ``rho_1 < 0``; degree 8 on each), at a cost
``O(depth * nodes)`` that does not depend on the number of inputs. Any
``[n1, n2]`` kernel then costs one Gram matrix and one elementwise pass whose
cost does not depend on the depth.

The tables are cached in memory, keyed by the layers, the dtype, the fields and,
with a bias, the weight and bias scales and the common squared norm.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.interpolant import (
    N,
    chebyshev_coefficients,
    chebyshev_points,
    clenshaw,
    octave_panel,
    symmetric_mesh,
)
from ntkdepth.kernels.layer_scale import log_half_square
from ntkdepth.kernels.relu_engine import (
    LayerOne,
    correlation_fields,
    first_angle,
    layer_one,
    recursion,
    unit_layer_one,
)
from ntkdepth.kernels.scaling import power_of_two, times
from ntkdepth.kernels.scan import jit_scalar, loop_length, loop_options, requested_layers

__all__ = [
    "CORRELATION_TABLE_FIELDS",
    "InterpTables",
    "Mesh",
    "clear_tables",
    "interp_correlation",
    "interp_setting",
    "interp_tables",
    "interp_trace",
    "locate_panel",
    "mesh",
    "tables_built",
    "use_interp",
]

_NEG_PANELS = 16  # equal panels of v for rho_1 < 0
#: The fields :func:`interp_correlation` asks the tables for.
CORRELATION_TABLE_FIELDS = ("ntk_normalized", "_omr")
_VMAX = math.sqrt(0.5)  # v at rho_1 = 0


class Mesh(NamedTuple):
    """Panels ``[lo, hi]`` of ``v``: first those for ``rho_1 >= 0``, then ``n_neg`` for ``rho_1 < 0``."""

    emin: int  # the lowest panel for rho_1 >= 0 is [0, 2^emin]
    lo: np.ndarray
    hi: np.ndarray
    n_pos: int


@lru_cache(maxsize=64)
def mesh(max_layer: int) -> Mesh:
    """The panels for layers up to ``max_layer``: for ``rho_1 >= 0`` the eighth-octave panels of
    :func:`~ntkdepth.kernels.interpolant.symmetric_mesh` down to ``v ~ 1 / (4 max_layer)``, for
    ``rho_1 < 0`` sixteen equal panels."""
    emin = min(-2, math.floor(math.log2(1.0 / max_layer)) - 2)
    side = symmetric_mesh(emin)
    lo, hi = list(side.lo[: side.n_side]), list(side.hi[: side.n_side])
    width = _VMAX / _NEG_PANELS
    lo += [k * width for k in range(_NEG_PANELS)]
    hi += [(k + 1) * width for k in range(_NEG_PANELS)]
    return Mesh(emin, np.array(lo), np.array(hi), side.n_side)


def _nodes(m: Mesh) -> dict[str, np.ndarray]:
    """The starting state of the layer loop at every node (float64, ``[P * N]``)."""
    x = chebyshev_points()
    v = ((m.lo + m.hi)[:, None] + (m.hi - m.lo)[:, None] * x[None, :]) / 2.0
    pos = np.arange(len(m.lo)) < m.n_pos
    half_angle = np.arcsin(v)
    t1 = np.where(pos[:, None], 2.0 * half_angle, np.pi - 2.0 * half_angle)
    omr1 = np.where(pos[:, None], 2.0 * v * v, 2.0 - 2.0 * v * v)
    sin_t1 = 2.0 * v * np.sqrt(1.0 - v * v)
    return dict(omr1=omr1.ravel(), t1=t1.ravel(), sin_t1=sin_t1.ravel())


def interp_setting(norms, n0: int, W_std, b_std, bias: bool, dtype):
    """``None`` (no bias), ``(W^2, b^2, q)`` (bias, every input of one norm) or ``False`` (neither).

    ``norms``: the rows' norms of the inputs, ``[n1 + n2]`` (``None`` if traced).
    """
    if not bias:
        return None
    if norms is None or any(isinstance(v, jax.core.Tracer) for v in (W_std, b_std)):
        return False
    w2, b2 = float(W_std) ** 2, float(b_std) ** 2
    q = np.hypot(math.sqrt(w2 / n0) * norms, math.sqrt(b2)) ** 2
    if not np.all(np.isfinite(q)) or q.max() - q.min() > 8 * np.finfo(dtype).eps * q.max():
        return False
    return (w2, b2, float(q[0]))


# The cost model of method="auto", in nanoseconds measured on a 2-core CPU (n = 2,000, d = 784):
# per pair, layer two of the loop (its closed forms near rho_1 = -1) and each further layer; per
# pair and requested layer, the interpolated pass; per layer of any loop, its fixed cost; per
# node and layer, the node run that builds the tables. With a bias each layer of the loop costs
# more (the diagonals' update and the bias terms: measured at n = 1,000, L = 10-110); each
# requested layer adds the write of its output to the loop as well as to the interpolated pass.
_LOOP_SECOND = {"float32": 9.0, "float64": 20.0}
_LOOP_LAYER = {"float32": 0.5, "float64": 2.2}
_LOOP_LAYER_BIAS = {"float32": 3.4, "float64": 5.4}
_LOOP_WRITE = {"float32": 2.4, "float64": 3.75}  # per pair and requested layer: the loop's output write
_INTERP_PASS = {"float32": 3.2, "float64": 6.0}  # every requested layer in one vectorized pass
_LAYER_OVERHEAD = 300.0
_TIE = 0.8  # the tables must cost less than this fraction of the loop
_NODE_LAYER = 8.0


def use_interp(method, setting, layer_array, n_pairs, dtype="float64", built=False) -> bool:
    """Whether a call takes the interpolated path: ``method`` (``"auto"``, ``"interp"``, ``"loop"``),
    ``setting`` of :func:`interp_setting`, the requested layers, the number of pairs, the dtype and
    whether the tables are already built (:func:`tables_built`).

    ``"auto"`` compares the loop's cost (layer two and every further layer for each pair) with the
    interpolated pass (one elementwise pass per requested layer) plus, unless built, the node run
    (``depth`` layers over the mesh's nodes, growing like ``log(depth)``): a few pairs at a great
    depth take the loop.
    """
    applies = setting is not False
    if method == "interp":
        if not applies:
            raise ValueError(
                "method='interp' needs b_std == 0, or inputs of one norm and concrete "
                "(not traced) inputs and scales; use method='loop' or 'auto'"
            )
        return True
    if method == "loop":
        return False
    if method != "auto":
        raise ValueError(f"method must be 'auto', 'interp' or 'loop'; got {method!r}")
    deepest = int(layer_array.max())
    if not applies or deepest < 4:
        return False
    name = "float32" if jnp.dtype(dtype) == jnp.float32 else "float64"
    per_layer = (_LOOP_LAYER if setting is None else _LOOP_LAYER_BIAS)[name]
    loop = (n_pairs * (_LOOP_SECOND[name] + per_layer * deepest + _LOOP_WRITE[name] * len(layer_array))
            + _LAYER_OVERHEAD * deepest)
    tables = 0.0 if built else deepest * (_LAYER_OVERHEAD + _NODE_LAYER * len(mesh(deepest).lo) * N)
    # Near a tie the loop, exact to rounding, is kept (as for the other activations).
    return tables + _INTERP_PASS[name] * n_pairs * len(layer_array) < _TIE * loop


class InterpTables(NamedTuple):
    """Chebyshev coefficients of the kernels' univariate maps at the requested layers.

    ``R``, ``B``, ``F``: ``[m, P * N]`` coefficients of ``R_l``, ``B_l``, ``F_l`` for each
    requested layer (rows of layers 1, and of layer 2 for ``F``, are unused),
    or ``None`` when no requested field needs them. ``q``, ``T``, ``log_s``:
    ``[m]`` the rescaled diagonals and ``log S_l`` of the node run (with a bias); ``layers``:
    ``[m]`` the layer numbers (values, not compile-time constants: one compiled pass serves
    every depth).
    """

    R: jax.Array | None
    B: jax.Array | None
    F: jax.Array | None
    q: jax.Array
    T: jax.Array
    log_s: jax.Array
    layers: jax.Array | None = None


def _needs(get: tuple[str, ...]) -> tuple[bool, bool, bool]:
    """Which maps the fields in ``get`` need: ``(R, B, F)``."""
    return (
        "rho" in get or "nngp" in get or "_omr" in get,
        "ntk" in get or "ntk_normalized" in get,
        "nngp_dot" in get,
    )


_TABLES: OrderedDict = OrderedDict()  # the most recently used tables, keyed by every setting that shapes them
_TABLES_KEPT = 32


def _table_key(layers, dtype, get, bias_setting):
    return (tuple(int(l) for l in layers), jnp.dtype(dtype).name, _needs(get)[2], bias_setting, loop_options())


def tables_built(layers, dtype, get, bias_setting=None) -> bool:
    """Whether :func:`interp_tables` holds these tables already (a call then costs no node run)."""
    return _table_key(layers, dtype, get, bias_setting) in _TABLES


def clear_tables() -> None:
    """Forgets every table :func:`interp_tables` kept."""
    _TABLES.clear()


def interp_tables(layers: tuple[int, ...], dtype, get: tuple[str, ...], bias_setting=None) -> InterpTables:
    """Tabulates the univariate maps, keeping the 32 most recently used.

    ``bias_setting``: ``None`` without bias (the maps do not depend on
    ``W_std`` then), else ``(W_std^2, b_std^2, q)`` as floats with ``q`` the
    common ``Sigma^1(x, x)``. One node run gives the correlation's and the normalized NTK's
    tables together (both are kept, so calls asking for either share them); the derivative
    kernel's needs a field more.
    """
    key = _table_key(layers, dtype, get, bias_setting)
    if key in _TABLES:
        _TABLES.move_to_end(key)
        return _TABLES[key]
    with jax.ensure_compile_time_eval():
        tables = _build_tables(key[0], jnp.dtype(key[1]), (True, True, key[2]), bias_setting)
    _TABLES[key] = tables
    while len(_TABLES) > _TABLES_KEPT:
        _TABLES.popitem(last=False)
    return tables


def _build_tables(layers, dtype, needs, bias_setting) -> InterpTables:
    layer_array = np.asarray(layers)
    depth = int(layer_array.max())
    m = mesh(depth)
    nodes = _nodes(m)
    if bias_setting is None:
        w2, b2, q, bias = 2.0, 0.0, 1.0, False
    else:
        (w2, b2, q), bias = bias_setting, True
    get = ("_omr", "ntk_normalized") + (("nngp_dot",) if needs[2] else ())
    unroll, on_cpu = loop_options()
    as_dtype = partial(jnp.asarray, dtype=dtype)
    qv = as_dtype(np.array([q]))
    omr1 = as_dtype(nodes["omr1"])[None, :]
    log_g = 0.5 * jnp.log(qv)
    one = LayerOne(rho=1.0 - omr1, q1=qv, q2=qv, log_g1=log_g, log_g2=log_g,
                   b_std=as_dtype(math.sqrt(b2)))
    out = _node_run(
        one, omr1, as_dtype(nodes["t1"])[None, :],
        as_dtype(nodes["sin_t1"])[None, :], as_dtype(math.sqrt(w2)), as_dtype(math.sqrt(b2)),
        jnp.asarray(requested_layers(layer_array)), length=loop_length(depth), n_out=len(layer_array), get=get,
        bias=bias, unroll=unroll, on_cpu=on_cpu,
    )
    n_panels = len(m.lo)

    def table(values):  # [m, 1, P * N] node values -> [m, P * N] coefficients
        return chebyshev_coefficients(values.reshape(len(layer_array), -1), n_panels)

    R = table(out["_omr"] / omr1) if needs[0] else None
    B = table(out["ntk_normalized"]) if needs[1] else None
    F = table(out["nngp_dot"] / as_dtype(w2 / 2.0)) if needs[2] else None
    return InterpTables(
        R=R, B=B, F=F,
        q=out["_q"][:, 0], T=out["_T"][:, 0], log_s=out["_log_s"],
        layers=jnp.asarray(layer_array, jnp.int32),
    )


def _node_run_impl(one, omr1, t1, sin_t1, W_std, b_std, requested, *, length, n_out, get, bias, unroll, on_cpu):
    return recursion(one, omr1, t1, sin_t1, W_std, b_std, requested, length=length, n_out=n_out, get=get,
                     bias=bias, every_layer=False, unroll=unroll, on_cpu=on_cpu)


_node_run = jax.jit(_node_run_impl, static_argnames=("length", "n_out", "get", "bias", "unroll", "on_cpu"))


# --------------------------------------------------------------------------
# Evaluation.


@jax.custom_jvp
def half_chord(a: jax.Array) -> jax.Array:
    """``v = sqrt(a / 2)`` for ``a = 1 - |rho| >= 0``; its JVP is 0 at ``a = 0``.

    As for :func:`ntkdepth.kernels.angles.angle_from_omr`: the derivative is
    infinite at ``a = 0``, and 0 is its value along any path on which ``a``
    stays 0 (a kernel's diagonal), which keeps gradients finite.
    """
    return jnp.sqrt(0.5 * a)


@half_chord.defjvp
def _half_chord_jvp(primals, tangents):
    (a,), (a_dot,) = primals, tangents
    v = half_chord(a)
    safe = jnp.where(v > 0, v, 1.0)
    return v, jnp.where(v > 0, a_dot / (4.0 * safe), 0.0)


def locate_panel(v, positive, emin: int, n_pos: int):
    """Panel offset ``[n1, n2]`` (panel index times ``N``) and the local variable ``u in [-1, 1]``.

    For ``rho_1 >= 0`` the panels are eighths of octaves of ``v``, found from its bits
    (:func:`~ntkdepth.kernels.interpolant.octave_panel`: ``u`` is exact); for ``rho_1 < 0``, equal
    panels.
    """
    idx_pos, start, two_over = octave_panel(v, emin, n_pos)
    w = jax.lax.stop_gradient(v)
    s_neg = w * (_NEG_PANELS / _VMAX)
    k_neg = jnp.clip(jnp.floor(s_neg), 0, _NEG_PANELS - 1)
    idx = jnp.where(positive, idx_pos.astype(jnp.int32), n_pos + k_neg.astype(jnp.int32))
    start = jnp.where(positive, start, k_neg * (_VMAX / _NEG_PANELS))
    two_over = jnp.where(positive, two_over, 2.0 * _NEG_PANELS / _VMAX)
    u = jnp.clip((v - start) * two_over - 1.0, -1.0, 1.0)
    return (idx * N).astype(jnp.uint32), u


@partial(jax.jit, static_argnames=("get", "bias", "two", "symmetric"))
def _first_layers(x1, x2, W_std, b_std, rescale=None, *, get, bias, two, symmetric=False):
    """Layer one, its ``[2, n1, n2]`` correlation and gap, and with ``two`` layer two's fields (one
    compiled call: the pass then reads them).

    The correlation and the gap leave as the one array :func:`layer_one` writes them into (as
    two outputs each would be copied out of it); :func:`_interp_pass` takes them apart.
    """
    dtype = x1.dtype
    W_std = jnp.asarray(W_std, dtype)
    b_std = jnp.asarray(b_std, dtype) if bias else jnp.zeros((), dtype)
    one = layer_one(x1, x2, W_std, b_std, bias, rescale, symmetric=symmetric)
    pair = jnp.stack([one.rho, one.gap])
    return one._replace(rho=None, gap=None), pair, (_layer_two(one, W_std, get, bias) if two else None)


@partial(jax.jit, static_argnames=("layers", "get", "bias", "emin", "n_pos"))
def _interp_pass(one, pair, second, W_std, tables, rescale=None, *, layers, get, bias, emin, n_pos):
    """Every requested layer's fields from :func:`_first_layers`' outputs (several layers: one
    requested layer runs in :func:`_interp_one_layer`)."""
    one = one._replace(rho=pair[0], gap=pair[1])
    W_std = jnp.asarray(W_std, one.rho.dtype)
    return _interp_core(one, W_std, tables, layers=layers, get=get, bias=bias, emin=emin,
                        n_pos=n_pos, host_exp=rescale if bias else None, second=second)


@partial(jax.jit, static_argnames=("layers", "get", "bias", "emin", "n_pos", "squeeze", "symmetric"))
def _interp_one_layer(x1, x2, W_std, b_std, tables, rescale=None, *, layers, get, bias, emin, n_pos, squeeze,
                      symmetric):
    """One requested layer in one compiled call: its pass runs in the first layer's (``then`` of
    :func:`layer_one`), so neither the correlation nor the gap is written out and read back."""
    dtype = x1.dtype
    W_std = jnp.asarray(W_std, dtype)
    b_std = jnp.asarray(b_std, dtype) if bias else jnp.zeros((), dtype)

    def then(one):
        out = _interp_core(one, W_std, tables, layers=layers, get=get, bias=bias, emin=emin, n_pos=n_pos,
                           host_exp=rescale if bias else None)
        return {k: v[0] for k, v in out.items()} if squeeze else out

    return layer_one(x1, x2, W_std, b_std, bias, rescale, symmetric=symmetric, then=then)


def _interp_impl(x1, x2, W_std, b_std, tables, rescale=None, *, layers, get, bias, emin, n_pos, squeeze=False,
                 symmetric=False):
    if len(layers) == 1:
        return _interp_one_layer(x1, x2, W_std, b_std, tables, rescale, layers=layers, get=get, bias=bias,
                                 emin=emin, n_pos=n_pos, squeeze=squeeze, symmetric=symmetric)
    # Layer two comes from its own compiled call: computed inside the pass, XLA would compute it
    # again in every layer's pass, whose select reads it.
    one, pair, second = _first_layers(x1, x2, W_std, b_std, rescale, get=get, bias=bias, two=2 in layers,
                                      symmetric=symmetric)
    return _interp_pass(one, pair, second, W_std, tables, rescale, layers=layers, get=get, bias=bias, emin=emin,
                        n_pos=n_pos)


def _layer_two(one, W_std, get, bias) -> dict:
    """Layer two's fields of ``get`` by one step of the layer loop itself (closed forms, no table)."""
    gap = one.gap if one.gap is not None else 1.0 - jnp.abs(one.rho)
    omr1 = jnp.where(one.rho >= 0, gap, 2.0 - gap)
    _, t1, sin_t1, e1 = first_angle(one)
    second = recursion(one, omr1, t1, sin_t1, W_std, one.b_std, jnp.asarray(requested_layers([2])), e1=e1,
                       length=2, n_out=1, get=get, bias=bias, every_layer=False, unroll=1, on_cpu=True)
    return {name: second[name][0] for name in get}


def layer_kinds(layers) -> tuple[int, ...]:
    """Each layer's kind for the compiled pass: 1, 2 (closed forms) or 3 (the tables)."""
    return tuple(min(int(l), 3) for l in layers)


def _interp_core(one, W_std, tables, *, layers, get, bias, emin, n_pos, host_exp=None, second=None):
    """The requested fields from layer one and the tables: one elementwise pass per layer.

    ``layers``: :func:`layer_kinds` of the layers (their numbers are ``tables.layers``).

    ``host_exp``: with a bias, the ``k`` of the factor ``2^k`` by which
    :mod:`ntkdepth.kernels.scaling` multiplied the inputs (the tables belong
    to those inputs; their raw kernels are divided by ``4^k``).

    ``second``: layer two's fields (:func:`_layer_two`) where ``layers`` has a 2, computed here if
    ``None``.
    """
    half_w2 = W_std * W_std / 2.0
    rho = one.rho
    positive = rho >= 0
    gap = one.gap if one.gap is not None else 1.0 - jnp.abs(rho)
    omr1 = jnp.where(positive, gap, 2.0 - gap)
    v = half_chord(gap)
    same = (v == 0) & positive  # identical directions: the maps are exactly 1 there
    base, u = locate_panel(v, positive, emin, n_pos)
    # Materialized once: otherwise XLA recomputes them inside every gather of the series.
    base, u = jax.lax.optimization_barrier((base, u))
    if bias and host_exp is not None:
        info = jnp.finfo(rho.dtype)
        unscale = power_of_two(jnp.clip(-host_exp, info.minexp, info.maxexp - 1), rho.dtype)
    else:
        unscale = 1.0
    if 2 in layers and second is None:
        second = _layer_two(one, W_std, get, bias)
    # Every layer is one vectorized pass producing each output whole ([m, n1, n2]): stacking per-layer
    # arrays would write each layer twice (measured 2.3x slower for 100 layers).
    kinds = jnp.asarray(layers, jnp.int32)
    per_layer = dict(kind=kinds, ell=tables.layers.astype(rho.dtype))
    if bias:
        per_layer.update(log_s=jnp.where(kinds > 1, tables.log_s, 0.0), q=tables.q, T=tables.T)
    for key in ("R", "B", "F"):
        if getattr(tables, key) is not None:
            per_layer[key] = getattr(tables, key)

    def layer(p):
        kind = p["kind"]
        # sqrt(Sigma^l(x, x)) and sqrt(Theta^l(x, x)) for each row.
        if bias:
            half = jnp.exp(0.5 * p["log_s"])
            sq, st = half * jnp.sqrt(p["q"]) * unscale, half * jnp.sqrt(p["T"]) * unscale
            g = ((jnp.full_like(one.q1, sq), jnp.full_like(one.q2, sq)),
                 (jnp.full_like(one.q1, st), jnp.full_like(one.q2, st)))
        else:
            log_half_s = 0.5 * (p["ell"] - 1.0) * log_half_square(W_std)
            g1, g2 = jnp.exp(log_half_s + one.log_g1), jnp.exp(log_half_s + one.log_g2)
            root_l = jnp.sqrt(p["ell"])
            g = ((g1, g2), (root_l * g1, root_l * g2))
        outer_q = g[0][0][:, None] * g[0][1][None, :]
        outer_t = g[1][0][:, None] * g[1][1][None, :]
        values = {}
        if "rho" in get or "nngp" in get or "_omr" in get:
            omr = jnp.clip(omr1 * clenshaw(p["R"], base, u), 0.0, 1.0)
            omr = jnp.where(kind == 1, omr1, omr)
            rho_l = jnp.where(kind == 1, rho, 1.0 - omr)
            values.update(_omr=omr, rho=rho_l, nngp=times(rho_l, outer_q))
        if "ntk" in get or "ntk_normalized" in get:
            tbar = jnp.where(same, 1.0, clenshaw(p["B"], base, u))
            tbar = jnp.where(kind == 1, rho, tbar)
            values.update(ntk_normalized=tbar, ntk=times(tbar, outer_t))
        if "nngp_dot" in get:
            fprime = jnp.where(same, 1.0, clenshaw(p["F"], base, u))
            values["nngp_dot"] = jnp.where(kind == 1, 0.0, half_w2 * fprime)
        out = {name: values[name] if second is None else jnp.where(kind == 2, second[name], values[name])
               for name in get}
        if "nngp" in get:
            out.update(nngp_diag1=g[0][0] * g[0][0], nngp_diag2=g[0][1] * g[0][1])
        if "ntk" in get:
            out.update(ntk_diag1=g[1][0] * g[1][0], ntk_diag2=g[1][1] * g[1][1])
        return out

    return jax.vmap(layer)(per_layer)


def interp_trace(x1, x2, W_std, b_std, *, layers: tuple[int, ...], get: tuple[str, ...],
                 bias_setting=None, squeeze: bool = False, rescale=None, symmetric: bool = False) -> dict:
    """The requested fields at ``layers`` by the interpolated path (inputs already validated).

    ``x1 [n1, n0]``, ``x2 [n2, n0]`` of one floating dtype; ``bias_setting`` as
    in :func:`interp_tables`; ``rescale`` and ``symmetric`` (``x2`` is ``x1``) as for the layer loop's
    layer one.
    Returns a dict of ``[m, n1, n2]`` fields and ``[m, n]`` diagonals, as the
    layer loop does; with ``squeeze`` (one layer) ``[n1, n2]`` and ``[n]``.
    """
    tables = interp_tables(layers, x1.dtype, get, bias_setting)
    m = mesh(max(layers))
    return _interp_impl(
        x1, x2, jit_scalar(W_std, x1.dtype), jit_scalar(b_std, x1.dtype), tables, rescale,
        layers=layer_kinds(layers), get=get, bias=bias_setting is not None, emin=m.emin, n_pos=m.n_pos,
        squeeze=squeeze, symmetric=symmetric,
    )


@partial(jax.jit, static_argnames=("layers", "emin", "n_pos"))
def _correlation_impl(rho, tables, *, layers, emin, n_pos):
    dtype = rho.dtype
    one = unit_layer_one(rho)
    out = _interp_core(one, jnp.asarray(math.sqrt(2.0), dtype), tables, layers=layers,
                       get=("ntk_normalized", "_omr", "rho"), bias=False, emin=emin,
                       n_pos=n_pos)
    return correlation_fields(one, out, tuple(i for i, layer in enumerate(layers) if layer == 1),
                               rho.shape)


def interp_correlation(rho, *, layers: tuple[int, ...]) -> dict:
    """:func:`ntkdepth.kernels.correlation_trace`'s fields by the interpolated path.

    ``rho``: starting correlations of any shape (validated); returns
    ``[len(layers), *rho.shape]`` arrays.
    """
    tables = interp_tables(layers, rho.dtype, CORRELATION_TABLE_FIELDS)
    m = mesh(max(layers))
    return _correlation_impl(rho, tables, layers=layer_kinds(layers), emin=m.emin, n_pos=m.n_pos)
