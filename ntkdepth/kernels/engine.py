"""The layer recursion for any activation, in normalized form (docs/activations.md#the-normalized-recursion).

The loop carries the correlation ``rho``, the normalized NTK ``Thetabar`` and, per input, the logarithms
of the diagonals ``Sigma^l(x, x)`` and ``Theta^l(x, x)``; every step is a convex combination, so no
value leaves ``[-1, 1]`` and no raw kernel over- or underflows inside the loop.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntkdepth.kernels.activations import Activation
from ntkdepth.kernels.gaussian import MehlerPlan, hermite_table
from ntkdepth.kernels.interpolant import (
    chebyshev_coefficients,
    chebyshev_matrix,
    chebyshev_points,
    chebyshev_sum,
    clenshaw,
    locate,
    symmetric_mesh,
)
from ntkdepth.kernels.residual import residual_loop
from ntkdepth.kernels.scaling import times
from ntkdepth.kernels.scan import loop_options, requested_layers, run_length, scan_layers, slot_of, write_slot

__all__ = ["BULK_DEGREE", "BULK_RADII", "BulkSeries", "LayerRows", "Tables", "layer_growth", "layer_kinds",
           "normalized_loop", "plan_for_inputs", "ratio_panels", "static_plan", "tabulate", "tabulated_fields"]


class LayerRows(NamedTuple):
    """Per input at one layer: ``lq = log Sigma^l(x, x)`` and ``lt = log Theta^l(x, x)`` (``[n]``)."""

    lq: jax.Array
    lt: jax.Array


def _second_moment_numpy(fn, q: np.ndarray, nodes: int = 256) -> np.ndarray:
    z, sqrt_w, _ = hermite_table(nodes, 0)
    # A variance growing without bound overflows here: inf, which plan_for_inputs stops at.
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(fn(np.sqrt(q)[:, None] * z), np.float64)
        return (values * values) @ (sqrt_w * sqrt_w)


def plan_for_inputs(act: Activation, lq1: np.ndarray, W_std: float, b_std: float, depth: int,
                    dtype, alpha: float | None = None) -> MehlerPlan | None:
    """The Hermite plan of ``act`` for every variance a ``depth``-layer run from ``lq1`` meets.

    The diagonal recursion ``q <- W^2 m(q) + b^2`` (with ``alpha``, a residual network's
    ``q <- q + alpha^2 (W^2 m(q) + b^2)``) is run in float64 for a few inputs spanning the range of
    ``Sigma^1(x, x)`` (it is monotone in ``q`` for the built-in activations), until it settles; the
    plan covers every variance seen. Past the first ``_KEPT`` layers only the extremes are kept, so
    that a deep run stores nothing per layer.
    """
    if act.closed_form:
        return None
    q = np.exp(np.quantile(np.asarray(lq1, np.float64), np.linspace(0.0, 1.0, 9)))
    fn = act._numpy_fn()
    w2, b2 = float(W_std) ** 2, float(b_std) ** 2
    a2 = None if alpha is None else float(alpha) ** 2
    seen = [q]
    low, high = np.full_like(q, np.inf), np.full_like(q, -np.inf)
    for layer in range(2, depth + 1):
        new = w2 * _second_moment_numpy(fn, q) + b2
        if a2 is not None:
            new = q + a2 * new
        if layer <= _KEPT or not np.all(np.isfinite(new)):
            seen.append(new)
        else:
            low, high = np.minimum(low, new), np.maximum(high, new)
        if not np.all(np.isfinite(new)):
            break
        if np.allclose(new, q, rtol=1e-14, atol=0.0):
            break
        q = new
    seen = np.concatenate(seen + [v for v in (low, high) if np.all(np.isfinite(v))])
    seen = seen[np.isfinite(seen)]
    picks = np.unique(np.quantile(seen, [0.0, 0.5, 0.9, 1.0])) if seen.size else seen
    return act.plan(picks, dtype)


#: Layers of the planning recursion whose variances are all kept (beyond them, their extremes).
_KEPT = 4096


def static_plan(plan: MehlerPlan | None) -> MehlerPlan | None:
    """``plan`` as the compiled loop sees it: its terms and nodes, not its tail (which does not shape
    the loop), so that plans differing in the tail alone share one compiled loop."""
    return None if plan is None else plan._replace(tail=0.0)


@partial(jax.jit, static_argnames=("act", "plan", "length", "n_out", "get", "bias", "every_layer", "unroll",
                                   "on_cpu", "squeeze", "symmetric"))
def normalized_loop(rho1, lq1, lq2, W_std, b_std, requested, *, act: Activation, plan, length: int, n_out: int,
                    get: tuple, bias: bool, every_layer: bool, unroll: int, on_cpu: bool, squeeze: bool = False,
                    symmetric: bool = False):
    """Layers 1..depth from layer 1, keeping the ``n_out`` layers of ``requested``.

    ``requested``: :func:`ntkdepth.kernels.scan.requested_layers`, whose deepest layer is the depth (a
    value); ``length``: the compiled loop's (:func:`ntkdepth.kernels.scan.run_length`), past the depth
    the loop does nothing, so one compiled loop serves every depth of a length. Each layer's place
    in the output is found inside the loop: nothing is kept per layer of the network.

    ``rho1 [n1, n2]``: the first layer's correlations; ``lq1 [n1]``, ``lq2 [n2]``: the logarithms of
    ``Sigma^1(x, x)``. With ``symmetric`` the inputs are one set against itself (``x2 = x1``): each
    layer's per-input expansion is formed once. Returns the fields of ``get`` (of ``KERNEL_FIELDS``) as
    ``[n_out, n1, n2]`` and the diagonals as ``[n_out, n]``; with ``squeeze`` (one layer) without the
    layer axis. (Residual networks: :func:`ntkdepth.kernels.residual.residual_loop`.)
    """
    dtype = rho1.dtype
    lw2 = 2.0 * jnp.log(jnp.asarray(W_std, dtype))
    lb2 = 2.0 * jnp.log(jnp.asarray(b_std, dtype)) if bias else None
    passes_ntk = act.passes_gradient

    def values(st):
        out = {}
        if "rho" in get:
            out["rho"] = st["rho"]
        if "ntk_normalized" in get:
            out["ntk_normalized"] = st["tbar"]
        if "nngp" in get:
            g1, g2 = jnp.exp(0.5 * st["lq1"]), jnp.exp(0.5 * st["lq2"])
            out.update(nngp=times(st["rho"], g1[:, None] * g2[None, :]), nngp_diag1=g1 * g1,
                       nngp_diag2=g2 * g2)
        if "ntk" in get:
            h1, h2 = jnp.exp(0.5 * st["lt1"]), jnp.exp(0.5 * st["lt2"])
            out.update(ntk=times(st["tbar"], h1[:, None] * h2[None, :]), ntk_diag1=h1 * h1,
                       ntk_diag2=h2 * h2)
        if "nngp_dot" in get:
            out["nngp_dot"] = st["sdot"]
        if "_rows" in get:  # the diagonals of x1 in logarithms (for the tabulated path)
            out.update(_lq=st["lq1"], _lt=st["lt1"], _lsd=st["lsd1"])
        if "_logs" in get:  # every diagonal in logarithms (for a readout that must not overflow)
            out.update(_lq1=st["lq1"], _lq2=st["lq2"], _lt1=st["lt1"], _lt2=st["lt2"])
        return out

    def advance(st):
        r1 = act.rows(st["lq1"], plan)
        r2 = r1 if symmetric else act.rows(st["lq2"], plan)
        # Equal variances at correlation 1 are one variable twice: both correlations are exactly 1
        # (a series or a ratio would round them).
        same = (st["rho"] == 1.0) & (st["lq1"][:, None] == st["lq2"][None, :])
        # The largest |rho| whose correlations are used: a series stops where its terms no longer count.
        reach = jnp.max(jnp.where(same, 0.0, jnp.abs(st["rho"])))
        columns = None if symmetric and not act.closed_form else {k: v[None, :] for k, v in r2.items()}
        kappa, delta = act.correlations({k: v[:, None] for k, v in r1.items()}, columns, st["rho"], reach)
        kappa, delta = jnp.where(same, 1.0, kappa), jnp.where(same, 1.0, delta)
        opposite = None
        if act.odd and not bias:
            # An odd activation keeps an opposite pair of equal variances opposite: exactly, since -1
            # is an unstable fixed point where the map expands (one rounding grows like chi_1^l).
            opposite = (st["rho"] == -1.0) & (st["lq1"][:, None] == st["lq2"][None, :])
            kappa, delta = jnp.where(opposite, -1.0, kappa), jnp.where(opposite, 1.0, delta)
        new = {}
        rows = []
        for r, lq, lt in ((r1, st["lq1"], st["lt1"]), (r2, st["lq2"], st["lt2"])):
            lsig = lw2 + r["lm"]  # log W^2 m(q): Sigma^{l+1}(x, x) before the bias
            lqn = jnp.logaddexp(lsig, lb2) if bias else lsig
            u = jnp.exp(0.5 * (lsig - lqn))
            v = jnp.exp(0.5 * (lb2 - lqn)) if bias else None
            if passes_ntk:
                lsd = lw2 + r["lmd"]  # log Sigmadot^{l+1}(x, x)
                ltn = jnp.logaddexp(lt + lsd, lqn)
                rr, ss = jnp.exp(0.5 * (lt + lsd - ltn)), jnp.exp(0.5 * (lqn - ltn))
            else:
                lsd, ltn, rr, ss = None, lqn, None, None
            rows.append((lqn, ltn, u, v, rr, ss, lsd))
        (lq1n, lt1n, u1, v1, rr1, ss1, lsd1), (lq2n, lt2n, u2, v2, rr2, ss2, lsd2) = rows
        rho = _convex(u1, u2, kappa, v1, v2, jnp.ones_like(kappa) if bias else None)
        if passes_ntk:
            tbar = _convex(rr1, rr2, delta * st["tbar"], ss1, ss2, rho)
        else:
            tbar = rho
        if opposite is not None:  # Theta(x, -x) = -Theta(x, x), not -(r^2 + s^2) rounded
            tbar = jnp.where(opposite, -1.0, tbar)
        new.update(rho=rho, tbar=tbar, lq1=lq1n, lq2=lq2n, lt1=lt1n, lt2=lt2n)
        if "_rows" in get:
            new["lsd1"] = lsd1 if passes_ntk else jnp.full_like(lq1n, -jnp.inf)
        if "nngp_dot" in get:
            if passes_ntk:
                d1, d2 = jnp.exp(0.5 * lsd1), jnp.exp(0.5 * lsd2)
                new["sdot"] = times(delta, d1[:, None] * d2[None, :])
            else:
                new["sdot"] = jnp.zeros_like(rho)
        return new

    state = dict(rho=rho1, tbar=rho1, lq1=lq1, lq2=lq2, lt1=lq1, lt2=lq2)
    if "_rows" in get:
        state["lsd1"] = jnp.full_like(lq1, -jnp.inf)
    if "nngp_dot" in get:
        state["sdot"] = jnp.zeros_like(rho1)
    depth_now = requested[0, -1]  # the deepest requested layer
    first = values(state)

    def step(st, layer):
        """Layer ``layer + 1`` up to the depth, then nothing (a conditional on a CPU, a select elsewhere)."""
        if every_layer:  # the loop is exactly the depth long
            return advance(st)
        active = layer < depth_now
        if on_cpu:
            return jax.lax.cond(active, advance, lambda st: st, st)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), advance(st), st)

    # The scans below produce layers 2..length from layer numbers 1..length - 1.
    if length == 1:
        out = {k: v[None] for k, v in first.items()}
    elif every_layer and on_cpu:
        # The scan's stacked outputs are the result itself (no copy into a larger array): its first
        # iteration hands out layer 1 unchanged.
        def dense_step(st, k):
            def computed(st):
                new = advance(st)
                return new, values(new)

            return jax.lax.cond(k < 1, lambda st: (st, first), computed, st)

        _, out = jax.lax.scan(dense_step, state, jnp.arange(length), unroll=unroll)
    elif every_layer:
        # An accelerator's conditional costs a host round trip per layer; its memory is fast.
        def dense_step(st, _):
            new = advance(st)
            return new, values(new)

        _, rest = jax.lax.scan(dense_step, state, None, length=length - 1, unroll=unroll)
        out = {k: jnp.concatenate([first[k][None], rest[k]]) for k in first}
    elif n_out == 1:
        final, _ = scan_layers(lambda st, layer: (step(st, layer), None), state, 1, length - 1, unroll)
        out = {k: v[None] for k, v in values(final).items()}
    else:
        buffers = {k: jnp.zeros((n_out + 1,) + jnp.shape(v), dtype) for k, v in first.items()}
        buffers = write_slot(buffers, lambda: first, slot_of(requested, jnp.ones((), jnp.int32)), n_out, on_cpu)

        def sparse_step(carry, layer):
            st, bufs = carry
            new = step(st, layer)
            return (new, write_slot(bufs, lambda: values(new), slot_of(requested, layer + 1), n_out, on_cpu)), None

        (_, buffers), _ = scan_layers(sparse_step, (state, buffers), 1, length - 1, unroll)
        out = {k: v[:n_out] for k, v in buffers.items()}
    return {k: v[0] for k, v in out.items()} if squeeze else out


def _convex(a1, a2, x, c1, c2, y):
    """``a a' x + c c' y`` for rows with ``a^2 + c^2 = 1`` (``c``, ``y`` may be ``None``: 0), in ``[-1, 1]``.

    Where the result is near 1 it is formed as ``1 - (a a' (1 - x) + c c' (1 - y) + ((a - a')^2 +
    (c - c')^2) / 2)``, a sum of small terms, so that identical inputs keep exactly 1 and nearly
    identical ones keep ``1 - result`` to absolute rounding, whatever the rounding of ``a^2 + c^2``.
    """
    aa = a1[:, None] * a2[None, :]
    direct = aa * x
    gap = aa * (1.0 - x) + 0.5 * jnp.square(a1[:, None] - a2[None, :])
    if c1 is not None:
        cc = c1[:, None] * c2[None, :]
        direct = direct + cc * y
        gap = gap + cc * (1.0 - y) + 0.5 * jnp.square(c1[:, None] - c2[None, :])
    return jnp.clip(jnp.where(direct > 0.5, 1.0 - gap, direct), -1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# The tabulated path: every layer's maps as functions of rho_1, at Gram-matrix cost.


#: Degree of the one Chebyshev series that replaces the panels where every pair's ``|rho_1|`` is small.
BULK_DEGREE = 16
#: Radii of the intervals ``|rho_1| <= radius`` on which that series is made: ``2^-6 .. 2^-2``.
BULK_RADII = tuple(2.0**-k for k in range(2, 7))
#: Points of ``[-1, 1]`` (evenly spaced, in units of the radius) where the series is checked.
_BULK_CHECKS = np.linspace(-1.0, 1.0, 17)


class BulkSeries(NamedTuple):
    """One Chebyshev series in ``rho_1 / radius`` per layer and map, for pairs with ``|rho_1| <= radius``.

    ``rho``, ``tbar``, ``delta``: ``[m, BULK_DEGREE + 1]`` coefficients of ``rho_l``, ``Thetabar^l`` and
    the derivative kernel's correlation (``None`` where the tables have none); ``radius``: a number;
    ``error``: the largest difference between the series and the recursion itself at the 17 points
    of ``_BULK_CHECKS`` (other than the series' own).
    """

    radius: float
    rho: jax.Array | None
    tbar: jax.Array | None
    delta: jax.Array | None
    error: jax.Array


class Tables(NamedTuple):
    """Chebyshev coefficients of the maps at the requested layers, from one run over the mesh's nodes.

    ``rho``, ``tbar``, ``delta``: ``[m, P * N]`` coefficients of ``rho_l`` (as ``(1 - rho_l) / (1 - rho_1)``
    on the panels with ``rho_1 >= 1/2``), ``Thetabar^l`` and the derivative kernel's correlation
    (``None`` where not needed); ``ends``: ``[m, 3]`` their values at ``rho_1 = -1``; ``lq``, ``lt``,
    ``lsd``: ``[m]`` the diagonals' logarithms for the common ``Sigma^1(x, x)`` of the node run.
    """

    rho: jax.Array | None
    tbar: jax.Array | None
    delta: jax.Array | None
    ends: jax.Array
    lq: jax.Array
    lt: jax.Array
    lsd: jax.Array
    bulk: BulkSeries | None = None


def ratio_panels(mesh) -> int:
    """Panels of the positive side lying within ``rho_1 >= 1/2`` (``v <= 1/2``), tabulated as ratios."""
    return int(np.sum(mesh.hi[: mesh.n_side] <= 0.5))


def tabulate(act: Activation, plan, W_std: float, b_std: float, lq: float, layers: tuple[int, ...], dtype,
             emin: int, needs: tuple[bool, bool, bool], alpha: float | None = None,
             bulk_radius: float | None = None) -> Tables:
    """Runs the normalized loop on the nodes of :func:`symmetric_mesh` (``emin``) and ``rho_1 = -1``
    at the common ``log Sigma^1(x, x) = lq`` and fits the interpolants (needs: ``rho``, ``tbar``,
    ``delta``); with ``bulk_radius`` (one of :data:`BULK_RADII`) also at the points of one series on
    ``|rho_1| <= bulk_radius`` and 17 more that check it (:class:`BulkSeries`)."""
    mesh = symmetric_mesh(emin)
    rho_nodes, omr_nodes = mesh.nodes()
    extra = np.zeros(0)
    if bulk_radius is not None:  # the series' Chebyshev points, then its check points
        extra = bulk_radius * np.concatenate([chebyshev_points(BULK_DEGREE + 1), _BULK_CHECKS])
    n_mesh = len(rho_nodes)
    rho1 = jnp.asarray(np.concatenate([rho_nodes, [-1.0], extra]), dtype)[None, :]
    layer_array = np.asarray(layers)
    bias = b_std != 0.0
    unroll, on_cpu = loop_options()
    get = ("rho", "ntk_normalized", "_rows") + (("nngp_dot",) if needs[2] else ())
    lq_arr = jnp.full((1,), lq, dtype)
    args = (lq_arr, lq_arr, np.asarray(W_std, dtype), np.asarray(b_std, dtype))
    requested = jnp.asarray(requested_layers(layer_array))
    loop = dict(plan=static_plan(plan), length=run_length(layer_array), n_out=len(layer_array), bias=bias,
                every_layer=False)
    if alpha is None:
        out = normalized_loop(rho1, *args, requested, act=act, get=get, unroll=unroll, on_cpu=on_cpu, **loop)
    else:  # the residual loop keeps 1 - rho_l itself
        omr_all = jnp.asarray(np.concatenate([omr_nodes, [2.0], 1.0 - extra]), dtype)[None, :]
        out = residual_loop(rho1, *args, np.asarray(alpha, dtype), requested, act=act, get=get + ("_omr",),
                            omr1=omr_all, **loop)
    bulk = None
    if bulk_radius is not None:
        bulk = _bulk_series(out, needs, n_mesh + 1, bulk_radius, dtype)
        out = {k: v[..., : n_mesh + 1] if v.ndim == 3 else v for k, v in out.items()}
    n_panels = len(mesh.lo)
    n_ratio = ratio_panels(mesh)
    omr1 = jnp.asarray(omr_nodes, dtype)
    rho_l = out["rho"][:, 0, :-1]
    omr_l = out["_omr"][:, 0, :-1] if "_omr" in out else 1.0 - rho_l
    ratio_mask = jnp.asarray(np.repeat(np.arange(n_panels) < n_ratio, 9), bool)
    rho_form = jnp.where(ratio_mask, omr_l / omr1, rho_l)
    sdot = out.get("nngp_dot")
    lsd = out["_lsd"][:, 0]
    delta = None
    if needs[2]:
        d = jnp.exp(lsd)[:, None]
        delta_all = jnp.where(d > 0, sdot[:, 0, :] / jnp.where(d > 0, d, 1.0), 0.0)
    ends = jnp.stack([out["rho"][:, 0, -1], out["ntk_normalized"][:, 0, -1],
                      delta_all[:, -1] if needs[2] else jnp.zeros_like(lsd)], -1)
    if needs[2]:
        delta = chebyshev_coefficients(delta_all[:, :-1], n_panels)
    return Tables(
        rho=chebyshev_coefficients(rho_form, n_panels) if needs[0] else None,
        tbar=chebyshev_coefficients(out["ntk_normalized"][:, 0, :-1], n_panels) if needs[1] else None,
        delta=delta, ends=ends, lq=out["_lq"][:, 0], lt=out["_lt"][:, 0], lsd=lsd, bulk=bulk,
    )


def _bulk_series(out: dict, needs, start: int, radius: float, dtype) -> BulkSeries:
    """The series of :class:`BulkSeries` from the node run's values ``out`` (``[m, 1, nodes]`` fields),
    whose nodes from ``start`` on are the series' points and then its checks (:func:`tabulate`)."""
    n = BULK_DEGREE + 1
    dct = jnp.asarray(chebyshev_matrix(n).T, dtype)
    check = jnp.asarray(_BULK_CHECKS, dtype)
    maps = {"rho": out["rho"], "tbar": out["ntk_normalized"]}
    if needs[2]:
        d = jnp.exp(out["_lsd"][:, 0])[:, None]
        maps["delta"] = jnp.where(d > 0, out["nngp_dot"][:, 0, :] / jnp.where(d > 0, d, 1.0), 0.0)[:, None, :]
    coefs, err = {}, jnp.zeros((), dtype)
    for key, need in zip(("rho", "tbar", "delta"), needs):
        if not need:
            continue
        values = maps[key][:, 0, start:]
        c = values[:, :n] @ dct  # [m, n]
        fit = jax.vmap(lambda c: chebyshev_sum(c, check))(c)
        err = jnp.maximum(err, jnp.max(jnp.abs(fit - values[:, n:])))
        coefs[key] = c
    return BulkSeries(radius, coefs.get("rho"), coefs.get("tbar"), coefs.get("delta"), err)


def layer_kinds(layers) -> tuple[int, ...]:
    """Each requested layer's kind for the compiled pass: 1 (the first layer itself) or 2 (the tables).

    The layers' numbers enter the pass as values (:func:`layer_growth`), so one compiled pass serves
    every depth."""
    return tuple(min(int(l), 2) for l in layers)


def layer_growth(layers, degree, dtype) -> tuple[np.ndarray, np.ndarray] | None:
    """``(k^(l - 1), (k - 1) k^(l - 2))`` per layer ``l`` for a homogeneous activation of degree ``k``
    (``[m]`` each; the second is 0 at layer 1): the powers to which each input's ``Sigma^1(x, x)``
    enters ``Sigma^l(x, x)`` and ``Sigmadot^l(x, x)``. ``None`` without a degree."""
    if degree is None:
        return None
    k = float(degree)
    grow, dgrow = [], []
    for layer in (int(l) for l in layers):
        grow.append(_power(k, layer - 1))
        dgrow.append((k - 1.0) * _power(k, layer - 2) if layer >= 2 else 0.0)
    return np.asarray(grow, dtype), np.asarray(dgrow, dtype)


def _power(k: float, n: int) -> float:
    try:
        return k**n
    except OverflowError:
        return math.inf


def _panel_maps(p, rho1, emin: int, n_side: int, n_ratio: int) -> dict:
    """``rho_l``, ``Thetabar^l`` and the derivative kernel's correlation at ``rho1`` (any shape) from
    one layer's tables ``p`` (those present), before the first layer's and identical pairs' cases."""
    positive = rho1 >= 0
    a = 1.0 - jnp.abs(rho1)
    base, u = locate(jnp.sqrt(0.5 * a), positive, emin, n_side)
    base, u = jax.lax.optimization_barrier((base, u))
    antipodal = (a == 0) & ~positive
    out = {}
    if p.get("rho") is not None:
        y = clenshaw(p["rho"], base, u)
        out["rho"] = jnp.where(antipodal, p["ends"][0], jnp.where(base < n_ratio * 9, 1.0 - a * y, y))
    for key, end in (("tbar", 1), ("delta", 2)):
        if p.get(key) is not None:
            out[key] = jnp.where(antipodal, p["ends"][end], clenshaw(p[key], base, u))
    return out


@partial(jax.jit, static_argnames=("kinds", "get", "emin", "n_side", "n_ratio", "squeeze"))
def tabulated_fields(rho1, lq1, lq2, tables: Tables, growth=None, *, kinds: tuple[int, ...], get: tuple,
                     emin: int, n_side: int, n_ratio: int, squeeze: bool = False) -> dict:
    """The fields of ``get`` at the tables' layers from the first layer (``rho1 [n1, n2]``, ``lq1 [n1]``,
    ``lq2 [n2]``) and the tables: one elementwise pass per layer (``kinds``: :func:`layer_kinds`).

    With ``growth`` (:func:`layer_growth`, a homogeneous activation without bias) the tables were made
    at ``Sigma^1 = 1`` and each input's diagonals follow from its own ``Sigma^1(x, x)``; otherwise every
    input has the tables' diagonals. With ``tables.bulk`` (:class:`BulkSeries`; every pair neither
    identical nor opposite has ``|rho_1| <= bulk.radius``) each map is one series in ``rho_1`` instead of
    the panels: no table lookups, so the pass vectorizes.
    """
    bulk = tables.bulk
    same = (rho1 == 1.0)
    t = None if bulk is None else jnp.clip(rho1 / bulk.radius, -1.0, 1.0)
    fields = {f for f in get if f != "_logs"}
    # Every layer is one vectorized pass producing each output whole ([m, n1, n2]): stacking per-layer
    # arrays would write each layer twice (measured 2.3x slower for 100 layers).
    per_layer = dict(first=jnp.asarray(np.asarray(kinds) == 1), lq=tables.lq, lt=tables.lt, lsd=tables.lsd,
                     ends=tables.ends)
    if growth is not None:
        per_layer.update(grow=jnp.asarray(growth[0]), dgrow=jnp.asarray(growth[1]))
    source = tables if bulk is None else bulk
    for key in ("rho", "tbar", "delta"):
        if getattr(source, key) is not None:
            per_layer[key] = getattr(source, key)

    def layer(p):
        if growth is None:
            lqa, lqb = jnp.full_like(lq1, p["lq"]), jnp.full_like(lq2, p["lq"])
            sd_a, sd_b = jnp.full_like(lq1, p["lsd"]), jnp.full_like(lq2, p["lsd"])
        else:
            def scaled(lq, g):
                return jnp.where(lq == 0, 0.0, g * lq)

            lqa, lqb = p["lq"] + scaled(lq1, p["grow"]), p["lq"] + scaled(lq2, p["grow"])
            sd_a, sd_b = p["lsd"] + scaled(lq1, p["dgrow"]), p["lsd"] + scaled(lq2, p["dgrow"])
        tau = p["lt"] - p["lq"]
        lta, ltb = lqa + tau, lqb + tau
        first = p["first"]
        maps = _panel_maps(p, rho1, emin, n_side, n_ratio) if bulk is None else {}

        def interpolated(key):
            if bulk is None:
                return maps[key]
            return jnp.where(rho1 == -1.0, p["ends"][("rho", "tbar", "delta").index(key)],
                             chebyshev_sum(p[key], t))

        out = {}
        rho_l = tbar = delta = None
        if "rho" in fields or "nngp" in fields:
            rho_l = jnp.clip(jnp.where(same, 1.0, interpolated("rho")), -1.0, 1.0)
            rho_l = jnp.where(first, rho1, rho_l)
        if "ntk" in fields or "ntk_normalized" in fields:
            tbar = jnp.clip(jnp.where(same, 1.0, interpolated("tbar")), -1.0, 1.0)
            tbar = jnp.where(first, rho1, tbar)
        if "nngp_dot" in fields:
            delta = jnp.where(same, 1.0, interpolated("delta"))
        if "rho" in fields:
            out["rho"] = rho_l
        if "ntk_normalized" in fields:
            out["ntk_normalized"] = tbar
        if "nngp" in fields:
            g1, g2 = jnp.exp(0.5 * lqa), jnp.exp(0.5 * lqb)
            out.update(nngp=times(rho_l, g1[:, None] * g2[None, :]), nngp_diag1=g1 * g1, nngp_diag2=g2 * g2)
        if "ntk" in fields:
            h1, h2 = jnp.exp(0.5 * lta), jnp.exp(0.5 * ltb)
            out.update(ntk=times(tbar, h1[:, None] * h2[None, :]), ntk_diag1=h1 * h1, ntk_diag2=h2 * h2)
        if "_logs" in get:
            out.update(_lq1=lqa, _lq2=lqb, _lt1=lta, _lt2=ltb)
        if "nngp_dot" in fields:
            d1, d2 = jnp.exp(0.5 * sd_a), jnp.exp(0.5 * sd_b)
            out["nngp_dot"] = jnp.where(first, 0.0, times(delta, d1[:, None] * d2[None, :]))
        return out

    result = jax.vmap(layer)(per_layer)
    return {k: v[0] for k, v in result.items()} if squeeze else result
