"""Exact infinite-width kernels of deep ReLU networks, resolved by depth.

Implements the recursion of Theorem 1 (Jacot et al., 2018) with the ReLU
closed forms of Proposition 2 (Cho & Saul, 2009; Arora et al., 2019), for a
fully-connected network at NTK parameterization with ``depth`` weight layers
(docs/kernels.md, "The recursion"):

    Sigma^1(x,x')        = W_std^2 / n_0 <x, x'> + b_std^2
    Sigma^{l+1}(x,x')    = W_std^2 sqrt(q q') / (2 pi) (sin t + (pi - t) cos t) + b_std^2
    Sigmadot^{l+1}(x,x') = W_std^2 (pi - t) / (2 pi)
    Theta^1 = Sigma^1,   Theta^{l+1} = Theta^l Sigmadot^{l+1} + Sigma^{l+1}

where ``q = Sigma^l(x,x)``, ``q' = Sigma^l(x',x')`` and ``t = arccos rho_l`` is the
angle of the layer-l correlation ``rho_l = Sigma^l(x,x') / sqrt(q q')``. The
normalized NTK is ``Thetabar^l = Theta^l / sqrt(Theta^l(x,x) Theta^l(x',x'))``
(Definition 4). ``Sigmadot^1`` is reported as 0: no nonlinearity precedes the
first layer.

Numerics (docs/kernels.md, "The first layer", and the sections after it). Layer
one reads correlations off the Gram matrix of unit-normalized inputs and
snaps those within a few ulps of +-1 to +-1. The layer loop runs on the angle
``t`` and on ``1 - rho`` through cancellation-free formulas
(:mod:`ntkdepth.kernels.angles`), on kernels rescaled by
``(W_std^2 / 2)^(l-1)``, so that correlations near 1 keep their precision at
depths of 1e6 and raw kernels beyond the floating-point range come out as
``inf``/``0`` while correlations and the normalized NTK stay exact. Without
bias, or with inputs of one norm, the interpolated path
(:mod:`ntkdepth.kernels.interp`) gives the same numbers at the cost of one
Gram matrix. Each function takes ``dtype=``; float64 enters x64 mode for the
call only (docs/kernels.md, "Precision per call").
"""

from __future__ import annotations

import collections
import functools
import math
import warnings
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.angles import (
    angle_from_correlation,
    quotient,
    angle_from_omr,
    one_minus_arccos_kernel,
    sine_from_correlation,
    t_minus_sin_t_series,
)
from ntkdepth.kernels.scaling import power_of_two, rescale_tiny_inputs
from ntkdepth.kernels.layer_map import (
    next_angle,
    one_minus_correlation_map_of_angle,
)
from ntkdepth.kernels.validation import (
    check_depth_and_layers,
    check_fields,
    check_real,
    check_finite,
    check_hyperparameters,
    check_inputs,
    precision,
    resolve_dtype,
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
]

KERNEL_FIELDS = ("nngp", "nngp_dot", "ntk", "rho", "ntk_normalized")
_DIAG_FIELDS = {"nngp": ("nngp_diag1", "nngp_diag2"), "ntk": ("ntk_diag1", "ntk_diag2")}


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


# --------------------------------------------------------------------------
# The depth-resolved trace.


def _slots(layers: np.ndarray, depth: int) -> np.ndarray:
    """``slot[l - 1]`` = position of layer l in the output, or ``m`` (a scratch slot)."""
    slot = np.full(depth, len(layers), dtype=np.int32)
    slot[layers - 1] = np.arange(len(layers), dtype=np.int32)
    return slot


def _write(buffers: dict, values_fn, s, n_out: int, on_cpu: bool) -> dict:
    """Stores ``values_fn()`` at slot ``s`` (slot ``n_out`` is scratch, for unrequested layers).

    On a CPU a ``lax.cond`` skips unrequested layers' values and writes. On an
    accelerator a conditional costs a host round trip per layer, far more than
    an unconditional write to the scratch slot.
    """

    def store(bufs):
        values = values_fn()
        return {k: jax.lax.dynamic_update_index_in_dim(b, values[k], s, 0) for k, b in bufs.items()}

    if not on_cpu:
        return store(buffers)
    return jax.lax.cond(s < n_out, store, lambda bufs: bufs, buffers)


def _loop_options() -> tuple[int, bool]:
    """``(unroll, on_cpu)``: layers per iteration of the compiled loop, and the backend.

    On a GPU or TPU each iteration of a while loop costs kernel launches and a
    host round trip, which would dominate a layer's elementwise work: unroll 8
    layers. On a CPU unrolling only makes the loop body larger (measured
    slower).
    """
    on_cpu = jax.default_backend() == "cpu"
    return (1 if on_cpu else 8), on_cpu


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

    ``rho [n1, n2]``: the correlation, snapped to exactly +-1 within a few ulps
    of +-1. ``q1 [n1]``, ``q2 [n2]``: ``Sigma^1(x, x)``, with a bias divided by
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


def _layer_one(x1, x2, W_std, b_std, bias: bool, rescale=None) -> LayerOne:
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
    common factor ``2^k`` with one).
    """
    dtype = x1.dtype
    n0 = x1.shape[-1]
    u1, norm1, log_norm1 = _unit_rows(x1)
    u2, norm2, log_norm2 = _unit_rows(x2)
    cos = u1 @ u2.T
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
        h1, h2 = jnp.hypot(s1, b_std), jnp.hypot(s2, b_std)  # sqrt(Sigma^1(x, x)) / 2^e
        a1, a2 = s1 / h1, s2 / h2
        beta1, beta2 = b_std / h1, b_std / h2
        rho = cos * (a1[:, None] * a2[None, :]) + beta1[:, None] * beta2[None, :]
        b2 = b_std * b_std
        q1, q2 = s1 * s1 + b2, s2 * s2 + b2
        log_g1, log_g2 = 0.5 * jnp.log(q1), 0.5 * jnp.log(q2)
        scale_exp = e - (0 if rescale is None else rescale)
    else:
        rho = cos
        q1, q2 = s1 * s1, s2 * s2
        log_w = jnp.log(W_std) - 0.5 * math.log(n0)
        log_g1, log_g2 = log_w + log_norm1, log_w + log_norm2
        if rescale is not None:
            log_g1, log_g2 = log_g1 + rescale[0], log_g2 + rescale[1]
        b_std, scale_exp = jnp.zeros((), dtype), 0
    rho = jnp.clip(rho, -1.0, 1.0)
    # A correlation read off a Gram matrix is only known to ~sqrt(n0) ulps, and
    # Sigmadot depends on the angle, ~sqrt(1 - |rho|) near +-1: an identical
    # (or antipodal) pair whose correlation rounds 2 ulps away from +-1 would
    # carry an angle error of 2e-8 into every layer. Correlations that close to
    # +-1 are taken to be exactly +-1.
    snap = 4.0 * math.sqrt(n0 + 1) * jnp.finfo(dtype).eps
    rho = jnp.where(1.0 - jnp.abs(rho) <= snap, jnp.sign(rho), rho)
    return LayerOne(rho, q1, q2, log_g1, log_g2, b_std, scale_exp)


def _times_pow4(value, exponent):
    """``value * 4^exponent``, exact (two multiplications by a power of two).

    ``exponent`` is clipped to the dtype's normal exponents: beyond them the
    result is 0 or ``inf`` whatever the rest of the product.
    """
    info = jnp.finfo(value.dtype)
    p = power_of_two(jnp.clip(exponent, info.minexp, info.maxexp - 1), value.dtype)
    return value * p * p


def _scalar(value, dtype):
    """A scale as a jit argument: a NumPy scalar when concrete (no dispatch), else as given."""
    if isinstance(value, jax.Array):
        return value.astype(dtype) if value.dtype != dtype else value
    return np.asarray(value, dtype)


def _times(value, factor):
    """``value * factor``, and 0 where ``value`` is 0 (even if ``factor`` overflowed to inf)."""
    return jnp.where(value == 0, jnp.zeros_like(value), value * factor)


def _log_c(w2_half_log, b2, bias):
    """``log c``: the per-layer rescaling of the state (module docstring)."""
    if bias:
        # With a bias and W^2 < 2 the kernels converge to a finite fixed point: no rescaling.
        return jnp.where((b2 > 0) & (w2_half_log < 0.0), jnp.zeros_like(w2_half_log), w2_half_log)
    return w2_half_log


@partial(jax.jit, static_argnames=("n_out", "get", "bias", "every_layer", "unroll", "on_cpu", "squeeze"))
def _trace_impl(x1, x2, W_std, b_std, slot, rescale=None, *, n_out, get, bias, every_layer, unroll,
                on_cpu, squeeze=False):
    """Runs layers 1..depth (``depth = len(slot)``) on inputs, keeping ``n_out`` of them.

    With ``squeeze`` (``n_out == 1``) the fields come without the layer axis;
    ``rescale`` as for :func:`_layer_one`.
    """
    dtype = x1.dtype
    W_std = jnp.asarray(W_std, dtype)
    b_std = jnp.asarray(b_std, dtype) if bias else jnp.zeros((), dtype)
    one = _layer_one(x1, x2, W_std, b_std, bias, rescale)
    t1 = angle_from_correlation(one.rho)
    out = _recursion(one, 1.0 - one.rho, t1, sine_from_correlation(one.rho), W_std, one.b_std, slot,
                     n_out=n_out, get=get, bias=bias, every_layer=every_layer, unroll=unroll,
                     on_cpu=on_cpu)
    return {k: v[0] for k, v in out.items()} if squeeze else out


def _recursion(one: LayerOne, omr1, t1, sin_t1, W_std, b_std, slot, *, n_out, get, bias,
               every_layer, unroll, on_cpu):
    """Runs layers 2..depth (``depth = len(slot)``) from layer 1, keeping ``n_out`` layers.

    ``one``: layer 1 (:class:`LayerOne`); ``omr1``, ``t1``, ``sin_t1``:
    ``1 - rho_1``, its angle and the angle's sine (``[n1, n2]``).

    With a bias, all state is rescaled by ``S_l = c^(l-1)`` (see the module
    docstring): ``q`` and ``T`` are the rescaled diagonals of ``Sigma`` and
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

    Besides :data:`KERNEL_FIELDS`, ``get`` may hold the internal field ``_omr``
    (``1 - rho_l``, with ``_q``/``_T``, the rescaled diagonals of ``x1``, and
    ``_log_s``, ``log S_l``), which the interpolated path tabulates.
    """
    dtype = omr1.dtype
    half_w2 = W_std * W_std / 2.0
    b2 = b_std * b_std
    log_c = _log_c(2.0 * jnp.log(W_std) - math.log(2.0), b2, bias)
    if bias:
        ratio = jnp.exp(2.0 * jnp.log(W_std) - math.log(2.0) - log_c)  # (W^2/2) / c
        sigma1 = jnp.sqrt(one.q1)[:, None] * jnp.sqrt(one.q2)[None, :] * one.rho
        state = dict(omr=omr1, theta=sigma1, q1=one.q1, q2=one.q2, T1=one.q1, T2=one.q2)
    else:
        sigma1 = one.rho  # unit-norm state
        state = dict(omr=omr1, theta=sigma1)
    if "nngp" in get:
        state["sigma"] = sigma1
    if "nngp_dot" in get:
        state["sdot"] = jnp.zeros_like(omr1)

    def values(st, log_s, layer):
        out = {}
        if bias:
            scale = _times_pow4(jnp.exp(log_s), one.scale_exp)
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
                out.update(nngp=_times(st["sigma"], outer), nngp_diag1=g1 * g1, nngp_diag2=g2 * g2)
            if "ntk" in get:
                out.update(ntk=_times(st["theta"], outer), ntk_diag1=ell * g1 * g1,
                           ntk_diag2=ell * g2 * g2)
            if "ntk_normalized" in get:
                out["ntk_normalized"] = st["theta"] / ell
            if "_omr" in get:
                out.update(_q=jnp.ones_like(g1), _T=jnp.full_like(g1, ell), _log_s=log_s)
        if "nngp_dot" in get:
            out["nngp_dot"] = st["sdot"]
        if "rho" in get:
            out["rho"] = 1.0 - st["omr"]
        if "_omr" in get:
            out["_omr"] = st["omr"]
        return out

    def advance(st, t, sin_t, layer):
        """Layer ``layer + 1`` from layer ``layer``, given the latter's angle and its sine."""
        log_s = layer.astype(dtype) * log_c  # log S_{layer+1}
        one_minus_j = _one_minus_j(t, st["omr"], sin_t)
        # J(t) >= 0; rounding of pi can push 1 - J a few ulps above 1 at t = pi.
        j = jnp.maximum(1.0 - one_minus_j, 0.0)
        fprime = (jnp.pi - t) / jnp.pi
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
        else:
            sigma = j
            new = dict(omr=jnp.clip(one_minus_j, 0.0, 1.0), theta=st["theta"] * fprime + sigma)
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

    depth = slot.shape[0]
    layer1 = jnp.ones((), jnp.int32)
    first = values(state, jnp.zeros((), dtype), layer1)
    if depth == 1:
        return {k: v[None] for k, v in first.items()}
    state, log_s2 = advance(state, t1, sin_t1, layer1)
    second = values(state, log_s2, layer1 + 1)

    if bias:
        def step(st, layer):
            return advance(st, angle_from_omr(st["omr"]), _sin_from_omr(st["omr"]), layer)
    else:
        # Layers >= 2 have angles in [0, pi/2]: the loop carries the angle itself.
        state = dict(state, angle=angle_from_omr(state["omr"]))
        if not keep_omr:
            del state["omr"]
        step = advance_angle

    layers_left = jnp.arange(2, depth, dtype=jnp.int32)  # producing layers 3..depth
    if every_layer and not on_cpu:
        # An accelerator's conditional costs a host round trip per layer; its memory is fast.
        def dense_step(st, layer):
            new, log_s = step(st, layer)
            return new, values(new, log_s, layer + 1)

        _, rest = jax.lax.scan(dense_step, state, layers_left, unroll=unroll)
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

        _, out = jax.lax.scan(dense_step, state, jnp.arange(depth, dtype=jnp.int32), unroll=unroll)
        return out

    if n_out == 1:
        # One layer, the last: no buffers, no conditionals, only the state in the loop.
        if depth == 2:
            return {k: v[None] for k, v in second.items()}
        final, _ = jax.lax.scan(lambda st, layer: (step(st, layer)[0], None), state, layers_left,
                                unroll=unroll)
        log_s = (depth - 1) * log_c
        return {k: v[None] for k, v in values(final, log_s, jnp.asarray(depth, jnp.int32)).items()}

    buffers = {k: jnp.zeros((n_out + 1,) + jnp.shape(v), dtype) for k, v in first.items()}
    buffers = _write(buffers, lambda: first, slot[0], n_out, on_cpu)
    buffers = _write(buffers, lambda: second, slot[1], n_out, on_cpu)

    def sparse_step(carry, xs):
        st, buffers = carry
        s, layer = xs
        new, log_s = step(st, layer)
        # Only the requested layers' values are computed and stored.
        return (new, _write(buffers, lambda: values(new, log_s, layer + 1), s, n_out, on_cpu)), None

    (_, buffers), _ = jax.lax.scan(
        sparse_step, (state, buffers), (slot[2:], layers_left), unroll=unroll
    )
    return {k: v[:n_out] for k, v in buffers.items()}


# Below this depth float32 keeps Thetabar^l and 1 - rho_l to about 1e-5 relative.
FLOAT32_MAX_DEPTH = 1000


def _warn_float32_depth(dtype, depth: int, name: str) -> None:
    if np.dtype(dtype) == np.float32 and depth > FLOAT32_MAX_DEPTH:
        warnings.warn(
            f"{name}: float32 at depth {depth} loses digits (rounding accumulates over the "
            f"layers: Thetabar^l and 1 - rho_l keep only ~1e-5 relative beyond depth "
            f"{FLOAT32_MAX_DEPTH}, ~1e-4 at 1e5); pass dtype='float64' (or float64 inputs)",
            stacklevel=3,
        )


def _row_norms(x1, x2) -> np.ndarray | None:
    """``[n1 + n2]`` the norms of the rows of ``x1`` and ``x2`` in float64 (``None`` if traced)."""
    if any(isinstance(v, jax.core.Tracer) for v in (x1, x2)):
        return None
    return np.concatenate([np.linalg.norm(np.asarray(x, np.float64), axis=1) for x in (x1, x2)])


def _interp_setting(norms, n0: int, W_std, b_std, bias: bool, dtype):
    """``None`` (no bias), ``(W^2, b^2, q)`` (bias, every input of one norm) or ``False`` (neither).

    ``norms``: :func:`_row_norms` of the inputs (``None`` if traced).
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


def _into_normal_range(x1, x2, W_std, b_std, bias: bool, dtype, norms):
    """``(x1, x2, b_std, rescale)``: inputs XLA will not flush to zero (module scaling).

    ``rescale`` is ``None`` (nothing changed) or the argument of
    :func:`_layer_one` that undoes the rescaling on output. Traced values pass
    unchanged (their values are not known here). ``norms``: :func:`_row_norms`
    of the inputs (with a bias), scaled along.
    """
    traced = (x1, x2, W_std, b_std) if bias else (x1, x2)
    if any(isinstance(v, jax.core.Tracer) for v in traced):
        return x1, x2, b_std, None, norms
    r = rescale_tiny_inputs(x1, x2, W_std, b_std, bias=bias, dtype=dtype, norms=norms)
    if r is None:
        return x1, x2, b_std, None, norms
    y1 = jnp.asarray(r.x1)
    y2 = y1 if r.x2 is r.x1 else jnp.asarray(r.x2)
    if bias:
        return y1, y2, r.b_std, np.asarray(r.exponent, np.int32), np.ldexp(norms, r.exponent)
    return y1, y2, b_std, (jnp.asarray(r.log1, dtype), jnp.asarray(r.log2, dtype)), norms


def _check_bias_scale(norms, n1: int, n0: int, W_std, b_std, dtype) -> None:
    """With a bias, ``Sigma^1(x, x)`` must be finite in ``dtype`` (concrete values only).

    ``norms``: :func:`_row_norms` of the inputs.
    """
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


def _use_interp(method, setting, layer_array, n_pairs) -> bool:
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
    # Tabulating costs O(depth * nodes): worth it from a few hundred pairs on,
    # and while few of the layers are asked for.
    return applies and deepest >= 4 and 4 * len(layer_array) <= deepest and n_pairs >= 1024


def _fields(get) -> tuple[str, ...]:
    """``get`` as a tuple of known field names (a single name is allowed)."""
    return check_fields(get, KERNEL_FIELDS)


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
    fields = _fields(get)
    layer_array = check_depth_and_layers(depth, layers)
    squeeze = squeeze and len(layer_array) == 1
    dt = resolve_dtype(dtype, x1, x2)
    check_hyperparameters(W_std, b_std, dtype=dt)
    with precision(dt, x1, x2, W_std, b_std):
        x1, x2 = check_inputs(x1, x2, b_std=b_std, dtype=dt)
        deepest = int(layer_array.max())
        _warn_float32_depth(dt, deepest, "relu_kernel_trace")
        # Without a bias (b_std a concrete 0) the recursion takes a shorter path.
        bias = isinstance(b_std, jax.core.Tracer) or float(b_std) != 0.0
        norms = _row_norms(x1, x2) if bias else None
        if bias:
            _check_bias_scale(norms, x1.shape[0], x1.shape[1], W_std, b_std, dt)
        x1, x2, b_std, rescale, norms = _into_normal_range(x1, x2, W_std, b_std, bias, dt, norms)
        ordered = tuple(f for f in KERNEL_FIELDS if f in fields)
        setting = _interp_setting(norms, x1.shape[1], W_std, b_std, bias, dt)
        if _use_interp(method, setting, layer_array, x1.shape[0] * x2.shape[0]):
            from ntkdepth.kernels.interp import interp_trace

            return interp_trace(x1, x2, W_std, b_std, layers=tuple(int(l) for l in layer_array),
                                get=ordered, bias_setting=setting, squeeze=squeeze,
                                rescale=rescale)
        unroll, on_cpu = _loop_options()
        return _trace_impl(
            x1, x2, _scalar(W_std, dt), _scalar(b_std, dt),
            jnp.asarray(_slots(layer_array, deepest)), rescale, n_out=len(layer_array),
            get=ordered, bias=bias,
            every_layer=bool(np.array_equal(layer_array, np.arange(1, deepest + 1))),
            unroll=unroll, on_cpu=on_cpu, squeeze=squeeze,
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
def _kernels_tuple(fields: tuple[str, ...]):
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
        fields = _fields(get)
        check_output_scale_fields(fields, ratio2, b2)
        out = _kernel_dict(x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth],
                           get=fields, dtype=dtype, method=method, squeeze=True)
        values = rescale_output_layer([out[f] for f in fields], fields, ratio2, b2)
        if isinstance(get, str):
            return values[0]
        return _kernels_tuple(fields)(*values)

    out = "" if out_std is None else f", out_std={out_std}"
    kernel_fn.__doc__ = (
        f"Kernels of a depth-{depth} ReLU network (W_std={W_std}, b_std={b_std}{out}): "
        "kernel_fn(x1, x2=None, get=('nngp', 'ntk'), *, dtype=None), [n1, n2] each."
    )
    return kernel_fn


# --------------------------------------------------------------------------
# The correlation-space trace (sphere, W_std^2 = 2, no bias).


def _unit_layer_one(rho) -> LayerOne:
    """Layer one of unit-norm inputs whose correlations are ``rho`` (any shape, as ``[1, size]``)."""
    unit, zero = jnp.ones((1,), rho.dtype), jnp.zeros((1,), rho.dtype)
    return LayerOne(rho=rho.reshape(1, -1), q1=unit, q2=unit, log_g1=zero, log_g2=zero)


def _correlation_fields(one: LayerOne, out: dict, ones: tuple[int, ...], shape) -> dict:
    """:class:`CorrelationTrace`'s fields, ``[m, *shape]``, from a bias-free run of ``one``.

    ``out``: the run's ``ntk_normalized`` and ``_omr`` (``[m, 1, size]``);
    ``ones``: the rows that are layer 1, whose ``f'`` comes from ``rho_1`` itself
    (accurate near -1), the others' from the angle of ``1 - rho_l``.
    """
    omr = out["_omr"]
    angle = angle_from_omr(omr)  # one elementwise pass over every row, however many
    if ones:
        angle = angle.at[jnp.asarray(ones)].set(angle_from_correlation(one.rho))
    fields = dict(rho=1.0 - omr, one_minus_rho=omr, fprime=(jnp.pi - angle) / jnp.pi,
                  ntk_normalized=out["ntk_normalized"])
    return {k: v.reshape((omr.shape[0],) + tuple(shape)) for k, v in fields.items()}


@partial(jax.jit, static_argnames=("n_out", "ones", "every_layer", "unroll", "on_cpu"))
def _correlation_impl(rho1, slot, *, n_out, ones, every_layer, unroll, on_cpu):
    """Layers 1..depth from ``rho_1``: the bias-free layer loop (:func:`_recursion`) run on
    unit-norm inputs at ``W_std^2 = 2``, so both give the same numbers."""
    dtype = rho1.dtype
    one = _unit_layer_one(jnp.clip(rho1, -1.0, 1.0))
    out = _recursion(one, 1.0 - one.rho, angle_from_correlation(one.rho),
                     sine_from_correlation(one.rho), jnp.asarray(math.sqrt(2.0), dtype),
                     jnp.zeros((), dtype), slot, n_out=n_out, get=("ntk_normalized", "_omr"),
                     bias=False, every_layer=every_layer, unroll=unroll, on_cpu=on_cpu)
    return _correlation_fields(one, out, ones, rho1.shape)


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
        _warn_float32_depth(dt, deepest, "correlation_trace")
        if _use_interp(method, None, layer_array, int(np.prod(rho.shape))):
            from ntkdepth.kernels.interp import interp_correlation

            out = interp_correlation(jnp.clip(rho, -1.0, 1.0),
                                     layers=tuple(int(l) for l in layer_array))
            return CorrelationTrace(layers=layer_array, **out)
        out = _correlation_impl(
            rho, jnp.asarray(_slots(layer_array, deepest)), n_out=len(layer_array),
            ones=tuple(int(i) for i in np.flatnonzero(layer_array == 1)),
            every_layer=bool(np.array_equal(layer_array, np.arange(1, deepest + 1))),
            **dict(zip(("unroll", "on_cpu"), _loop_options())),
        )
    return CorrelationTrace(layers=layer_array, **out)
