"""The compiled layer loop's bookkeeping, shared by the kernel engines: which layers a run keeps and
where it writes them, how the loop runs on this backend, and scales passed as jit arguments
(docs/kernels.md#evaluating-kernels-fast).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["is_every_layer", "jit_scalar", "loop_length", "loop_options", "requested_layers", "run_length",
           "scan_layers", "slot_of", "write_slot"]


def requested_layers(layers: np.ndarray) -> np.ndarray:
    """``[2, m]`` int32: the requested layers in increasing order, and each one's place in the output.

    The loop finds a layer's place by :func:`slot_of` (a binary search over these ``m`` entries):
    nothing is kept per layer of the network, whatever its depth.
    """
    layers = np.asarray(layers)
    order = np.argsort(layers, kind="stable")
    return np.stack([layers[order], order]).astype(np.int32)


def slot_of(requested: jax.Array, layer: jax.Array) -> jax.Array:
    """The place in the output of ``layer`` (a traced int32), or ``m`` (a scratch slot) if it was not
    requested (``requested``: :func:`requested_layers`)."""
    ordered, place = requested[0], requested[1]
    m = ordered.shape[0]
    i = jnp.minimum(jnp.searchsorted(ordered, layer), m - 1)
    return jnp.where(ordered[i] == layer, place[i], m).astype(jnp.int32)


def is_every_layer(layers: np.ndarray) -> bool:
    """Whether ``layers`` is ``1..depth`` in order (no array of the depth's length is made to tell)."""
    layers = np.asarray(layers)
    n = layers.size
    return bool(n and layers[-1] == n and np.array_equal(layers, np.arange(1, n + 1)))


def loop_length(depth: int) -> int:
    """The loop length for ``depth``: itself up to 16, else rounded up to ``m 2^k`` with ``8 <= m <= 16``.

    Eight lengths an octave: a process evaluating many depths compiles a few loops, not one a
    depth, for at most an eighth more (skipped) iterations (docs/kernels.md#the-layer-loop).
    """
    if depth <= 16:
        return depth
    k = depth.bit_length() - 4
    return -(-depth // 2**k) * 2**k


def run_length(layers: np.ndarray) -> int:
    """The compiled loop's length for the requested ``layers``: the depth when every layer ``1..depth`` is
    returned (the depth is then the output's shape), else :func:`loop_length` of the deepest."""
    deepest = int(np.max(layers))
    return deepest if is_every_layer(layers) else loop_length(deepest)


def scan_layers(body, carry, first: int, count: int, unroll: int):
    """``lax.scan`` of ``body(carry, layer) -> (carry, out)`` for ``layer = first, ..., first + count - 1``.

    The layer's number is an int32 carried along, not a scanned array: no array of the loop's length
    is made (at depth 2^31 - 1 it would take 8 GiB). Returns the final carry and the stacked outputs.
    """

    def counted(state, _):
        inner, layer = state
        inner, out = body(inner, layer)
        return (inner, layer + 1), out

    (carry, _), outs = jax.lax.scan(counted, (carry, jnp.asarray(first, jnp.int32)), None, length=count,
                                    unroll=unroll)
    return carry, outs


def write_slot(buffers: dict, values_fn, s, n_out: int, on_cpu: bool) -> dict:
    """Stores ``values_fn()`` at slot ``s`` (slot ``n_out`` is scratch, for unrequested layers).

    On a CPU a ``lax.cond`` skips unrequested layers' values and writes. On an accelerator a
    conditional costs a host round trip per layer, far more than an unconditional write to the
    scratch slot.
    """

    def store(bufs):
        values = values_fn()
        return {k: jax.lax.dynamic_update_index_in_dim(b, values[k], s, 0) for k, b in bufs.items()}

    if not on_cpu:
        return store(buffers)
    return jax.lax.cond(s < n_out, store, lambda bufs: bufs, buffers)


def loop_options() -> tuple[int, bool]:
    """``(unroll, on_cpu)``: layers per iteration of the compiled loop, and the backend.

    On a GPU or TPU each iteration of a while loop costs kernel launches and a host round trip,
    which would dominate a layer's elementwise work: unroll 8 layers. On a CPU unrolling only makes
    the loop body larger (measured slower).
    """
    on_cpu = jax.default_backend() == "cpu"
    return (1 if on_cpu else 8), on_cpu


def jit_scalar(value, dtype):
    """A scale as a jit argument: a NumPy scalar when concrete (no dispatch), else as given."""
    if isinstance(value, jax.Array):
        return value.astype(dtype) if value.dtype != dtype else value
    return np.asarray(value, dtype)
