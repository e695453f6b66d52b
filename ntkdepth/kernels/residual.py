"""Residual networks' kernels: the branch scale (a number ``alpha`` or ``a/sqrt(L)``), the layer loop of
the stream in gap form (``1 - rho``, ``1 - Thetabar``), and the linear readout (docs/residual.md).
"""

from __future__ import annotations

import functools
import math
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.activations import ABRelu, Activation, Gelu, Identity
from ntkdepth.kernels.angles import angle_of_gap, arcsine, chebyshev_series
from ntkdepth.kernels.scaling import times
from ntkdepth.kernels.scan import slot_of

__all__ = ["TMS_COEFFICIENTS", "check_residual", "readout_fields",
           "residual_alpha", "residual_loop"]

_PER_SQRT_DEPTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)?\s*/\s*sqrt\s*\(\s*L\s*\)\s*$")


def check_residual(residual) -> float | str | None:
    """``residual`` checked: ``None`` (a plain network), a finite number ``alpha > 0``, or the text
    ``"a/sqrt(L)"`` with a number ``a > 0`` (``alpha`` set by the depth), returned as ``"a/sqrt(L)"``
    with ``a`` written by ``%g``. Anything else is a ``ValueError`` saying what is allowed."""
    if residual is None:
        return None
    if isinstance(residual, str):
        match = _PER_SQRT_DEPTH.match(residual)
        a = None if match is None else float(match.group(1) or 1.0)
        if a is None or not (math.isfinite(a) and a > 0):
            raise ValueError(
                f"residual must be a number alpha > 0, a text 'a/sqrt(L)' with a number a > 0 (e.g. "
                f"'1/sqrt(L)'), or None; got {residual!r}")
        return f"{a:g}/sqrt(L)"
    try:
        alpha = float(residual)
    except (TypeError, ValueError):
        raise ValueError(f"residual must be a number alpha > 0, a text 'a/sqrt(L)', or None; got {residual!r}") from None
    if isinstance(residual, (bool, np.bool_)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"residual must be a finite number alpha > 0, a text 'a/sqrt(L)', or None; got {residual!r}")
    return alpha


def residual_alpha(residual, depth: int) -> float | None:
    """The branch scale ``alpha`` of a depth-``depth`` residual network: ``residual`` itself for a
    number, ``a / sqrt(depth)`` for ``"a/sqrt(L)"``, ``None`` for a plain network."""
    residual = check_residual(residual)
    if residual is None or not isinstance(residual, str):
        return residual
    if isinstance(depth, (bool, np.bool_)) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
    return float(residual.split("/")[0]) / math.sqrt(int(depth))


def readout_fields(out: dict, W_out: float, b_std: float) -> dict:
    """Every field of the output ``f = (W_out / sqrt(n)) W h^L + b_std b``, a linear readout of the stream.

    ``out``: the stream's fields at layer L without the layer axis, ``rho`` and ``ntk_normalized``
    ``[n1, n2]`` and the logarithms of the diagonals ``_lq1``, ``_lt1`` ``[n1]``, ``_lq2``, ``_lt2``
    ``[n2]`` (``log Sigma^L(x, x)``, ``log Theta^L(x, x)``). The readout's weights add ``W_out^2 Sigma^L
    + b^2`` to the NTK and pass the earlier parameters' ``Theta^L`` on with the factor ``W_out^2``
    (docs/residual.md#the-readout):

        Sigma_f = W_out^2 Sigma^L + b^2,   Sigmadot_f = W_out^2,   Theta_f = W_out^2 (Theta^L + Sigma^L) + b^2.

    The correlation and the normalized NTK of ``f`` are convex combinations of the stream's, with
    weights from the logarithms: exact where ``Sigma^L`` or ``Theta^L`` overflow.
    """
    dtype = out["rho"].dtype
    lw = 2.0 * math.log(float(W_out))
    lb = 2.0 * math.log(float(b_std)) if b_std > 0 else -np.inf
    rows = []
    for lq, lt in ((out["_lq1"], out["_lt1"]), (out["_lq2"], out["_lt2"])):
        lqf = jnp.logaddexp(lw + lq, lb)  # log Sigma_f(x, x)
        ltf = jnp.logaddexp(lw + jnp.logaddexp(lt, lq), lb)  # log Theta_f(x, x)
        half = lambda a, total: jnp.exp(0.5 * (a - total))  # noqa: E731
        bias = b_std > 0
        rows.append(dict(lq=lqf, lt=ltf, u=half(lw + lq, lqf), v=half(lb, lqf) if bias else None,
                         r=half(lw + lt, ltf), s=half(lw + lq, ltf), o=half(lb, ltf) if bias else None))
    a, b = rows
    ones = jnp.ones_like(out["rho"])
    rho = _convex_sum([(a["u"], b["u"], out["rho"])] + ([(a["v"], b["v"], ones)] if b_std > 0 else []))
    tbar = _convex_sum([(a["r"], b["r"], out["ntk_normalized"]), (a["s"], b["s"], out["rho"])]
                       + ([(a["o"], b["o"], ones)] if b_std > 0 else []))
    g1, g2 = jnp.exp(0.5 * a["lq"]), jnp.exp(0.5 * b["lq"])
    h1, h2 = jnp.exp(0.5 * a["lt"]), jnp.exp(0.5 * b["lt"])
    result = {"rho": rho, "ntk_normalized": tbar,
              "nngp": _times(rho, g1[:, None] * g2[None, :]), "ntk": _times(tbar, h1[:, None] * h2[None, :]),
              "nngp_dot": jnp.full(rho.shape, float(W_out) ** 2, dtype)}
    return result


def _convex_sum(terms) -> jax.Array:
    """``sum_k w_k w'_k x_k`` for rows ``w``, ``w'`` whose squares sum to 1, in ``[-1, 1]``; near 1 formed as
    ``1 - (sum_k w_k w'_k (1 - x_k) + sum_k (w_k - w'_k)^2 / 2)``, so that identical inputs keep exactly 1."""
    direct, gap = 0.0, 0.0
    for w1, w2, x in terms:
        ww = w1[:, None] * w2[None, :]
        direct = direct + ww * x
        gap = gap + ww * (1.0 - x) + 0.5 * jnp.square(w1[:, None] - w2[None, :])
    return jnp.clip(jnp.where(direct > 0.5, 1.0 - gap, direct), -1.0, 1.0)


def _times(value, factor):
    """``value * factor``, and 0 where ``value`` is 0 (even if ``factor`` overflowed to inf)."""
    return jnp.where(value == 0, jnp.zeros_like(value), value * factor)


# ---------------------------------------------------------------------------------------------
# The stream's layer loop in gap form (docs/residual.md#the-gap-recursion).

#: Chebyshev coefficients of ``(t - sin t) / t^3`` on ``t^2 in [0, pi^2]``.
TMS_COEFFICIENTS = (
    0.13202455073483024, -0.032603532249711825, 0.0019677890761090194, -6.918375544202041e-05,
    1.5850396480358042e-06, -2.5504221600509245e-08, 3.0389459993659944e-10, -2.788883346933535e-12,
    2.031721918030989e-14, -1.2034702173015404e-16, 5.910129822123761e-19, -2.4453931633281457e-21,
)

#: Pairs per block of the loop on a CPU: a block's state and intermediates stay in the cache through
#: a chunk of layers.
BLOCK_PAIRS = 1 << 16
#: Bytes of per-input tables (weights, the activation's rows) one chunk of layers may hold.
CHUNK_BYTES = 1 << 26


def _t_minus_sin_t(t):
    """``t - sin t`` for ``t in [0, pi]`` as ``t^3 S(t^2)`` (:data:`TMS_COEFFICIENTS`): relative to itself."""
    t2 = t * t
    return t2 * t * chebyshev_series(TMS_COEFFICIENTS, t2 * (2.0 / math.pi**2) - 1.0, 1.0 / math.pi**3)


def _wall(pred, fn, *args):
    """``fn(*args)`` as its own compiled computation (a conditional on ``pred``, always true where it
    runs; its other branch gives zeros): XLA would otherwise copy an expensive elementwise chain into
    each of its consumers."""
    return jax.lax.cond(pred, fn, lambda *a: jax.tree.map(jnp.zeros_like, jax.eval_shape(fn, *a)), *args)


def _gap_fn(act: Activation):
    """``(gaps, uses_rows)``: ``gaps(g, ra, rc, same, pred) -> (1 - kappa, 1 - delta)`` for pairs at
    ``1 - rho = g``, and whether it reads the activation's rows ``ra``, ``rc`` (and ``same``).

    An ``a min(x, 0) + b max(x, 0)`` activation (ReLU) has ``1 - kappa = g (1 - e t) + e (t - sin t)``
    and ``1 - delta = e t`` with ``t = arccos(1 - g)`` and ``e = (a - b)^2 / (pi (a^2 + b^2))``: both
    relative to themselves as ``g -> 0``. Any other activation takes its correlations at ``rho = 1 - g``.
    """
    if isinstance(act, Identity) or (isinstance(act, ABRelu) and act.a == act.b):  # kappa = rho, delta = 1
        return (lambda g, ra, rc, same, pred: (g, jnp.zeros_like(g))), False
    if isinstance(act, ABRelu):
        e = (act.a - act.b) ** 2 / (math.pi * (act.a**2 + act.b**2))

        def relu_gaps(g, ra, rc, same, pred):
            t = _wall(pred, angle_of_gap, g)
            kgap = _wall(pred, lambda g, t: g * (1.0 - e * t) + e * _t_minus_sin_t(t), g, t)
            return kgap, e * t

        return relu_gaps, False

    def gaps(g, ra, rc, same, pred):
        kappa, delta = _wall(pred, lambda g: correlations(ra, rc, 1.0 - g), g)
        zero = jnp.zeros_like(g)
        return jnp.where(same, zero, 1.0 - kappa), jnp.where(same, zero, 1.0 - delta)

    correlations = {Gelu: _gelu_correlations}.get(type(act))
    correlations = act.correlations if correlations is None else partial(correlations, act)
    return gaps, True


def _gelu_correlations(act, r1: dict, r2: dict, rho):
    """:meth:`Gelu.correlations <ntkdepth.kernels.activations.Gelu.correlations>` through
    ``z = rho sqrt(q1 q2 / ((1 + q1)(1 + q2)))``: the covariance is ``z sqrt(P)`` with
    ``P = (1 + q1)(1 + q2)``, ``sqrt(P - c^2) = sqrt(P) w`` with ``w = sqrt(1 - z^2)``, and
    ``arctan2(c, sqrt(P - c^2)) = asin(z)``; the per-input factors are taken per input."""
    s1, s2 = r1["q"] / (1.0 + r1["q"]), r2["q"] / (1.0 + r2["q"])
    z = jnp.clip(rho * (jnp.sqrt(s1) * jnp.sqrt(s2)), -1.0, 1.0)
    root_p1 = jnp.sqrt(1.0 + r1["q"]) * jnp.sqrt(1.0 + r2["q"])
    inv_p1 = 1.0 / ((1.0 + r1["q"]) * (1.0 + r2["q"]))
    p = r1["q"] * r2["q"]
    w2 = (1.0 - z) * (1.0 + z)
    inv_w = jax.lax.rsqrt(w2)
    angle = arcsine(z)
    k = ((z * z + p * w2) * inv_w / root_p1 + z * root_p1 * angle) / (2.0 * math.pi) + 0.25 * z * root_p1
    kd = (z * inv_w / (2.0 * math.pi)) * (inv_p1 * inv_w * inv_w + (1.0 - p) * inv_p1 + 1.0) + 0.25 \
        + angle / (2.0 * math.pi)
    return (k * (jax.lax.rsqrt(r1["m"]) * jax.lax.rsqrt(r2["m"])),
            kd * (jax.lax.rsqrt(r1["md"]) * jax.lax.rsqrt(r2["md"])))


def _diagonal_step(act, plan, lq, ltq, lw2, lbias, la2):
    """One block per input (``[n]``) from ``lq = log Sigma^l(x, x)`` and ``ltq = log(Theta^l(x, x) / Sigma^l(x, x))``:
    the activation's rows at ``q = exp(lq)``, the weights of the convex combinations, and the new ``lq``,
    the increments of ``lq`` and ``ltq``, and ``log Sigmadot^{l+1}(x, x)`` (docs/residual.md#the-normalized-recursion).

    Every weight comes from logarithms of ratios of order one, never as the difference of two large
    logarithms: with a ReLU the diagonal grows by a factor per block, and ``log Sigma^l`` of order
    ``l`` would leave the weights only ``l`` ulps of ``log`` accurate.
    """
    rows = act.rows(lq, plan)
    half = lambda z: jnp.exp(0.5 * z)  # noqa: E731
    if act.degree is not None:  # log(m(q) / q) = log m(1) + (degree - 1) log q, exact for degree 1
        lm_rel = act.rows(jnp.zeros_like(lq), plan)["lm"] + (act.degree - 1) * lq
    else:
        lm_rel = rows["lm"] - lq
    lsig = la2 + lw2 + lm_rel  # log(alpha^2 W^2 m(q) / q)
    lb = None if lbias is None else lbias - lq  # log(alpha^2 b^2 / q)
    lphi = lsig if lb is None else jnp.logaddexp(lsig, lb)  # log(phi / q), phi the branch's kernel
    grow_q = jax.nn.softplus(lphi)  # log(q' / q)
    if act.passes_gradient:
        lsd = lw2 + rows["lmd"]  # log Sigmadot^{l+1}(x, x)
        keep = jnp.logaddexp(0.0, la2 + lsd)  # log(1 + alpha^2 Sigmadot)
        grow_t = jnp.logaddexp(keep, lphi - ltq)  # log(T' / T)
        rt = half(la2 + lsd - grow_t)
    else:
        lsd = jnp.full_like(lq, -jnp.inf)
        grow_t = jax.nn.softplus(lphi - ltq)
        rt = jnp.zeros_like(lq)
    weights = dict(u=half(-grow_q), v=half(lsig - grow_q), r=half(-grow_t), rt=rt, p=half(lsig - ltq - grow_t))
    if lb is not None:
        weights.update(w=half(lb - grow_q), o=half(lb - ltq - grow_t))
    return rows, weights, (grow_q, grow_t - grow_q, lsd)


def _loop_shape(n1: int, n2: int, steps: int, row_bytes: int, on_cpu: bool, symmetric: bool):
    """``((tile rows, tile columns), tile row starts, tile column starts, chunk layers, chunks)``.

    Tiles of about ``BLOCK_PAIRS`` pairs (one tile off a CPU): blocks of whole rows, or for a symmetric
    kernel square tiles on and above the diagonal; the last ones overlap their neighbours where the
    sizes do not divide. Chunks of layers hold per-input tables of at most ``CHUNK_BYTES``.
    """
    def split(n, size):
        count = -(-n // size)
        size = -(-n // count)
        return size, [min(i * size, n - size) for i in range(count)]

    if not on_cpu:
        shape, rows, cols = (n1, n2), [0], [0]
    elif symmetric:
        side, starts = split(n1, max(1, math.isqrt(BLOCK_PAIRS)))
        pairs = [(a, b) for i, a in enumerate(starts) for b in starts[i:]]
        shape, rows, cols = (side, side), [a for a, _ in pairs], [b for _, b in pairs]
    else:
        size, rows = split(n1, max(1, min(n1, BLOCK_PAIRS // max(n2, 1))))
        shape, cols = (size, n2), [0] * len(rows)
    chunk = max(1, min(steps, CHUNK_BYTES // max(1, (n1 + n2) * row_bytes)))
    chunks = -(-steps // chunk)
    chunk = -(-steps // chunks)
    return shape, np.asarray(rows, np.int32), np.asarray(cols, np.int32), chunk, chunks


@partial(jax.jit, static_argnames=("act", "plan", "length", "n_out", "get", "bias", "every_layer", "squeeze",
                                   "symmetric"))
def residual_loop(rho1, lq1, lq2, W_std, b_std, alpha, requested, *, act: Activation, plan, length: int, n_out: int,
                  get: tuple, bias: bool, every_layer: bool, squeeze: bool = False, symmetric: bool = False,
                  omr1=None) -> dict:
    """The residual stream's layers 1..depth from layer 1, keeping the ``n_out`` layers of ``requested``.

    ``requested``: :func:`ntkdepth.kernels.scan.requested_layers`, whose deepest layer is the depth (a
    value); ``length``: the compiled loop's (:func:`ntkdepth.kernels.scan.run_length`), whose layers past
    the depth change nothing. Each layer's place in the output is found inside the loop.

    ``rho1 [n1, n2]``: the first layer's correlations; ``lq1 [n1]``, ``lq2 [n2]``: the logarithms of
    ``Sigma^1(x, x)``; ``omr1``: ``1 - rho1`` where known more closely than from ``rho1``; layer ``l + 1`` is ``h^l + alpha (W phi(h^l) + b)``. Every pair carries
    ``1 - rho`` and ``1 - Thetabar``, each updated as a sum of non-negative terms
    (docs/residual.md#the-gap-recursion). Returns the fields of ``get`` (of ``KERNEL_FIELDS``; ``"_omr"``
    for ``1 - rho``, ``"_rows"``, ``"_logs"`` for the diagonals' logarithms) as ``[n_out, n1, n2]``
    and the diagonals as ``[n_out, n]``; with ``squeeze`` (one layer) without the layer axis.

    On a CPU the pairs run in tiles through chunks of layers, so that a tile's state stays in the cache and
    only the requested layers' values travel to memory; ``symmetric`` (``x2`` is ``x1``) computes the tiles
    on and above the diagonal and writes each also transposed.
    """
    dtype = rho1.dtype
    n1, n2 = rho1.shape
    depth = requested[0, -1]  # the deepest requested layer, a value
    on_cpu = jax.default_backend() == "cpu"
    lw2 = 2.0 * jnp.log(jnp.asarray(W_std, dtype))
    la2 = 2.0 * jnp.log(jnp.asarray(alpha, dtype))
    lbias = la2 + 2.0 * jnp.log(jnp.asarray(b_std, dtype)) if bias else None
    gaps, uses_rows = _gap_fn(act)
    scratch = not on_cpu and not every_layer  # off a CPU unrequested layers go to a scratch slot
    slots = n_out + 1 if scratch else n_out

    pair_keys = tuple(k for k in ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized", "_omr") if k in get)
    diag_keys = ((("nngp_diag1", "nngp_diag2") if "nngp" in get else ())
                 + (("ntk_diag1", "ntk_diag2") if "ntk" in get else ())
                 + (("_lq", "_lt", "_lsd") if "_rows" in get else ())
                 + (("_lq1", "_lq2", "_lt1", "_lt2") if "_logs" in get else ()))

    def pair_values(g, rho, tbar, dgap, fa, fc):
        """A layer's pair fields from ``1 - rho = g``, ``rho``, ``Thetabar``, ``1 - delta`` of the layer
        before and the per-input factors ``fa [B]``, ``fc [n2]``."""
        out = {}
        for key in pair_keys:
            if key == "rho":
                out[key] = rho
            elif key == "ntk_normalized":
                out[key] = tbar
            elif key == "_omr":
                out[key] = g
            elif key == "nngp":
                out[key] = times(rho, fa["eq"][:, None] * fc["eq"][None, :])
            elif key == "ntk":
                out[key] = times(tbar, fa["et"][:, None] * fc["et"][None, :])
            else:  # nngp_dot: delta W^2 E[phi' phi'] at the layer before
                out[key] = times(1.0 - dgap, fa["ed"][:, None] * fc["ed"][None, :])
        return out

    def diag_values(lq, lt, lsd):
        a, b = slice(0, n1), slice(n1, None)
        table = {"nngp_diag1": lambda: jnp.exp(lq[a]), "nngp_diag2": lambda: jnp.exp(lq[b]),
                 "ntk_diag1": lambda: jnp.exp(lt[a]), "ntk_diag2": lambda: jnp.exp(lt[b]),
                 "_lq": lambda: lq[a], "_lt": lambda: lt[a], "_lsd": lambda: lsd[a],
                 "_lq1": lambda: lq[a], "_lq2": lambda: lq[b], "_lt1": lambda: lt[a], "_lt2": lambda: lt[b]}
        return {k: table[k]() for k in diag_keys}

    def store(bufs, values, s, index):
        def put(bufs):
            return {k: jax.lax.dynamic_update_slice(bufs[k], values[k][None].astype(dtype),
                                                    tuple(jnp.asarray(i, jnp.int32) for i in (s,) + index[k]))
                    for k in bufs}

        if every_layer or scratch:
            return put(bufs)
        return jax.lax.cond(s < n_out, put, lambda b: b, bufs)

    # Layer 1.
    lq = jnp.concatenate([jnp.broadcast_to(lq1, (n1,)), jnp.broadcast_to(lq2, (n2,))])
    g1 = jnp.clip(1.0 - rho1 if omr1 is None else omr1, 0.0, 2.0)
    first_f = dict(eq=jnp.exp(0.5 * lq), et=jnp.exp(0.5 * lq), ed=jnp.zeros_like(lq))

    def first(r0, c0, shape):
        """Layer 1's pair fields of the tile ``shape`` at ``(r0, c0)``."""
        def cut(v):
            return jax.lax.dynamic_slice(v, (r0, c0), shape)

        return pair_values(cut(g1), cut(rho1), cut(rho1), jnp.zeros(shape, dtype),
                           {k: jax.lax.dynamic_slice_in_dim(v[:n1], r0, shape[0]) for k, v in first_f.items()},
                           {k: jax.lax.dynamic_slice_in_dim(v[n1:], c0, shape[1]) for k, v in first_f.items()})

    def store_tile(bufs, values, s, r0, c0):
        """A tile's values at ``(r0, c0)``, and for a symmetric kernel transposed at ``(c0, r0)``."""
        bufs = store(bufs, values, s, {k: (r0, c0) for k in pair_keys})
        if symmetric:
            bufs = store(bufs, {k: v.T for k, v in values.items()}, s, {k: (c0, r0) for k in pair_keys})
        return bufs

    diag_index = {k: (0,) for k in diag_keys}
    # Every requested layer's values are written into these (layer 1's by the first chunk's blocks).
    # Each filled with its own value, not a constant: XLA would copy a shared or constant buffer into the loop
    # (every entry is written before it is read).
    pbufs = {k: jnp.full((slots, n1, n2), rho1[0, 0] * 0.0 + i, dtype) for i, k in enumerate(pair_keys)}
    dbufs = {k: jnp.zeros((slots, n1 if k in ("nngp_diag1", "ntk_diag1", "_lq", "_lt", "_lsd", "_lq1", "_lt1")
                           else n2), dtype) for k in diag_keys}
    # slot_of gives n_out (the scratch slot off a CPU) for an unrequested layer; on a CPU `store` skips it.
    s0 = slot_of(requested, jnp.ones((), jnp.int32))
    dbufs = store(dbufs, diag_values(lq, lq, jnp.full_like(lq, -jnp.inf)), s0, diag_index)

    steps = length - 1
    if steps > 0:
        probe = jax.eval_shape(lambda v: act.rows(v, plan), lq)
        row_bytes = (12 + sum(int(np.prod(x.shape[1:], dtype=np.int64)) for x in jax.tree.leaves(probe))) * 8
        shape, tile_rows, tile_cols, chunk, chunks = _loop_shape(n1, n2, steps, row_bytes, on_cpu, symmetric)
        tiles = len(tile_rows)
        tile_rows, tile_cols = jnp.asarray(tile_rows), jnp.asarray(tile_cols)

        wkeys = ("u", "v", "r", "rt", "p") + (("w", "o") if bias else ())
        col = {k: i for i, k in enumerate(wkeys + ("eq", "et", "ed", "lq"))}

        uniform = jnp.all(lq == lq[0])  # inputs of one norm keep one set of weights at every layer

        def chunk_step(carry, c):
            g_in, h_in, logs, pbufs, dbufs = carry
            ell = 1 + c * chunk + jnp.arange(chunk)  # the layer each step leaves (1-based)
            valid = ell < depth
            s_new = slot_of(requested, ell + 1)  # the place of layer ell + 1

            def diagonal(carry, x):
                (lq, ltq, err), dbufs = carry
                ok, s = x
                rows, weights, (dq, dt, lsd) = _diagonal_step(act, plan, lq, ltq, lw2, lbias, la2)
                # Compensated sums (Kahan): the logarithms take many small increments (1e5 layers would
                # leave ltq, hence the weights, 1e-10 off).
                y = jnp.stack([dq, dt]) - err
                total = jnp.stack([lq, ltq]) + y
                err_n = (total - jnp.stack([lq, ltq])) - y
                lqn, ltqn = total[0], total[1]
                ltn = lqn + ltqn
                half = lambda z: jnp.exp(0.5 * z)  # noqa: E731
                # Every per-input number of the step in one array [K, n]: one slice per layer in the pair loop.
                table = jnp.stack([weights[k] for k in wkeys] + [half(lqn), half(ltn), half(lsd), lq])
                put = lambda b: store(b, diag_values(lqn, ltn, lsd), s, diag_index)  # noqa: E731
                # The last chunk's surplus steps (ok false) leave everything as it is.
                dbufs = jax.lax.cond(ok, put, lambda b: b, dbufs)
                new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), (lqn, ltqn, err_n), (lq, ltq, err))
                return (new, dbufs), (rows if uses_rows else None, table)

            (logs, dbufs), (rows, table) = jax.lax.scan(diagonal, (logs, dbufs), (valid, s_new))
            rows1, rows2 = jax.tree.map(lambda v: v[:, :n1], rows), jax.tree.map(lambda v: v[:, n1:], rows)
            table1, table2 = table[:, :, :n1], table[:, :, n1:]

            def tile(i, carry):
                g_out, h_out, pbufs = carry
                r0, c0 = tile_rows[i], tile_cols[i]
                g = jax.lax.dynamic_slice(g_in, (r0, c0), shape)
                h = jax.lax.dynamic_slice(h_in, (r0, c0), shape)
                ta = jax.lax.dynamic_slice_in_dim(table1, r0, shape[0], 2)
                tb = jax.lax.dynamic_slice_in_dim(table2, c0, shape[1], 2)
                ra_all = jax.tree.map(lambda v: jax.lax.dynamic_slice_in_dim(v, r0, shape[0], 1), rows1)
                rc_all = jax.tree.map(lambda v: jax.lax.dynamic_slice_in_dim(v, c0, shape[1], 1), rows2)
                pbufs = jax.lax.cond(c == 0, lambda b: store_tile(b, first(r0, c0, shape), s0, r0, c0),
                                     lambda b: b, pbufs)

                def layer(carry, x):
                    ra, rc, ta, tc, ok, s = x

                    def advance(carry):
                        g, h, pbufs = carry
                        wa = {k: ta[col[k], :, None] for k in col}  # [B, 1]
                        wc = {k: tc[None, col[k], :] for k in col}  # [1, n2]
                        if uses_rows:
                            ra_b = {k: v[:, None] for k, v in ra.items()}
                            rc_b = {k: v[None, :] for k, v in rc.items()}
                            same = (g == 0.0) & (wa["lq"] == wc["lq"])
                        else:
                            ra_b = rc_b = same = None
                        kgap, dgap = gaps(g, ra_b, rc_b, same, ok)

                        def update(outer, spread, lost):
                            # 1 - Thetabar' = h + increment: its terms are small, so that the running value
                            # takes one rounding a layer; 1 - r r' = lost (the other weights' squares) + spread.
                            def fn(g, h, kgap, dgap):
                                gn = outer("u") * g + outer("v") * kgap + spread(("u", "v", "w") if bias else ("u", "v"))
                                step = (outer("rt") * (dgap + (1.0 - dgap) * h) + outer("p") * kgap - lost() * h
                                        + spread(("r", "rt", "p", "o") if bias else ("r", "rt", "p")))
                                return jnp.clip(gn, 0.0, 2.0), jnp.clip(h + step, 0.0, 2.0)

                            return fn

                        # Inputs of one norm share one set of weights: scalars, and no spread.
                        one = {k: tc[col[k], 0] for k in wkeys}
                        tail = ("rt", "p", "o") if bias else ("rt", "p")
                        gn, hn = jax.lax.cond(
                            uniform,
                            update(lambda k: one[k] * one[k], lambda keys: 0.0,
                                   lambda: sum(one[k] * one[k] for k in tail)),
                            update(lambda k: wa[k] * wc[k],  # 1 - sum_k w_k w'_k: half the rows' squared distance
                                   lambda keys: 0.5 * sum(jnp.square(wa[k] - wc[k]) for k in keys),
                                   lambda: 0.5 * (sum(wa[k] * wa[k] for k in tail) + sum(wc[k] * wc[k] for k in tail)
                                                  + jnp.square(wa["r"] - wc["r"]))),
                            g, h, kgap, dgap)
                        fa = {k: wa[k][:, 0] for k in ("eq", "et", "ed")}
                        fc = {k: wc[k][0] for k in ("eq", "et", "ed")}
                        pbufs = store_tile(pbufs, pair_values(gn, 1.0 - gn, 1.0 - hn, dgap, fa, fc), s, r0, c0)
                        return gn, hn, pbufs

                    # A conditional even where every step is valid: inlined into the loop's body, the step
                    # compiles to slower code.
                    return jax.lax.cond(ok, advance, lambda carry: carry, carry), None

                (g, h, pbufs), _ = jax.lax.scan(layer, (g, h, pbufs), (ra_all, rc_all, ta, tb, valid, s_new))
                g_out = jax.lax.dynamic_update_slice(g_out, g, (r0, c0))
                h_out = jax.lax.dynamic_update_slice(h_out, h, (r0, c0))
                return g_out, h_out, pbufs

            if tiles == 1:
                g_out, h_out, pbufs = tile(0, (g_in, h_in, pbufs))
            else:  # a second state: overlapping tiles read the chunk's start
                g_out, h_out, pbufs = jax.lax.fori_loop(0, tiles, tile, (jnp.zeros_like(g_in),
                                                                        jnp.zeros_like(h_in), pbufs))
            return (g_out, h_out, logs, pbufs, dbufs), None

        state = (g1, g1, (lq, jnp.zeros_like(lq), jnp.zeros((2,) + lq.shape, dtype)), pbufs, dbufs)
        (_, _, _, pbufs, dbufs), _ = jax.lax.scan(chunk_step, state, jnp.arange(chunks))
    else:
        pbufs = store(pbufs, first(0, 0, (n1, n2)), s0, {k: (0, 0) for k in pair_keys})
    out = {**pbufs, **dbufs}
    if scratch:
        out = {k: v[:n_out] for k, v in out.items()}
    return {k: v[0] for k, v in out.items()} if squeeze else out
