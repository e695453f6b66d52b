"""The ReLU layer recursion: the first layer from the inputs, and the compiled loop over the layers.

The loop runs on the angle ``t`` and on ``1 - rho`` through cancellation-free formulas, on kernels
rescaled by ``(W_std^2 / 2)^(l-1)`` (docs/kernels.md, "The first layer" and the sections after it);
:mod:`ntkdepth.kernels.relu` is its public door and :mod:`ntkdepth.kernels.interp` tabulates it.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntkdepth.kernels.angles import (
    angle_from_omr,
    quotient,
    t_minus_sin_t,
    t_minus_sin_t_series,
)
from ntkdepth.kernels.layer_map import next_angle, one_minus_correlation_map_of_angle
from ntkdepth.kernels.layer_scale import log_half_square
from ntkdepth.kernels.pairs import bias_correlation, with_gap
from ntkdepth.kernels.scaling import power_of_two, times, times_pow4
from ntkdepth.kernels.scan import scan_layers, slot_of, write_slot

__all__ = [
    "LayerOne",
    "correlation_fields",
    "correlation_loop",
    "first_angle",
    "layer_loop",
    "layer_one",
    "recursion",
    "unit_layer_one",
]


# Below the angle 0.5 (1 - cos t < _OMR_CUT) t - sin t comes from its Taylor series.
_OMR_CUT = 1.0 - math.cos(0.5)


def _one_minus_j(t, omr, sin_t):
    """``1 - J(t)`` from the angle, ``1 - cos t`` and ``sin t`` (no transcendental calls).

    ``1 - J = ((pi - t)(1 - cos t) + (t - sin t)) / pi``; ``t - sin t`` comes from
    its series where ``t < 0.5`` and from ``sin_t`` elsewhere.
    """
    small = omr < _OMR_CUT
    tms = jnp.where(small, t_minus_sin_t_series(jnp.where(small, t, 0.0)), t - sin_t)
    return ((jnp.pi - t) * omr + tms) / jnp.pi


def _sin_from_omr(omr):
    """``sin t = sqrt(omr (2 - omr))`` where ``t >= 0.5``; a placeholder below, where it is unused.

    Only for ``omr <= 1`` (``t <= pi/2``), which holds from layer 2 on (ReLU
    correlations are >= 0). The placeholder keeps the square root's
    derivative finite at ``omr = 0``.
    """
    safe = jnp.where(omr < _OMR_CUT, 1.0, omr)
    return jnp.sqrt(safe * (2.0 - safe))


class LayerOne(NamedTuple):
    """Layer 1 of the recursion, shared by every path of the kernel functions.

    ``rho [n1, n2]``: the correlation; ``gap [n1, n2]``: ``1 - |rho|``, accurate relative to
    itself (from the inputs' difference where the Gram matrix cannot resolve it,
    :mod:`ntkdepth.kernels.pairs`). ``q1 [n1]``, ``q2 [n2]``: ``Sigma^1(x, x)``, with a bias divided by
    ``4^scale_exp`` so that the largest is of order 1 (docs/kernels.md#biases).
    ``log_g1 [n1]``, ``log_g2 [n2]``: without bias, ``log sqrt(Sigma^1(x, x))``
    computed without overflow. ``b_std``: the bias in the units of ``q1``
    (``b_std / 2^scale_exp``); ``scale_exp``: the integer exponent such that
    every raw kernel is the recursion's value times ``4^scale_exp``.
    """

    rho: jax.Array
    q1: jax.Array
    q2: jax.Array
    log_g1: jax.Array
    log_g2: jax.Array
    b_std: jax.Array | float = 0.0
    scale_exp: jax.Array | int = 0
    gap: jax.Array | None = None


def first_angle(one: LayerOne):
    """``(1 - rho_1, t_1, sin t_1, pi - t_1)`` from layer one's gap, each accurate near both ends.

    ``[n1, n2]`` each. The angle of the nearer end comes from the gap
    (:func:`ntkdepth.kernels.angles.angle_from_omr`), the other as ``pi`` minus it.
    """
    gap = one.gap if one.gap is not None else 1.0 - jnp.abs(one.rho)
    a = angle_from_omr(gap)
    positive = one.rho >= 0
    t1 = jnp.where(positive, a, jnp.pi - a)
    e1 = jnp.where(positive, jnp.pi - a, a)
    omr1 = jnp.where(positive, gap, 2.0 - gap)
    # sin t_1; its derivative is infinite at gap = 0 (identical or antipodal pairs), where the
    # loop does not use it: 0 there keeps gradients finite.
    square = gap * (2.0 - gap)
    sin_t1 = jnp.where(square > 0, jnp.sqrt(jnp.where(square > 0, square, 1.0)), 0.0)
    return omr1, t1, sin_t1, e1


def _unit_rows(x):
    """``(x / |x|, |x|, log |x|)`` row by row, without overflow or underflow of ``|x|^2``.

    Each row is divided by its largest entry ``m`` first. The results do not
    depend on ``m`` (any positive constant gives the same values), so its
    derivative is left out: through ``x / m`` it would bring ``x / m^2``,
    which overflows or underflows for norms beyond ``1e19`` or below ``1e-19``
    in float32 (``1e154``, ``1e-154`` in float64).
    """
    m = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1))
    m_safe = jnp.where(m > 0, m, 1.0)
    y = x / m_safe[:, None]
    r = jnp.sqrt(jnp.sum(y * y, axis=-1))
    r_safe = jnp.where(r > 0, r, 1.0)
    return y / r_safe[:, None], m * r, jnp.log(m_safe) + jnp.log(r_safe)


def layer_one(x1, x2, W_std, b_std, bias: bool, rescale=None, symmetric: bool = False,
              gap_used: bool = True, then=None) -> LayerOne:
    """Layer 1 from the inputs (docs/kernels.md, "The first layer").

    The correlation comes from the Gram matrix of the unit-normalized inputs,
    ``rho = <u, u'> a a' + beta beta'`` with ``a = 1 / sqrt(1 + b^2 / s^2)``,
    ``beta = 1 / sqrt(1 + s^2 / b^2)`` and ``s = W_std |x| / sqrt(n0)`` (through
    ``hypot``), so that neither huge nor tiny norms or scales reach a square.
    With a bias, ``s`` and ``b`` are then divided by the power of two that
    brings the largest ``sqrt(Sigma^1(x, x))`` into ``[0.5, 1)``: the
    recursion's state (and its derivatives) stay of order 1 at any scale.
    ``rescale``: ``None``, or what :func:`ntkdepth.kernels.scaling.rescale_tiny_inputs`
    did to the inputs (``(log1, log2)`` without bias, the exponent ``k`` of the
    common factor ``2^k`` with one). ``symmetric``: ``x2`` is ``x1`` (:func:`ntkdepth.kernels.pairs.direction_gap`).
    ``gap_used``: the caller reads ``gap`` as well as ``rho`` (else only ``rho`` is computed in full).
    ``then``: a function of the layer, returned in its place, evaluated in the same compiled passes
    (:func:`ntkdepth.kernels.pairs.with_gap`): the correlation and the gap need not be written out.
    """
    dtype = x1.dtype
    n0 = x1.shape[-1]
    u1, norm1, log_norm1 = _unit_rows(x1)
    u2, norm2, log_norm2 = _unit_rows(x2)
    cos = u1 @ u2.T  # clipped to [-1, 1] by with_gap, in its passes
    w_over = W_std / math.sqrt(n0)
    s1, s2 = w_over * norm1, w_over * norm2  # sqrt(W^2 |x|^2 / n0)
    if bias:
        # Everything from here on, derivatives included, in units of 2^e: the
        # quotients below would otherwise square numbers of the inputs' scale.
        largest = jnp.maximum(jnp.max(jnp.hypot(s1, b_std)), jnp.max(jnp.hypot(s2, b_std)))
        info = jnp.finfo(dtype)
        _, e = jnp.frexp(jax.lax.stop_gradient(largest))
        e = jnp.clip(e, info.minexp + 2, info.maxexp - 2)
        kappa = power_of_two(-e, dtype)  # exact
        s1, s2, b_std = s1 * kappa, s2 * kappa, b_std * kappa

        def correlation(c, gap):
            rho, gap = bias_correlation(c, gap, s1, s2, b_std)
            return jnp.clip(rho, -1.0, 1.0), gap

        b2 = b_std * b_std
        q1, q2 = s1 * s1 + b2, s2 * s2 + b2
        log_g1, log_g2 = 0.5 * jnp.log(q1), 0.5 * jnp.log(q2)
        scale_exp = e - (0 if rescale is None else rescale)
    else:
        def correlation(c, gap):
            # Near +-1 the gap is the more accurate of the two.
            return jnp.clip(jnp.where(gap < 0.5, jnp.where(c >= 0, 1.0 - gap, gap - 1.0), c), -1.0, 1.0), gap

        q1, q2 = s1 * s1, s2 * s2
        log_w = jnp.log(W_std) - 0.5 * math.log(n0)
        log_g1, log_g2 = log_w + log_norm1, log_w + log_norm2
        if rescale is not None:
            log_g1, log_g2 = log_g1 + rescale[0], log_g2 + rescale[1]
        b_std, scale_exp = jnp.zeros((), dtype), 0
    # The correlation in the gap's compiled passes (pairs.with_gap). Both used, rho and the gap come
    # from one pass writing one [2, n1, n2] array: as two arrays XLA writes out the sums both are
    # made of (with a bias) and reads them in two passes.
    if then is not None:
        def layer(c, g):
            rho, gap = correlation(c, g)
            return then(LayerOne(rho, q1, q2, log_g1, log_g2, b_std, scale_exp, gap))

        return with_gap(x1, x2, cos, layer, symmetric=symmetric)
    if gap_used:
        pair = with_gap(x1, x2, cos, lambda c, g: jnp.stack(correlation(c, g)), symmetric=symmetric)
        rho, gap = pair[0], pair[1]
    else:
        rho, gap = with_gap(x1, x2, cos, correlation, symmetric=symmetric)
    return LayerOne(rho, q1, q2, log_g1, log_g2, b_std, scale_exp, gap)


def _log_c(w2_half_log, b2, bias):
    """``log c``: the per-layer rescaling of the state (docs/kernels.md#biases)."""
    if bias:
        # With a bias and W^2 < 2 the kernels converge to a finite fixed point: no rescaling.
        return jnp.where((b2 > 0) & (w2_half_log < 0.0), jnp.zeros_like(w2_half_log), w2_half_log)
    return w2_half_log


@partial(jax.jit, static_argnames=("length", "n_out", "get", "bias", "every_layer", "unroll", "on_cpu", "squeeze",
                                   "symmetric"))
def layer_loop(x1, x2, W_std, b_std, requested, rescale=None, *, length, n_out, get, bias, every_layer, unroll,
               on_cpu, squeeze=False, symmetric=False):
    """Runs layers 1..depth on inputs, keeping the ``n_out`` layers of ``requested``
    (:func:`ntkdepth.kernels.scan.requested_layers`) in a loop ``length`` long (:func:`recursion`).

    With ``squeeze`` (``n_out == 1``) the fields come without the layer axis;
    ``rescale`` and ``symmetric`` (``x2`` is ``x1``) as for :func:`layer_one`.
    """
    dtype = x1.dtype
    W_std = jnp.asarray(W_std, dtype)
    b_std = jnp.asarray(b_std, dtype) if bias else jnp.zeros((), dtype)
    one = layer_one(x1, x2, W_std, b_std, bias, rescale, symmetric=symmetric)
    omr1, t1, sin_t1, e1 = first_angle(one)
    out = recursion(one, omr1, t1, sin_t1, W_std, one.b_std, requested, e1=e1, length=length,
                    n_out=n_out, get=get, bias=bias, every_layer=every_layer, unroll=unroll,
                    on_cpu=on_cpu)
    return {k: v[0] for k, v in out.items()} if squeeze else out


def recursion(one: LayerOne, omr1, t1, sin_t1, W_std, b_std, requested, e1=None, *, length, n_out, get, bias,
              every_layer, unroll, on_cpu):
    """Runs layers 2..depth from layer 1, keeping the ``n_out`` layers of ``requested``.

    ``requested``: :func:`ntkdepth.kernels.scan.requested_layers`, whose deepest layer is the depth (a
    value: the loop is ``length`` long, :func:`ntkdepth.kernels.scan.loop_length`, and past the depth
    it does nothing); each layer's place in the output is found inside the loop
    (:func:`ntkdepth.kernels.scan.slot_of`).

    ``one``: layer 1 (:class:`LayerOne`); ``omr1``, ``t1``, ``sin_t1``:
    ``1 - rho_1``, its angle and the angle's sine (``[n1, n2]``); ``e1``: ``pi - t1``,
    accurate where ``t1`` is near ``pi`` (:func:`first_angle`; ``None``: from ``t1``).

    With a bias, all state is rescaled by ``S_l = c^(l-1)``
    (docs/kernels.md#rescaling): ``q`` and ``T`` are the rescaled diagonals of ``Sigma`` and
    ``Theta``. Without bias (``b_std`` known to be 0) the state is that of
    unit-norm inputs at ``W_std^2 = 2``, whose diagonals are 1 and ``l``, and the
    outputs are scaled by ``sqrt(Sigma^1(x,x) Sigma^1(x',x')) (W_std^2/2)^(l-1)``
    at the end: the loop carries only the angle and ``Theta`` (and ``1 - rho``,
    ``Sigma``, ``Sigmadot`` when asked for). With ``every_layer`` (layers
    1..depth in order) the scan's stacked outputs are the result; with one
    layer it keeps no buffer at all; otherwise it writes the requested layers
    into buffers and skips the others.

    Layer 1 (any correlation in [-1, 1]) is stepped outside the scan. From
    layer 2 on, correlations are >= 0: with a bias the angle and its sine
    follow accurately from ``1 - rho`` alone, so the scan carries ``1 - rho``
    (docs/kernels.md#stable-angle-form); without bias the next layer is a
    polynomial map of the angle (docs/kernels.md#the-layer-map-in-the-angle).

    Besides :data:`ntkdepth.kernels.KERNEL_FIELDS`, ``get`` may hold the internal field ``_omr``
    (``1 - rho_l``, with ``_q``/``_T``, the rescaled diagonals of ``x1``, and
    ``_log_s``, ``log S_l``), which the interpolated path tabulates.
    """
    dtype = omr1.dtype
    half_w2 = W_std * W_std / 2.0
    b2 = b_std * b_std
    log_half = log_half_square(W_std)  # log(W^2 / 2), a few ulps: it is multiplied by L - 1
    log_c = _log_c(log_half, b2, bias)
    if bias:
        ratio = jnp.exp(log_half - log_c)  # (W^2/2) / c
        sigma1 = jnp.sqrt(one.q1)[:, None] * jnp.sqrt(one.q2)[None, :] * one.rho
        state = dict(omr=omr1, theta=sigma1, q1=one.q1, q2=one.q2, T1=one.q1, T2=one.q2)
    else:
        sigma1 = one.rho  # unit-norm state
        state = dict(omr=omr1, theta=sigma1)
    if "rho" in get:
        state["rho"] = one.rho  # rho_1 as given: 1 - (1 - rho) would round small correlations
    if "nngp" in get:
        state["sigma"] = sigma1
    if "nngp_dot" in get:
        state["sdot"] = jnp.zeros_like(omr1)

    def values(st, log_s, layer):
        out = {}
        if bias:
            scale = times_pow4(jnp.exp(log_s), one.scale_exp)
            if "nngp" in get:
                out.update(nngp=st["sigma"] * scale, nngp_diag1=st["q1"] * scale,
                           nngp_diag2=st["q2"] * scale)
            if "ntk" in get:
                out.update(ntk=st["theta"] * scale, ntk_diag1=st["T1"] * scale,
                           ntk_diag2=st["T2"] * scale)
            if "ntk_normalized" in get:
                out["ntk_normalized"] = quotient(
                    st["theta"], jnp.sqrt(st["T1"])[:, None] * jnp.sqrt(st["T2"])[None, :]
                )
            if "_omr" in get:
                out.update(_q=st["q1"], _T=st["T1"], _log_s=log_s)
        else:
            # sqrt(Sigma^l(x, x)) for each row, from logarithms: no overflow before the end.
            g1, g2 = jnp.exp(0.5 * log_s + one.log_g1), jnp.exp(0.5 * log_s + one.log_g2)
            outer = g1[:, None] * g2[None, :]
            ell = layer.astype(dtype)
            if "nngp" in get:
                out.update(nngp=times(st["sigma"], outer), nngp_diag1=g1 * g1, nngp_diag2=g2 * g2)
            if "ntk" in get:
                out.update(ntk=times(st["theta"], outer), ntk_diag1=ell * g1 * g1,
                           ntk_diag2=ell * g2 * g2)
            if "ntk_normalized" in get:
                out["ntk_normalized"] = st["theta"] / ell
            if "_omr" in get:
                out.update(_q=jnp.ones_like(g1), _T=jnp.full_like(g1, ell), _log_s=log_s)
        if "nngp_dot" in get:
            out["nngp_dot"] = st["sdot"]
        if "rho" in get:
            # Layers 1 and 2 carry rho itself (it can be tiny); from layer 3 on rho >= 1/pi.
            out["rho"] = st["rho"] if "rho" in st else 1.0 - st["omr"]
        if "_omr" in get:
            out["_omr"] = st["omr"]
        return out

    def advance(st, t, sin_t, layer, e=None):
        """Layer ``layer + 1`` from layer ``layer``, given the latter's angle and its sine.

        ``e``: ``pi - t`` where ``t`` can be near ``pi`` (layer 1), else ``None``.
        """
        log_s = layer.astype(dtype) * log_c  # log S_{layer+1}
        one_minus_j = _one_minus_j(t, st["omr"], sin_t)
        # J(t) >= 0; rounding of pi can push 1 - J a few ulps above 1 at t = pi.
        j = jnp.maximum(1.0 - one_minus_j, 0.0)
        fprime = (jnp.pi - t) / jnp.pi
        if e is not None:
            # Near t = pi: f' = e / pi, and J = (2 e sin^2(e/2) - (e - sin e)) / pi, both
            # without pi - t or 1 - (1 - J) (docs/kernels.md#the-first-layer).
            fprime = e / jnp.pi
            half = jnp.sin(0.5 * e)
            j_far = (2.0 * e * half * half - t_minus_sin_t(e)) / jnp.pi
            j = jnp.where(e < 0.5 * jnp.pi, jnp.maximum(j_far, 0.0), j)
        if bias:
            # b^2 / S_{l+1}; S can underflow to 0 when there is no bias at all.
            b2_s = jnp.where(b2 > 0, b2 * jnp.exp(-log_s), 0.0)
            a1, a2 = ratio * st["q1"], ratio * st["q2"]
            q1n, q2n = a1 + b2_s, a2 + b2_s
            sqrt_aa = jnp.sqrt(a1)[:, None] * jnp.sqrt(a2)[None, :]
            big_q = jnp.sqrt(q1n)[:, None] * jnp.sqrt(q2n)[None, :]
            # 1 - rho_{l+1} as a sum of non-negative terms, using
            #   Q - sqrt(A A') - b^2 = b^2 (sqrt A - sqrt A')^2 / (Q + sqrt(A A') + b^2).
            da = jnp.sqrt(a1)[:, None] - jnp.sqrt(a2)[None, :]
            omr = quotient(quotient(b2_s * da * da, big_q + sqrt_aa + b2_s) + sqrt_aa * one_minus_j,
                           big_q)
            sigma = sqrt_aa * j + b2_s
            new = dict(
                omr=jnp.clip(omr, 0.0, 1.0), theta=st["theta"] * ratio * fprime + sigma,
                q1=q1n, q2=q2n, T1=st["T1"] * ratio + q1n, T2=st["T2"] * ratio + q2n,
            )
            if e is not None and "rho" in get:
                new["rho"] = jnp.clip(quotient(sigma, big_q), 0.0, 1.0)
        else:
            sigma = j
            new = dict(omr=jnp.clip(one_minus_j, 0.0, 1.0), theta=st["theta"] * fprime + sigma)
            if e is not None and "rho" in get:
                new["rho"] = j
        if "nngp" in get:
            new["sigma"] = sigma
        if "nngp_dot" in get:
            new["sdot"] = half_w2 * fprime
        return new, log_s

    keep_omr = "rho" in get or "_omr" in get

    def advance_angle(st, layer):
        """Without bias, from layer 2 on: the layer map of the angle (module layer_map)."""
        t = st["angle"]
        omr = one_minus_correlation_map_of_angle(t)
        j = 1.0 - omr
        # Theta f' + J as Theta plus an increment: f' = 1 - t/pi rounded to a
        # float near 1 would lose t/pi's digits, the same way at every layer.
        new = dict(angle=next_angle(t), theta=st["theta"] + (j - st["theta"] * (t / jnp.pi)))
        if keep_omr:
            new["omr"] = jnp.clip(omr, 0.0, 1.0)
        if "nngp" in get:
            new["sigma"] = j
        if "nngp_dot" in get:
            new["sdot"] = half_w2 * ((jnp.pi - t) / jnp.pi)
        return new, layer.astype(dtype) * log_c

    depth = length  # the loop's length: the depth, or above it a bucket (loop_length)
    depth_now = requested[0, -1]  # the deepest requested layer: the layers past it are skipped
    layer1 = jnp.ones((), jnp.int32)
    first = values(state, jnp.zeros((), dtype), layer1)
    if depth == 1:
        return {k: v[None] for k, v in first.items()}
    state, log_s2 = advance(state, t1, sin_t1, layer1, e=e1 if e1 is not None else jnp.pi - t1)
    second = values(state, log_s2, layer1 + 1)
    state.pop("rho", None)

    if bias:
        def step(st, layer):
            return advance(st, angle_from_omr(st["omr"]), _sin_from_omr(st["omr"]), layer)
    else:
        # Layers >= 2 have angles in [0, pi/2]: the loop carries the angle itself.
        state = dict(state, angle=angle_from_omr(state["omr"]))
        if not keep_omr:
            del state["omr"]
        step = advance_angle

    # The scans below produce layers 3..depth from layer numbers 2..depth - 1.
    if not every_layer:
        inner = step

        def step(st, layer):
            """``inner`` up to the depth, then nothing (a conditional on a CPU, a select elsewhere)."""
            active = layer < depth_now
            if on_cpu:
                return jax.lax.cond(active, inner, lambda st, layer: (st, layer.astype(dtype) * log_c),
                                    st, layer)
            new, log_s = inner(st, layer)
            return jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, st), log_s
    if every_layer and not on_cpu:
        # An accelerator's conditional costs a host round trip per layer; its memory is fast.
        def dense_step(st, layer):
            new, log_s = step(st, layer)
            return new, values(new, log_s, layer + 1)

        _, rest = scan_layers(dense_step, state, 2, depth - 2, unroll)
        return {k: jnp.concatenate([first[k][None], second[k][None], rest[k]]) for k in first}
    if every_layer:
        # On a CPU the scan's stacked outputs are the result itself (no copy into a
        # larger array): its first two iterations hand out layers 1 and 2 unchanged.
        early = {k: jnp.stack([first[k], second[k]]) for k in first}

        def dense_step(st, k):
            def given(st):
                return st, {name: v[k] for name, v in early.items()}

            def computed(st):
                new, log_s = step(st, k)
                return new, values(new, log_s, k + 1)

            return jax.lax.cond(k < 2, given, computed, st)

        _, out = scan_layers(dense_step, state, 0, depth, unroll)
        return out

    if n_out == 1:
        # One layer, the last: no buffers, no conditionals, only the state in the loop.
        if depth == 2:
            return {k: v[None] for k, v in second.items()}
        final, _ = scan_layers(lambda st, layer: (step(st, layer)[0], None), state, 2, depth - 2, unroll)
        log_s = (depth_now - 1).astype(dtype) * log_c
        return {k: v[None] for k, v in values(final, log_s, depth_now).items()}

    buffers = {k: jnp.zeros((n_out + 1,) + jnp.shape(v), dtype) for k, v in first.items()}
    buffers = write_slot(buffers, lambda: first, slot_of(requested, layer1), n_out, on_cpu)
    buffers = write_slot(buffers, lambda: second, slot_of(requested, layer1 + 1), n_out, on_cpu)

    def sparse_step(carry, layer):
        st, buffers = carry
        new, log_s = step(st, layer)
        # Only the requested layers' values are computed and stored.
        s = slot_of(requested, layer + 1)
        return (new, write_slot(buffers, lambda: values(new, log_s, layer + 1), s, n_out, on_cpu)), None

    (_, buffers), _ = scan_layers(sparse_step, (state, buffers), 2, depth - 2, unroll)
    return {k: v[:n_out] for k, v in buffers.items()}



def unit_layer_one(rho) -> LayerOne:
    """Layer one of unit-norm inputs whose correlations are ``rho`` (any shape, as ``[1, size]``)."""
    unit, zero = jnp.ones((1,), rho.dtype), jnp.zeros((1,), rho.dtype)
    rho = rho.reshape(1, -1)
    return LayerOne(rho=rho, q1=unit, q2=unit, log_g1=zero, log_g2=zero, gap=1.0 - jnp.abs(rho))


def correlation_fields(one: LayerOne, out: dict, ones: tuple[int, ...], shape) -> dict:
    """:class:`ntkdepth.kernels.CorrelationTrace`'s fields, ``[m, *shape]``, from a bias-free run of ``one``.

    ``out``: the run's ``ntk_normalized`` and ``_omr`` (``[m, 1, size]``);
    ``ones``: the rows that are layer 1, whose ``f'`` comes from ``rho_1`` itself
    (accurate near -1), the others' from the angle of ``1 - rho_l``.
    """
    omr = out["_omr"]
    fprime = (jnp.pi - angle_from_omr(omr)) / jnp.pi  # one elementwise pass over every row
    if ones:
        # Layer 1's f' from its own gap: accurate next to rho = -1, where pi - t is not.
        fprime = fprime.at[jnp.asarray(ones)].set(first_angle(one)[3] / jnp.pi)
    fields = dict(rho=out["rho"], one_minus_rho=omr, fprime=fprime,
                  ntk_normalized=out["ntk_normalized"])
    return {k: v.reshape((omr.shape[0],) + tuple(shape)) for k, v in fields.items()}


@partial(jax.jit, static_argnames=("length", "n_out", "ones", "every_layer", "unroll", "on_cpu"))
def correlation_loop(rho1, requested, *, length, n_out, ones, every_layer, unroll, on_cpu):
    """Layers 1..depth from ``rho_1``: the bias-free layer loop (:func:`recursion`) run on
    unit-norm inputs at ``W_std^2 = 2``, so both give the same numbers."""
    dtype = rho1.dtype
    one = unit_layer_one(jnp.clip(rho1, -1.0, 1.0))
    omr1, t1, sin_t1, e1 = first_angle(one)
    out = recursion(one, omr1, t1, sin_t1, jnp.asarray(math.sqrt(2.0), dtype),
                     jnp.zeros((), dtype), requested, e1=e1, length=length, n_out=n_out, get=("ntk_normalized", "_omr", "rho"),
                    bias=False, every_layer=every_layer, unroll=unroll, on_cpu=on_cpu)
    return correlation_fields(one, out, ones, rho1.shape)
