"""One run over several processes (hosts): starting ``jax.distributed``, which process writes, agreeing.

A run over several processes is the same command started on every host with
``ntkdepth run ... --distributed``; the processes share the output folder, and
process 0 writes it.
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["barrier", "initialize_distributed", "is_writer", "same_on_every_process"]


def is_writer() -> bool:
    """Whether this process writes files: process 0 (the only one without ``jax.distributed``)."""
    return jax.process_index() == 0


def initialize_distributed() -> None:
    """``jax.distributed.initialize()`` for a run over several processes (hosts).

    JAX reads the coordinator's ``host:port`` from ``JAX_COORDINATOR_ADDRESS``
    and detects SLURM, Open MPI and Kubernetes jobs by itself; elsewhere
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` give the number of processes
    and this one's index, passed on here.
    """
    kwargs = {}
    for name, key in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if os.environ.get(key):
            try:
                kwargs[name] = int(os.environ[key])
            except ValueError:
                raise ValueError(f"{key} must be an integer; got {os.environ[key]!r}") from None
    jax.distributed.initialize(**kwargs)


def same_on_every_process(value):
    """Process 0's ``value`` (a string or a NumPy array) on every process; ``value`` itself in one.

    A sweep decides from the files of the shared output folder what is left to
    train; every process must decide alike, so they all take process 0's view.
    """
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    if isinstance(value, str):
        raw = np.frombuffer(value.encode(), np.uint8)
        n = int(multihost_utils.broadcast_one_to_all(np.int32(len(raw))))
        buf = np.zeros(n, np.uint8)
        buf[: min(n, len(raw))] = raw[:n]
        return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).decode()
    return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(value)))


def barrier(name: str) -> None:
    """Waits until every process gets here (nothing to wait for in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
