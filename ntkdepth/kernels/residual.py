"""Residual networks' settings and readout: the branch scale, a number ``alpha`` or ``a/sqrt(L)``,
and the kernels of the linear readout of the stream (docs/residual.md).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_residual", "readout_fields", "residual_alpha"]

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
