"""Exact infinite-width kernels of deep ReLU networks, resolved by depth.

Implements the recursion of Theorem 1 (Jacot et al., 2018) with the ReLU
closed forms of Proposition 2 (Cho & Saul, 2009; Arora et al., 2019), for a
fully-connected network at NTK parameterization with ``depth`` weight layers
(MATH.md, section 2):

    Sigma^1(x,x')        = W_std^2 / n_0 <x, x'> + b_std^2
    Sigma^{l+1}(x,x')    = W_std^2 sqrt(q q') / (2 pi) (sin t + (pi - t) cos t) + b_std^2
    Sigmadot^{l+1}(x,x') = W_std^2 (pi - t) / (2 pi)
    Theta^1 = Sigma^1,   Theta^{l+1} = Theta^l Sigmadot^{l+1} + Sigma^{l+1}

where ``q = Sigma^l(x,x)``, ``q' = Sigma^l(x',x')`` and ``t = arccos rho_l`` is the
angle of the layer-l correlation ``rho_l = Sigma^l(x,x') / sqrt(q q')``. The
normalized NTK is ``Thetabar^l = Theta^l / sqrt(Theta^l(x,x) Theta^l(x',x'))``
(Definition 4). ``Sigmadot^1`` is reported as 0: no nonlinearity precedes the
first layer.

Numerics. The recursion runs on the angle ``t`` and on ``1 - rho`` through
cancellation-free formulas (:mod:`ntkdepth.kernels.angles`), and on kernels
rescaled by ``(W_std^2 / 2)^(l-1)``, so that correlations near 1 keep their
precision at depths of 1e5 and raw kernels that overflow or underflow the
floating-point range come out as ``inf``/``0`` while correlations and the
normalized NTK stay exact. Results are computed in the dtype of the inputs:
use ``with jax.enable_x64(True):`` and float64 inputs for float64 results.

The first layer's correlations come from the Gram matrix ``x1 @ x2.T``, so
pairs are resolved down to an angle of about ``sqrt(8 sqrt(n0) eps)`` (2e-7 in
float64 for ``n0 = 784``); pairs closer than that, identical points among
them, are treated as identical (``rho_1 = 1``), which keeps diagonals exact,
and pairs that close to antipodal as antipodal (``rho_1 = -1``).

Accuracy, measured against a 40-digit mpmath evaluation of the recursion for
starting correlations from -1 to 1 - 1e-8 (largest relative errors):

    dtype    depth   rho_l, f'(rho_l)   Thetabar^l   1 - rho_l
    float64  1e3     2e-16              2e-14        6e-14
    float64  1e5     2e-16              3e-13        4e-12
    float32  1e3     1e-7               3e-6         5e-6
    float32  1e5     1e-7               2e-4         6e-4

In float32, rounding accumulates in ``Thetabar`` and ``1 - rho`` with depth;
use float64 beyond a few hundred layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.angles import (
    angle_from_correlation,
    angle_from_omr,
    one_minus_arccos_kernel,
    t_minus_sin_t_series,
)
from ntkdepth.kernels.validation import (
    check_depth_and_layers,
    check_finite,
    check_hyperparameters,
    check_inputs,
)

__all__ = [
    "KernelTrace",
    "CorrelationTrace",
    "KERNEL_FIELDS",
    "relu_kernel_trace",
    "relu_ntk",
    "relu_nngp",
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


def _layer_one(x1, x2, w2, b2):
    """Layer 1 from the inputs: ``(q1 [n1], q2 [n2], sigma [n1, n2], rho [n1, n2])``.

    ``rho`` is snapped to exactly +-1 within a few ulps of +-1 (see below). Every
    path of the kernel functions starts from these numbers.
    """
    dtype = x1.dtype
    n0 = x1.shape[-1]
    q1 = w2 / n0 * jnp.sum(x1 * x1, axis=-1) + b2
    q2 = w2 / n0 * jnp.sum(x2 * x2, axis=-1) + b2
    sigma = w2 / n0 * (x1 @ x2.T) + b2
    # Products of square roots, not square roots of products: inputs of norm
    # 1e150 or 1e-150 would overflow or underflow q1 q2.
    rho = jnp.clip(sigma / (jnp.sqrt(q1)[:, None] * jnp.sqrt(q2)[None, :]), -1.0, 1.0)
    # A correlation read off a Gram matrix is only known to ~sqrt(n0) ulps, and
    # Sigmadot depends on the angle, ~sqrt(1 - |rho|) near +-1: an identical
    # (or antipodal) pair whose correlation rounds 2 ulps away from +-1 would
    # carry an angle error of 2e-8 into every layer. Correlations that close to
    # +-1 are taken to be exactly +-1.
    snap = 4.0 * math.sqrt(n0 + 1) * jnp.finfo(dtype).eps
    rho = jnp.where(1.0 - jnp.abs(rho) <= snap, jnp.sign(rho), rho)
    return q1, q2, sigma, rho


def _scaling(w2, b2, bias):
    """``(log c, (W^2/2) / c)``: the per-layer rescaling of the state (module docstring)."""
    dtype = w2.dtype
    half_w2 = w2 / 2.0
    if bias:
        # With a bias and W^2 < 2 the kernels converge to a finite fixed point: no rescaling.
        log_c = jnp.where((b2 > 0) & (half_w2 < 1.0), jnp.zeros((), dtype), jnp.log(half_w2))
        return log_c, half_w2 * jnp.exp(-log_c)
    return jnp.log(half_w2), jnp.ones((), dtype)


@partial(jax.jit, static_argnames=("n_out", "get", "bias", "every_layer", "unroll", "on_cpu"))
def _trace_impl(x1, x2, W_std, b_std, slot, *, n_out, get, bias, every_layer, unroll, on_cpu):
    """Runs layers 1..depth (``depth = len(slot)``) on inputs, keeping ``n_out`` of them."""
    dtype = x1.dtype
    w2 = jnp.asarray(W_std, dtype) ** 2
    b2 = jnp.asarray(b_std, dtype) ** 2 if bias else jnp.zeros((), dtype)
    q1, q2, sigma, rho = _layer_one(x1, x2, w2, b2)
    t1 = angle_from_correlation(rho)
    return _recursion(q1, q2, sigma, 1.0 - rho, t1, jnp.sin(t1), w2, b2, slot, n_out=n_out,
                      get=get, bias=bias, every_layer=every_layer, unroll=unroll, on_cpu=on_cpu)


def _recursion(q1, q2, sigma, omr1, t1, sin_t1, w2, b2, slot, *, n_out, get, bias, every_layer,
               unroll, on_cpu):
    """Runs layers 2..depth (``depth = len(slot)``) from layer 1, keeping ``n_out`` layers.

    ``q1 [n1]``, ``q2 [n2]``, ``sigma [n1, n2]``: layer 1's kernels; ``omr1``,
    ``t1``, ``sin_t1``: ``1 - rho_1``, its angle and the angle's sine.

    All state is rescaled by ``S_l = c^(l-1)`` (see the module docstring):
    ``q`` and ``T`` are the rescaled diagonals of ``Sigma`` and ``Theta``.
    ``bias=False`` (``b_std`` known to be 0) takes a shorter path: the rescaled
    diagonals are then constant and ``Q = sqrt(A A')``. With ``every_layer``
    (layers 1..depth in order) the scan stacks its outputs directly; otherwise
    it writes the requested layers into buffers and skips the others.

    From layer 2 on, correlations are >= 0 and the angle and its sine follow
    accurately from ``1 - rho`` alone, so the scan carries only ``1 - rho``;
    layer 1 (any correlation in [-1, 1]) is stepped outside it.

    Besides :data:`KERNEL_FIELDS`, ``get`` may hold the internal fields
    ``_omr`` (``1 - rho_l``), ``_q``/``_T`` (the rescaled diagonals of ``x1``)
    and ``_log_s`` (``log S_l``), which the interpolated path tabulates.
    """
    dtype = sigma.dtype
    half_w2 = w2 / 2.0
    log_c, ratio = _scaling(w2, b2, bias)
    state = dict(omr=omr1, theta=sigma, q1=q1, q2=q2, T1=q1, T2=q2)
    if "nngp" in get:
        state["sigma"] = sigma
    if "nngp_dot" in get:
        state["sdot"] = jnp.zeros_like(sigma)
    if not bias:
        sqrt_qq = jnp.sqrt(q1)[:, None] * jnp.sqrt(q2)[None, :]  # constant without bias

    def values(st, log_s):
        scale = jnp.exp(log_s)
        out = {}
        if "nngp" in get:
            out.update(nngp=st["sigma"] * scale, nngp_diag1=st["q1"] * scale,
                       nngp_diag2=st["q2"] * scale)
        if "nngp_dot" in get:
            out["nngp_dot"] = st["sdot"]
        if "ntk" in get:
            out.update(ntk=st["theta"] * scale, ntk_diag1=st["T1"] * scale,
                       ntk_diag2=st["T2"] * scale)
        if "rho" in get:
            out["rho"] = 1.0 - st["omr"]
        if "ntk_normalized" in get:
            out["ntk_normalized"] = st["theta"] / (
                jnp.sqrt(st["T1"])[:, None] * jnp.sqrt(st["T2"])[None, :]
            )
        if "_omr" in get:
            out.update(_omr=st["omr"], _q=st["q1"], _T=st["T1"], _log_s=log_s)
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
            omr = (b2_s * da * da / (big_q + sqrt_aa + b2_s) + sqrt_aa * one_minus_j) / big_q
            sigma = sqrt_aa * j + b2_s
        else:
            q1n, q2n = st["q1"], st["q2"]
            omr = one_minus_j
            sigma = sqrt_qq * j
        new = dict(
            omr=jnp.clip(omr, 0.0, 1.0), theta=st["theta"] * ratio * fprime + sigma,
            q1=q1n, q2=q2n, T1=st["T1"] * ratio + q1n, T2=st["T2"] * ratio + q2n,
        )
        if "nngp" in get:
            new["sigma"] = sigma
        if "nngp_dot" in get:
            new["sdot"] = half_w2 * fprime
        return new, log_s

    depth = slot.shape[0]
    first = values(state, jnp.zeros((), dtype))
    if depth == 1:
        return {k: v[None] for k, v in first.items()}
    state, log_s2 = advance(state, t1, sin_t1, jnp.ones((), jnp.int32))
    second = values(state, log_s2)

    def step(st, layer):
        return advance(st, angle_from_omr(st["omr"]), _sin_from_omr(st["omr"]), layer)

    layers_left = jnp.arange(2, depth, dtype=jnp.int32)  # producing layers 3..depth
    if every_layer:
        def dense_step(st, layer):
            new, log_s = step(st, layer)
            return new, values(new, log_s)

        _, rest = jax.lax.scan(dense_step, state, layers_left, unroll=unroll)
        return {k: jnp.concatenate([first[k][None], second[k][None], rest[k]]) for k in first}

    buffers = {k: jnp.zeros((n_out + 1,) + v.shape, dtype) for k, v in first.items()}
    buffers = _write(buffers, lambda: first, slot[0], n_out, on_cpu)
    buffers = _write(buffers, lambda: second, slot[1], n_out, on_cpu)

    def sparse_step(carry, xs):
        st, buffers = carry
        s, layer = xs
        new, log_s = step(st, layer)
        # Only the requested layers' values are computed and stored.
        return (new, _write(buffers, lambda: values(new, log_s), s, n_out, on_cpu)), None

    (_, buffers), _ = jax.lax.scan(
        sparse_step, (state, buffers), (slot[2:], layers_left), unroll=unroll
    )
    return {k: v[:n_out] for k, v in buffers.items()}


def relu_kernel_trace(
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    depth: int,
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    layers: Sequence[int] | None = None,
    get: Sequence[str] = KERNEL_FIELDS,
) -> KernelTrace:
    """Kernels of a ReLU network at every requested depth, from one compiled pass.

    The network has ``l`` weight layers at NTK parameterization (MATH.md,
    section 1), with weight and bias standard deviations ``W_std`` and
    ``b_std``. One ``lax.scan`` runs the recursion up to ``depth`` and keeps
    the layers in ``layers``: time ``O(depth n1 n2)``, memory
    ``O(len(layers) n1 n2)``.

    Args:
      x1: ``[n1, n0]`` inputs (any norm; not restricted to the sphere).
      x2: ``[n2, n0]`` inputs, or ``None`` for ``x1``.
      depth: the deepest network, ``>= 1``.
      W_std: weight standard deviation ``sigma_w > 0``.
      b_std: bias standard deviation ``sigma_b >= 0``.
      layers: the depths to return, distinct integers in ``1..depth`` (default
        all of them), returned in the order given.
      get: which of ``KERNEL_FIELDS`` to compute; the others are ``None``.

    Returns:
      A :class:`KernelTrace` whose matrices are ``[len(layers), n1, n2]``.

    Raises:
      ValueError: NaN/inf inputs, a zero input vector with ``b_std == 0`` (its
        correlation is undefined), mismatched feature dimensions, ``depth < 1``,
        ``W_std <= 0``, ``b_std < 0``, ``layers`` outside ``1..depth``, or an
        unknown field in ``get``.

    Differentiable with respect to ``x1``, ``x2``, ``W_std`` and ``b_std``;
    gradients are finite everywhere (including identical and antipodal points).
    """
    get = tuple(get)
    unknown = sorted(set(get) - set(KERNEL_FIELDS))
    if unknown or not get:
        raise ValueError(f"get={get!r}: unknown field(s) {unknown}; choose from {KERNEL_FIELDS}")
    x1, x2 = check_inputs(x1, x2, b_std=b_std)
    check_hyperparameters(W_std, b_std)
    layer_array = check_depth_and_layers(depth, layers)
    unroll, on_cpu = _loop_options()
    # Without a bias (b_std a concrete 0) the recursion takes a shorter path.
    bias = isinstance(b_std, jax.core.Tracer) or float(b_std) != 0.0
    out = _trace_impl(
        x1, x2, jnp.asarray(W_std, x1.dtype), jnp.asarray(b_std, x1.dtype),
        jnp.asarray(_slots(layer_array, depth)), n_out=len(layer_array),
        get=tuple(f for f in KERNEL_FIELDS if f in get), bias=bias,
        every_layer=bool(np.array_equal(layer_array, np.arange(1, depth + 1))),
        unroll=unroll, on_cpu=on_cpu,
    )
    fields = {f: out.get(f) for f in KernelTrace._fields if f != "layers"}
    return KernelTrace(layers=layer_array, **fields)


def relu_ntk(x1, x2=None, *, depth: int, W_std: float = math.sqrt(2.0), b_std: float = 0.0):
    """``Theta^depth(x1, x2)``, ``[n1, n2]``: the NTK of a depth-``depth`` ReLU network."""
    return relu_kernel_trace(
        x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get=("ntk",)
    ).ntk[0]


def relu_nngp(x1, x2=None, *, depth: int, W_std: float = math.sqrt(2.0), b_std: float = 0.0):
    """``Sigma^depth(x1, x2)``, ``[n1, n2]``: the NNGP kernel of a depth-``depth`` ReLU network."""
    return relu_kernel_trace(
        x1, x2, depth=depth, W_std=W_std, b_std=b_std, layers=[depth], get=("nngp",)
    ).nngp[0]


# --------------------------------------------------------------------------
# The correlation-space trace (sphere, W_std^2 = 2, no bias).


@partial(jax.jit, static_argnames=("n_out", "unroll", "on_cpu"))
def _correlation_impl(rho1, slot, *, n_out, unroll, on_cpu):
    dtype = rho1.dtype
    rho1 = jnp.clip(rho1, -1.0, 1.0)
    t = angle_from_correlation(rho1)
    state = (t, 1.0 - rho1, jnp.sin(t), rho1)  # angle, 1 - rho, sin(angle), Thetabar^1 = rho_1

    def values(st):
        t, omr, _, tb = st
        return dict(rho=1.0 - omr, one_minus_rho=omr, fprime=(jnp.pi - t) / jnp.pi, ntk_normalized=tb)

    buffers = {k: jnp.zeros((n_out + 1,) + rho1.shape, dtype) for k in values(state)}
    buffers = _write(buffers, lambda: values(state), slot[0], n_out, on_cpu)

    def step(carry, xs):
        (t, omr, sin_t, tb), buffers = carry
        s, layer = xs
        ell = layer.astype(dtype)
        omr_n = _one_minus_j(t, omr, sin_t)
        fprime = (jnp.pi - t) / jnp.pi
        # Proposition 5: Thetabar^{L+1} = (L f'(rho_L) Thetabar^L + f(rho_L)) / (L + 1).
        tb_n = (ell * fprime * tb + (1.0 - omr_n)) / (ell + 1.0)
        new = (angle_from_omr(omr_n), omr_n, _sin_from_omr(omr_n), tb_n)
        return (new, _write(buffers, lambda: values(new), s, n_out, on_cpu)), None

    depth = slot.shape[0]
    xs = (slot[1:], jnp.arange(1, depth, dtype=jnp.int32))
    (_, buffers), _ = jax.lax.scan(step, (state, buffers), xs, unroll=unroll)
    return {k: v[:n_out] for k, v in buffers.items()}


def correlation_trace(
    rho: jax.Array, *, depth: int, layers: Sequence[int] | None = None
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
    """
    rho = jnp.asarray(rho)
    if not jnp.issubdtype(rho.dtype, jnp.floating):
        rho = rho.astype(jnp.result_type(float))
    check_finite(rho, "rho")
    if not isinstance(rho, jax.core.Tracer):
        r = np.asarray(rho)
        if np.any(np.abs(r) > 1.0):
            raise ValueError(f"rho must lie in [-1, 1]; got values from {r.min()} to {r.max()}")
    layer_array = check_depth_and_layers(depth, layers)
    out = _correlation_impl(
        rho, jnp.asarray(_slots(layer_array, depth)), n_out=len(layer_array),
        **dict(zip(("unroll", "on_cpu"), _loop_options())),
    )
    return CorrelationTrace(layers=layer_array, **out)
