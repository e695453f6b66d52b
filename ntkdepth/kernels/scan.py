"""The compiled layer loop's bookkeeping, shared by the kernel engines: which layers a run keeps and
where it writes them, how the loop runs on this backend, and scales passed as jit arguments
(docs/kernels.md#evaluating-kernels-fast).
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["jit_scalar", "layer_slots", "loop_length", "loop_options", "padded_layer_slots", "write_slot"]


def layer_slots(layers: np.ndarray, depth: int) -> np.ndarray:
    """``slot[l - 1]`` = position of layer l in the output, or ``m`` (a scratch slot)."""
    slot = np.full(depth, len(layers), dtype=np.int32)
    slot[layers - 1] = np.arange(len(layers), dtype=np.int32)
    return slot


def loop_length(depth: int) -> int:
    """The loop length for ``depth``: itself up to 16, else rounded up to ``m 2^k`` with ``8 <= m <= 16``.

    Eight lengths an octave: a process evaluating many depths compiles a few loops, not one a
    depth, for at most an eighth more (skipped) iterations (docs/kernels.md#the-layer-loop).
    """
    if depth <= 16:
        return depth
    k = depth.bit_length() - 4
    return -(-depth // 2**k) * 2**k


def padded_layer_slots(layers: np.ndarray, depth: int) -> np.ndarray:
    """:func:`layer_slots`, :func:`loop_length` long unless every layer ``1..depth`` is asked for.

    The layers past ``depth`` hold ``m + 1``: a loop that counts the entries up to ``m`` runs to
    the depth as a value, so one compiled loop serves every depth of a length.
    """
    every = np.array_equal(layers, np.arange(1, depth + 1))
    slot = np.full(depth if every else loop_length(depth), len(layers) + 1, dtype=np.int32)
    slot[:depth] = layer_slots(layers, depth)
    return slot


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
