"""The empirical NTK ``J(x1) J(x2)^T`` of any ``apply_fn(params, x)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["empirical_ntk", "empirical_ntk_fn", "monte_carlo_ntk"]

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def empirical_ntk_fn(apply_fn: ApplyFn, batch_size: int = 64) -> Callable:
    """Returns ``ntk(params, x1, x2=None) -> [n1, n2]``, jit-compiled.

    ``apply_fn(params, x)`` maps ``[n, n0]`` inputs to ``[n, k]`` outputs; the
    kernel is averaged over the ``k`` outputs (the trace of the ``[k, k]``
    block divided by ``k``, as neural-tangents' ``trace_axes=(-1,)``). Rows of
    ``x1`` are processed ``batch_size`` at a time, so memory holds the
    Jacobian of one batch of ``x1`` and all of ``x2``.
    """

    def jacobian(params, x):
        # [n, k, *param_shape] for every leaf of params.
        return jax.jacrev(lambda p: apply_fn(p, x))(params)

    def block(params, xa, j2):
        j1 = jacobian(params, xa)
        k = apply_fn(params, xa[:1]).shape[-1]
        contract = lambda a, b: jnp.einsum("ik...,jk...->ij", a, b)
        leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(contract, j1, j2))
        return sum(leaves) / k

    @jax.jit
    def ntk(params, x1, x2):
        j2 = jacobian(params, x2)
        n1 = x1.shape[0]
        pad = (-n1) % batch_size
        xb = jnp.pad(x1, ((0, pad), (0, 0))).reshape(-1, batch_size, x1.shape[-1])
        rows = jax.lax.map(lambda xa: block(params, xa, j2), xb)
        return rows.reshape(-1, x2.shape[0])[:n1]

    def call(params, x1, x2=None):
        return ntk(params, x1, x1 if x2 is None else x2)

    return call


def empirical_ntk(apply_fn: ApplyFn, params, x1, x2=None, batch_size: int = 64) -> jax.Array:
    """``[n1, n2]`` empirical NTK of ``apply_fn`` at ``params`` (see :func:`empirical_ntk_fn`)."""
    return empirical_ntk_fn(apply_fn, batch_size)(params, x1, x2)


def monte_carlo_ntk(
    init_fn: Callable,
    apply_fn: ApplyFn,
    key: jax.Array,
    x1: jax.Array,
    x2: jax.Array | None = None,
    n_samples: int = 8,
    batch_size: int = 64,
) -> tuple[jax.Array, jax.Array]:
    """Mean and standard error of the empirical NTK over ``n_samples`` initializations.

    ``init_fn(key, input_shape) -> (output_shape, params)`` as in
    neural-tangents' ``stax``. Returns ``(mean, stderr)``, each ``[n1, n2]``.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to estimate an error; got {n_samples}")
    ntk = empirical_ntk_fn(apply_fn, batch_size)
    samples = []
    for k in jax.random.split(key, n_samples):
        _, params = init_fn(k, (-1, x1.shape[-1]))
        samples.append(ntk(params, x1, x2))
    stacked = jnp.stack(samples)
    return stacked.mean(0), stacked.std(0, ddof=1) / jnp.sqrt(n_samples)
