"""What training a network holds in memory, and what a device has: the check before a sweep starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import jax

__all__ = ["MemoryEstimate", "WidthTooLargeError", "available_memory", "check_memory", "estimate_memory"]


class WidthTooLargeError(MemoryError, ValueError):
    """A network that will not fit in the device's memory."""


@dataclass(frozen=True)
class MemoryEstimate:
    n_params: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.n_params:,} parameters, about {self.bytes / 2**30:.2f} GiB"


def estimate_memory(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    batch_size: int,
    n_eval: int,
    momentum: bool = False,
    bytes_per_number: int = 4,
) -> MemoryEstimate:
    """What training one network holds at once: parameters, gradients, optimizer state, activations."""
    dims = [in_dim, *hidden, out_dim]
    n_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    # Parameters, their gradients and the updated copy; a momentum buffer.
    copies = 3 + int(momentum)
    rows = batch_size + 2 * n_eval
    activations = 3 * rows * sum(dims[1:])  # pre-activations, activations, their cotangents
    total = bytes_per_number * (copies * n_params + activations + n_eval * 2 * hidden[-1])
    return MemoryEstimate(n_params, int(total))


def available_memory(device: jax.Device | None = None) -> int:
    """Bytes the device can hold: the accelerator's limit, or the host's available memory."""
    device = device or jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # CPU devices do not report memory statistics everywhere.
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(estimate: MemoryEstimate, what: str, *, fraction: float = 0.8, available: int | None = None):
    """Raises :class:`WidthTooLargeError` if ``estimate`` exceeds ``fraction`` of the memory available."""
    available = available_memory() if available is None else available
    if estimate.bytes > fraction * available:
        raise WidthTooLargeError(
            f"{what} will not fit in memory: it needs {estimate}, and the device has "
            f"{available / 2**30:.2f} GiB available ({fraction:.0%} usable). Use a smaller width "
            "or batch, or a device with more memory."
        )
