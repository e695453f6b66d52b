"""The empirical NTK ``J(x1) J(x2)^T`` and the feature kernel of finite networks: any network by its
Jacobians (:func:`empirical_ntk_fn`), the MLP exactly from its layers (:func:`mlp_ntk`;
docs/kernels.md#finite-width).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ntkdepth.models.functional import FunctionalModel, functional

__all__ = [
    "empirical_ntk",
    "empirical_ntk_fn",
    "feature_kernel",
    "mlp_ntk",
    "monte_carlo_ntk",
]

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def empirical_ntk_fn(apply_fn: ApplyFn, block_size: int | None = None, memory_bytes: int = 1 << 30) -> Callable:
    """Returns ``ntk(params, x1, x2=None) -> [n1, n2]`` for any network.

    ``apply_fn(params, x)`` maps ``[n, ...]`` inputs to ``[n, k]`` outputs, each
    row depending on its own input only. Each input's Jacobian
    ``J(x) = d f(x) / d params`` (``[k, P]``, flattened over the parameter
    leaves) comes from ``vmap(jacrev)`` of the one-input function, ``block_size``
    inputs per compiled call (default: all of them in one compiled program when
    their Jacobians fit in ``memory_bytes``, else as many as fill a quarter of it),
    and the kernel is the matrix product
    ``J(x1) J(x2)^T / k`` (BLAS; a sum of one product per parameter leaf, so
    that the Jacobians are never concatenated), averaged over the ``k`` outputs.

    Every Jacobian is computed once when those of ``x1`` and ``x2`` fit in
    ``memory_bytes``. Otherwise ``x1`` is taken in panels that fill half of it,
    and the Jacobians of ``x2`` are computed again, ``block_size`` at a time, for
    each panel: memory stays within ``memory_bytes`` plus one block.
    """
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be >= 1 or None; got {block_size}")
    if memory_bytes < 1:
        raise ValueError(f"memory_bytes must be >= 1; got {memory_bytes}")
    try:
        hash(apply_fn)
    except TypeError:
        return _build_ntk_fn(apply_fn, block_size, int(memory_bytes))
    # The same function, block size and budget reuse the compiled Jacobians.
    return _cached_ntk_fn(apply_fn, block_size, int(memory_bytes))


def _build_ntk_fn(apply_fn: ApplyFn, block_size: int | None, memory_bytes: int) -> Callable:
    def one(params, x):
        return apply_fn(params, x[None])[0]  # [k]

    @jax.jit
    def jacobians(params, xb):
        """The Jacobians of a block of inputs, one ``[b, k * size]`` matrix per parameter leaf."""
        jac = jax.vmap(jax.jacrev(one), in_axes=(None, 0))(params, xb)  # leaves [b, k, *shape]
        return tuple(leaf.reshape(xb.shape[0], -1) for leaf in jax.tree_util.tree_leaves(jac))

    def contract(j1, j2):
        # Leaf by leaf: the Jacobians are never concatenated (a copy as large as all of them).
        return sum(jnp.matmul(a, b.T, precision="highest") for a, b in zip(j1, j2))

    @jax.jit
    def fused_same(params, x):
        j = jacobians(params, x)
        return contract(j, j)

    @jax.jit
    def fused_pair(params, x1, x2):
        return contract(jacobians(params, x1), jacobians(params, x2))

    @jax.jit
    def product(j1, j2, k):
        return contract(j1, j2) / k

    def parts(params, x, block_size):
        """The Jacobians of ``x`` in blocks of equal size (the last one padded)."""
        n = x.shape[0]
        count = -(-n // block_size)
        size = -(-n // count)  # balanced blocks: at most count - 1 padded rows
        pad = count * size - n
        xp = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)) if pad else x
        return [jacobians(params, xp[i:i + size]) for i in range(0, xp.shape[0], size)]

    def blocked(params, x, block_size):
        got = parts(params, x, block_size)
        n = x.shape[0]
        if len(got) == 1:
            return tuple(leaf[:n] for leaf in got[0])
        return tuple(jnp.concatenate(leaves, axis=0)[:n] for leaves in zip(*got))

    def call(params, x1, x2=None):
        x1 = jnp.asarray(x1)
        same = x2 is None
        x2 = x1 if same else jnp.asarray(x2)
        out = jax.eval_shape(lambda p, x: apply_fn(p, x[None]), params, x1[0])
        k = out.shape[-1]
        n_params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
        row_bytes = k * n_params * jnp.dtype(out.dtype).itemsize
        n1, n2 = x1.shape[0], x2.shape[0]
        fits = (n1 + (0 if same else n2)) * row_bytes <= memory_bytes
        if block_size is None and fits:
            # Everything in one compiled program, as a plain vmap(jacrev) kernel would.
            return (fused_same(params, x1) if same else fused_pair(params, x1, x2)) / k
        block = block_size or int(max(1, min(max(n1, n2), memory_bytes // 4 // row_bytes)))
        if fits:
            j1 = parts(params, x1, block)
            j2 = j1 if same else parts(params, x2, block)
            full = jnp.block([[product(a, b, k) for b in j2] for a in j1])
            return full[:n1, :n2]
        panel = max(block, (memory_bytes // 2 // row_bytes) // block * block)
        rows = []
        for i in range(0, n1, panel):
            j1 = blocked(params, x1[i:i + panel], block)
            cols = [product(j1, blocked(params, x2[j:j + block], block), k) for j in range(0, n2, block)]
            rows.append(jnp.concatenate(cols, axis=1))
        return jnp.concatenate(rows, axis=0)

    return call


_cached_ntk_fn = functools.lru_cache(maxsize=16)(_build_ntk_fn)


@functools.lru_cache(maxsize=16)
def _model_output(graphdef) -> ApplyFn:
    """``f(params, x)`` of a model structure: one function object per structure, for the cache."""
    fm = FunctionalModel(graphdef, None)

    def output(params, x):
        return fm.output(params, x)

    return output


def empirical_ntk(apply_fn_or_model, params=None, x1=None, x2=None, block_size: int | None = None,
                  memory_bytes: int = 1 << 30):
    """``[n1, n2]`` empirical NTK (:func:`empirical_ntk_fn`).

    ``empirical_ntk(apply_fn, params, x1, x2)`` for a function, or
    ``empirical_ntk(model, x1, x2)`` (positionally or by name) for a Flax NNX
    model returning ``(f, features)`` (such as :class:`ntkdepth.models.MLP`),
    which carries its own parameters. Inputs are checked first: ``[n, ...]``
    with ``n >= 1``, and for an MLP ``[n, in_dim]`` (token ids ``[n]``).
    """
    if isinstance(apply_fn_or_model, FunctionalModel) or _is_nnx(apply_fn_or_model):
        if params is not None:  # empirical_ntk(model, x1[, x2]): the model has its parameters
            if x2 is not None:
                raise ValueError("empirical_ntk(model, x1, x2) takes at most two input sets; a model "
                                 "carries its own parameters (pass no params)")
            x1, x2 = params, x1
        if x1 is None:
            raise ValueError("empirical_ntk(model, x1, x2=None) needs the inputs x1")
        fm = _as_functional(apply_fn_or_model)
        net = fm.model()
        for x, name in ((x1, "x1"), (x2, "x2")):
            if x is not None:
                _check_model_inputs(net, x, name)
        return empirical_ntk_fn(_model_output(fm.graphdef), block_size, memory_bytes)(fm.params, x1, x2)
    if x1 is None:
        raise ValueError("empirical_ntk(apply_fn, params, x1, x2=None) needs the inputs x1")
    for x, name in ((x1, "x1"), (x2, "x2")):
        if x is not None:
            _check_batch(x, name)
    return empirical_ntk_fn(apply_fn_or_model, block_size, memory_bytes)(params, x1, x2)


def _check_batch(x, name):
    """Any network's inputs: a batch ``[n, ...]`` of ``n >= 1`` finite real inputs."""
    import numpy as np

    a = np.asarray(x)
    if a.ndim == 0 or a.shape[0] == 0 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty batch of inputs [n, ...]; got shape {a.shape}")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} is complex ({a.dtype}); pass real inputs")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or inf values")


def _check_model_inputs(net, x, name):
    """A model's inputs: :func:`_check_inputs` where the model states its input size."""
    if hasattr(net, "in_dim") and hasattr(net, "tokens"):
        _check_inputs(net, x, name)
    else:
        _check_batch(x, name)


def _is_nnx(obj) -> bool:
    from flax import nnx

    return isinstance(obj, nnx.Module)


def _as_functional(model) -> FunctionalModel:
    if isinstance(model, FunctionalModel):
        return model
    if _is_nnx(model):
        return functional(model)
    raise TypeError(f"expected a Flax NNX model or a FunctionalModel; got {type(model).__name__}")


def _layer_constants(model) -> list[tuple[float, float]]:
    return [
        (float(layer.multiplier), float(layer.bias_multiplier) if layer.bias is not None else 0.0)
        for layer in model.layers
    ]


def mlp_ntk(model, x1: jax.Array, x2: jax.Array | None = None, *, block_size: int = 256) -> jax.Array:
    """``[n1, n2]`` exact empirical NTK of an :class:`ntkdepth.models.MLP`, by layer structure.

    Inputs are processed ``block_size`` at a time; memory is
    ``O((n1 + n2) * width * depth)`` for the per-layer activations and
    backpropagated signals of one output at a time. The compiled kernel is
    cached per network structure, so the seeds of a sweep share it.
    """
    fm = _as_functional(model)
    net = fm.model()
    _check_inputs(net, x1, "x1")
    same = x2 is None
    if not same:
        _check_inputs(net, x2, "x2")
    gram = _mlp_gram_fn(
        fm.graphdef, tuple(_layer_constants(net)), (*net.hidden, net.out_dim), net.tokens,
        net.input_scale,
    )
    xa = x1
    xb = x1 if same else x2
    rows = []
    for i in range(0, xa.shape[0], block_size):
        cols = [gram(fm.params, xa[i : i + block_size], xb[j : j + block_size])
                for j in range(0, xb.shape[0], block_size)]
        rows.append(jnp.concatenate(cols, axis=1))
    return jnp.concatenate(rows, axis=0)


@functools.lru_cache(maxsize=8)
def _mlp_gram_fn(graphdef, consts, widths, tokens, input_scale) -> Callable:
    fm = FunctionalModel(graphdef, None)

    def signals(params, x):
        """Per layer: the layer's input a^{l-1} [b, n_{l-1}] and delta^l [k, b, n_l]."""
        b = x.shape[0]
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        zeros = [jnp.zeros((b, w), dtype) for w in widths]

        net = fm.model(params)

        # One forward pass gives the layer inputs and, through its VJP, the signals.
        out, vjp, inputs = jax.vjp(lambda eps: net.forward(x, eps), zeros, has_aux=True)
        k = out.shape[-1]
        eye = jnp.eye(k, dtype=out.dtype)
        deltas = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, out.shape))[0])(eye)
        return inputs, deltas

    def gram(params, xa, xb):
        ins_a, del_a = signals(params, xa)
        ins_b, del_b = signals(params, xb)
        k = del_a[0].shape[0]
        total = 0.0
        for l, (m, c) in enumerate(consts):
            dd = jnp.einsum("kin,kjn->ij", del_a[l], del_b[l], precision="highest")
            if l == 0 and tokens:
                aa = input_scale**2 * (ins_a[0][:, None] == ins_b[0][None, :]).astype(dd.dtype)
            else:
                aa = jnp.matmul(ins_a[l], ins_b[l].T, precision="highest")
            total = total + (m**2 * aa + c**2) * dd
        return total / k

    return jax.jit(gram)


def _check_inputs(net, x, name):
    import numpy as np

    x = np.asarray(x)
    if net.tokens:
        if not np.issubdtype(x.dtype, np.integer) or x.ndim != 1:
            raise ValueError(f"{name} must be integer token ids [n]; got {x.dtype} {x.shape}")
        if x.size == 0:
            raise ValueError(f"{name} is empty: pass at least one token id")
        if x.min() < 0 or x.max() >= net.in_dim:
            raise ValueError(f"{name} holds token ids outside [0, {net.in_dim})")
        return
    if x.ndim != 2 or x.shape[1] != net.in_dim:
        raise ValueError(f"{name} must have shape [n, {net.in_dim}] (the network's input size); "
                         f"got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): pass at least one input")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} is complex ({x.dtype}); pass real inputs")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or inf values")


def feature_kernel(model, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """``[n1, n2]`` = ``<a^{L-1}(x1), a^{L-1}(x2)> / n_{L-1}``, the last hidden layer's kernel.

    At NTK parameterization its infinite-width limit is
    ``E[phi(u) phi(v)]`` with ``(u, v) ~ N(0, Sigma^{L-1})``, i.e. ``Sigma^L / W_std^2``
    without bias (docs/kernels.md#the-recursion).
    """
    fm = _as_functional(model)
    a1 = fm.apply(fm.params, x1)[1]
    a2 = a1 if x2 is None else fm.apply(fm.params, x2)[1]
    return jnp.matmul(a1, a2.T, precision="highest") / a1.shape[-1]


def monte_carlo_ntk(
    init_fn: Callable,
    apply_fn: ApplyFn,
    key: jax.Array,
    x1: jax.Array,
    x2: jax.Array | None = None,
    n_samples: int = 8,
    block_size: int = 16,
) -> tuple[jax.Array, jax.Array]:
    """Mean and standard error of the empirical NTK over ``n_samples`` initializations.

    ``init_fn(key, input_shape) -> (output_shape, params)`` as in
    neural-tangents' ``stax``. Returns ``(mean, stderr)``, each ``[n1, n2]``.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to estimate an error; got {n_samples}")
    ntk = empirical_ntk_fn(apply_fn, block_size)
    samples = []
    for k in jax.random.split(key, n_samples):
        _, params = init_fn(k, (-1, x1.shape[-1]))
        samples.append(ntk(params, x1, x2))
    stacked = jnp.stack(samples)
    return stacked.mean(0), stacked.std(0, ddof=1) / jnp.sqrt(n_samples)
