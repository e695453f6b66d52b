"""Kernels larger than memory: tile by tile, onto disk, over a device mesh and many hosts.

:func:`tiled_kernel` computes one field of the kernels of a network with any
activation (``"ntk"``, ``"nngp"``, ... as :func:`ntkdepth.kernels.kernel_trace`
offers them) for an ``[n1, n2]`` pair of input sets in square tiles of ``block_size x
block_size`` entries. Every entry depends only on its own pair of inputs, so a
tile is the in-memory kernel of a row block against a column block, and tiles
are independent:

- **Beyond memory.** The result goes into a host array or a ``.npy`` file
  written tile by tile through short-lived memory maps, so the process holds
  one tile (and the inputs) at a time, never the whole kernel.
- **Resume.** With a ``.npy`` output, a small JSON record beside it
  (``<file>.tiles.json``) lists the finished tiles. A tile is recorded only
  after its data is flushed to the file, and the record is replaced
  atomically, so a run killed at any point resumes from the tiles already
  written. The record is keyed by every setting that shapes the kernel (a hash
  of the inputs, activation, depth, layers, ``W_std``, ``b_std``, field, dtype,
  tile size): a resume with anything else is refused.
- **Symmetry.** With ``x2=None`` only the tiles on and above the diagonal are
  computed; each off-diagonal tile is also written transposed.
- **A device mesh.** With ``mesh=`` the rows of each tile are split over all
  devices of a :class:`jax.sharding.Mesh` (``NamedSharding`` over every mesh
  axis, computed under ``jax.shard_map``): one GPU, eight GPUs, or the devices
  of several processes after ``jax.distributed.initialize()``. Each process
  writes the rows of its own devices into the one shared ``.npy``; process 0
  creates the file and keeps the record, and the processes meet at
  ``multihost_utils.sync_global_devices`` after every tile.
"""

from __future__ import annotations

import errno
import json
import math
import os
import warnings
import zlib
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ntkdepth.kernels.activations import Custom, activation as as_activation
from ntkdepth.kernels.trace import kernel_trace
from ntkdepth.kernels.validation import (
    KERNEL_FIELDS,
    check_depth_and_layers,
    check_host_inputs,
    check_hyperparameters,
    check_kernel_fields,
    precision,
    resolve_dtype,
    warn_float32_depth,
)
from ntkdepth.storage import DiskFullError, array_digest, write_text

__all__ = ["tiled_kernel", "RECORD_SUFFIX"]

RECORD_SUFFIX = ".tiles.json"
_FORMAT = "ntkdepth.tiled_kernel/3"  # /2: a checksum per finished tile; /3: the activation, inputs by array_digest


# --------------------------------------------------------------------------
# Inputs and settings.


def _field(get) -> str:
    fields = check_kernel_fields(get)
    if len(fields) != 1:
        raise ValueError(
            f"get={get!r}: a tiled kernel holds one field; call once per field "
            f"(one of {KERNEL_FIELDS})"
        )
    return fields[0]


def _tile_digest(data: np.ndarray) -> str:
    """The checksum of a tile's ``[m, rows, cols]`` values (CRC-32 of its C-order bytes)."""
    return f"{zlib.crc32(memoryview(np.ascontiguousarray(data)).cast('B')):08x}"


# --------------------------------------------------------------------------
# The output: a host array, or a .npy file written through short-lived maps.


class _ArraySink:
    """Writes tiles into an in-memory ``[m, n1, n2]`` view of the output."""

    def __init__(self, array: np.ndarray, m: int):
        self.result = array
        self.view = array.reshape((m,) + array.shape[-2:])

    def write(self, r0: int, c0: int, data: np.ndarray) -> None:
        self.view[:, r0:r0 + data.shape[1], c0:c0 + data.shape[2]] = data

    def flush(self) -> None:
        pass


class _FileSink:
    """Writes tiles into a ``.npy`` file, one memory map per layer and row band.

    Each map is flushed (``msync``) and closed right after the write, so the
    written pages leave this process's memory: its resident size stays near one
    tile however large the file.
    """

    def __init__(self, path: str, offset: int, dtype: np.dtype, m: int, n1: int, n2: int):
        self.path, self.offset, self.dtype = path, offset, dtype
        self.m, self.n1, self.n2 = m, n1, n2

    def _band(self, k: int, r0: int, rows: int, mode: str) -> np.memmap:
        start = self.offset + (k * self.n1 + r0) * self.n2 * self.dtype.itemsize
        return np.memmap(self.path, dtype=self.dtype, mode=mode, offset=start, shape=(rows, self.n2))

    def write(self, r0: int, c0: int, data: np.ndarray) -> None:
        for k in range(self.m):
            band = self._band(k, r0, data.shape[1], "r+")
            band[:, c0:c0 + data.shape[2]] = data[k]
            band.flush()
            del band

    def read(self, r0: int, c0: int, rows: int, cols: int) -> np.ndarray:
        """``[m, rows, cols]`` values from the file."""
        out = np.empty((self.m, rows, cols), self.dtype)
        for k in range(self.m):
            band = self._band(k, r0, rows, "r")
            out[k] = band[:, c0:c0 + cols]
            del band
        return out

    def flush(self) -> None:
        pass


def _npy_layout(path: str) -> tuple[tuple, np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data_offset)`` of a ``.npy`` file's header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            shape, fortran, dtype = np.lib.format._read_array_header(f, version)
        return shape, np.dtype(dtype), fortran, f.tell()


def _remedy(path: str, record: str) -> str:
    return f"delete {path} and {record} (or choose another output path) to start over"


_FORMATS = ("ntkdepth.tiled_kernel/1", "ntkdepth.tiled_kernel/2", _FORMAT)  # /1 records carry no checksums


def _read_record(record: str, path: str, grid: set | None = None) -> dict:
    """The record, ``done`` as ``{(i0, j0): checksum or None}``; refused if any tile is off ``grid``."""
    try:
        with open(record) as f:
            rec = json.load(f)
        if rec.get("format") not in _FORMATS or not isinstance(rec.get("settings"), dict):
            raise ValueError(f"not a {_FORMAT} record")
        done = {}
        for t in rec["done"]:
            if len(t) not in (2, 3) or (len(t) == 3) != (rec["format"] != _FORMATS[0]):
                raise ValueError("malformed tile list")
            done[(int(t[0]), int(t[1]))] = str(t[2]) if len(t) == 3 and t[2] is not None else None
        rec["done"] = done
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"the tile record {record} is unreadable or corrupt ({e}); the tiles of {path} "
            f"cannot be trusted: {_remedy(path, record)}"
        ) from None
    if grid is not None:
        off = sorted(set(done) - grid)
        if off:
            raise ValueError(
                f"the tile record {record} names tile {off[0]} (row, column of its first entry), "
                f"which is not a tile of this kernel's grid ({len(off)} such tiles): the record "
                f"does not describe {path}; {_remedy(path, record)}"
            )
    return rec


def _disk_error(err: OSError, path: str, needed: int) -> OSError:
    """An error naming ``path``: :class:`~ntkdepth.storage.DiskFullError` (the bytes it needs and
    those free) for a full disk or quota, else one saying the folder is not writable."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(path, needed, "free some space or choose another folder (finished tiles are kept)")
    return OSError(err.errno, f"cannot write {path} ({err.strerror}); choose a folder you can "
                              f"write to")


def _write_record(record: str, settings: dict, done: dict, complete: bool) -> None:
    """Replaces the record whole, its bytes on the disk before the rename (:func:`ntkdepth.storage.write_text`)."""
    text = json.dumps({"format": _FORMAT, "settings": settings, "complete": complete,
                       "done": [[i, j, done[(i, j)]] for i, j in sorted(done)]})
    try:
        write_text(record, text, sync=True)
    except OSError as e:
        raise _disk_error(e, record, len(text)) from None


def _create_file(path: str, shape: tuple, dtype: np.dtype) -> None:
    """Creates the ``.npy`` file with every block allocated, so that a full disk is an error here.

    A sparse file would fail later, when a memory-mapped write finds no block:
    the process would die of SIGBUS.
    """
    size = 0
    try:
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
        size = os.path.getsize(path)
        _allocate(path, size)
    except OSError as e:
        needed = size or math.prod(shape) * dtype.itemsize
        if os.path.exists(path):
            os.remove(path)
        raise _disk_error(e, path, needed) from None


def _allocate(path: str, size: int) -> None:
    """Reserves every block of ``path`` (a no-op where they already are)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def _check_existing(path: str, record: str, settings: dict, shape: tuple, dtype: np.dtype,
                    grid: set):
    """Validates what is on disk; returns the finished tiles ``{(i0, j0): checksum}`` (empty: create anew)."""
    has_file, has_record = os.path.exists(path), os.path.exists(record)
    if has_file and not has_record:
        raise ValueError(
            f"{path} exists but has no tile record {record}: it is not a resumable tiled "
            f"kernel, and it will not be overwritten; delete it or choose another output path"
        )
    if not has_record:
        return {}
    rec = _read_record(record, path)
    if rec["format"] != _FORMAT:
        raise ValueError(
            f"{path} was written by an earlier tiled_kernel ({rec['format']}), whose record keys "
            f"the inputs differently: it cannot be resumed; {_remedy(path, record)}"
        )
    if rec["settings"] != settings:
        diff = sorted(k for k in set(settings) | set(rec["settings"])
                      if settings.get(k) != rec["settings"].get(k))
        shown = ", ".join(f"{k}: {rec['settings'].get(k)!r} on disk, {settings.get(k)!r} now"
                          for k in diff if k != "inputs_sha256")
        if "inputs_sha256" in diff:
            shown = "the inputs differ" + (f"; {shown}" if shown else "")
        raise ValueError(
            f"{path} holds a kernel computed with other settings ({shown}); resume with the "
            f"same inputs and settings, or {_remedy(path, record)}"
        )
    rec = _read_record(record, path, grid)
    if not has_file or not rec["done"]:
        return {}  # nothing written yet: the file is (re)created
    try:
        fshape, fdtype, fortran, offset = _npy_layout(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable .npy file ({e}): {_remedy(path, record)}") from None
    if tuple(fshape) != tuple(shape) or fdtype != dtype or fortran:
        raise ValueError(
            f"{path} holds a {fdtype} array of shape {tuple(fshape)}"
            f"{' (Fortran order)' if fortran else ''}, not the {dtype} {tuple(shape)} its "
            f"record {record} describes: {_remedy(path, record)}"
        )
    expected = offset + math.prod(shape) * dtype.itemsize
    size = os.path.getsize(path)
    if size != expected:
        raise ValueError(
            f"{path} is truncated or damaged: {size} bytes where its header implies "
            f"{expected}: {_remedy(path, record)}"
        )
    return rec["done"]


def _stored_digest(sink: _FileSink, i0: int, j0: int, block: int, symmetric: bool):
    """The checksum of tile ``(i0, j0)`` as the file holds it, or ``None`` if its mirror differs."""
    rows, cols = min(block, sink.n1 - i0), min(block, sink.n2 - j0)
    data = sink.read(i0, j0, rows, cols)
    digest = _tile_digest(data)
    if symmetric and i0 != j0:
        mirror = np.swapaxes(sink.read(j0, i0, cols, rows), 1, 2)
        if _tile_digest(mirror) != digest:
            return None
    return digest


def _verify(sink: _FileSink, done: dict, block: int, symmetric: bool, path: str,
            record: str) -> dict:
    """Checks every finished tile against its checksum; ``done`` with the missing ones filled in."""
    damaged = []
    out = {}
    for (i0, j0), digest in sorted(done.items()):
        got = _stored_digest(sink, i0, j0, block, symmetric)
        if got is None or digest is not None and got != digest:
            damaged.append((i0, j0))
        out[(i0, j0)] = got
    if damaged:
        raise ValueError(
            f"{path} is damaged: {len(damaged)} finished tile(s) no longer match the checksum in "
            f"{record} (first at row {damaged[0][0]}, column {damaged[0][1]}); "
            f"{_remedy(path, record)}"
        )
    return out


# --------------------------------------------------------------------------
# Computing one tile.


def _tile_fn(spec: dict, act):
    """``(a [r, n0], b [c, n0]) -> [m, r, c]``: one field at the requested layers."""

    def fn(a, b):
        with warnings.catch_warnings():
            # tiled_kernel warns once about a deep float32 kernel, not once per tile.
            warnings.filterwarnings("ignore", message=".*float32 at depth", category=UserWarning)
            tr = kernel_trace(a, b, depth=spec["depth"], activation=act, W_std=spec["W_std"],
                              b_std=spec["b_std"], layers=spec["layers"], get=(spec["field"],),
                              dtype=spec["dtype"])
        return getattr(tr, spec["field"])

    return fn


def _shard_map(f, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                             check_vma=False)
    from jax.experimental.shard_map import shard_map  # older jax

    return shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


class _MeshTiles:
    """Tiles whose rows are split over all devices of ``mesh``.

    The row block ``[b, n0]`` is a global array sharded over every mesh axis
    (``NamedSharding(mesh, P(axes))``), the column block is replicated, and
    ``shard_map`` runs the kernel on each device's rows. Only the shards of
    this process's devices are read back.
    """

    def __init__(self, spec: dict, act, mesh: Mesh, block: int, dtype):
        self.mesh, self.dtype = mesh, dtype
        axes = tuple(mesh.axis_names)
        self.rows = NamedSharding(mesh, P(axes, None))
        self.cols = NamedSharding(mesh, P(None, None))
        self.fn = jax.jit(_shard_map(_tile_fn(spec, act), mesh, (P(axes, None), P(None, None)),
                                     P(None, axes, None)))

    def __call__(self, a: np.ndarray, b: np.ndarray | None):
        b = a if b is None else b
        ga = jax.make_array_from_callback(a.shape, self.rows, lambda idx: a[idx])
        gb = jax.make_array_from_callback(b.shape, self.cols, lambda idx: b[idx])
        out = self.fn(ga, gb)
        pieces = []
        for shard in out.addressable_shards:
            rows = shard.index[1]
            pieces.append((rows.start or 0, np.asarray(shard.data)))
        return pieces


class _LocalTiles:
    """Tiles computed by the kernel functions on the default device."""

    def __init__(self, spec: dict, act):
        self.fn = _tile_fn(spec, act)

    def __call__(self, a: np.ndarray, b: np.ndarray | None):
        return [(0, np.asarray(self.fn(a, b)))]


def _block(x: np.ndarray, start: int, size: int, dtype) -> np.ndarray:
    """Rows ``start .. start + size`` of ``x``, padded by repeating the last row."""
    blk = np.asarray(x[start:start + size], dtype=dtype)
    if blk.shape[0] < size:
        blk = np.pad(blk, ((0, size - blk.shape[0]), (0, 0)), mode="edge")
    return blk


def _compute_tile(tiles, x1, x2, i0, j0, block, dtype):
    """The pieces ``(row offset in tile, [m, rows, block])`` of tile ``(i0, j0)`` held here.

    A diagonal tile of a symmetric kernel is the kernel of one block with itself.
    """
    a = _block(x1, i0, block, dtype)
    return tiles(a, None if x2 is x1 and i0 == j0 else _block(x2, j0, block, dtype))


# --------------------------------------------------------------------------
# The public function.


def tiled_kernel(
    x1,
    x2=None,
    *,
    depth: int,
    activation="relu",
    W_std: float = math.sqrt(2.0),
    b_std: float = 0.0,
    layers: Sequence[int] | None = None,
    get: str | Sequence[str] = "ntk",
    block_size: int = 4096,
    out: str | os.PathLike | np.ndarray | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    dtype=None,
    verify: bool | None = None,
) -> np.ndarray:
    """One kernel field of a network, ``[n1, n2]`` (or ``[len(layers), n1, n2]``), tile by tile.

    Entry ``(i, j)`` equals the same entry of
    ``kernel_trace(x1, x2, depth=depth, activation=..., layers=..., get=(get,))``; the
    kernel is computed in ``block_size x block_size`` tiles, each a call of
    that function on a row block of ``x1`` and a column block of ``x2`` (the
    last blocks padded by repeating their last input, and cut back). Memory:
    the inputs, the output if it is an array, and one tile with its working
    arrays (on each device, ``block_size / mesh.size`` of its rows).

    Args:
      x1: ``[n1, n0]`` inputs, a host (NumPy) array or anything ``np.asarray``
        accepts; every process passes the same inputs.
      x2: ``[n2, n0]`` inputs, or ``None`` for ``x1``: the kernel is then
        symmetric and only the tiles on and above the diagonal are computed.
      depth, activation, W_std, b_std: as for :func:`ntkdepth.kernels.kernel_trace` (ReLU by
        default: then as :func:`ntkdepth.kernels.relu_kernel_trace`). A custom activation (a
        function) cannot be keyed in a file's record: with it, ``out`` is not a path.
      layers: ``None`` for the depth-``depth`` kernel alone (``[n1, n2]``), or
        depths in ``1..depth`` (``[len(layers), n1, n2]``).
      get: one field of :data:`ntkdepth.kernels.KERNEL_FIELDS`.
      block_size: the tile edge (at most the larger of ``n1``, ``n2``, rounded
        up to a multiple of the mesh's size); with a mesh, a multiple of
        ``mesh.size``.
      out: ``None`` (a new host array), a preallocated NumPy array of the
        result's shape and dtype (filled in place), or the path of a ``.npy``
        file: written tile by tile, resumable, returned as a read-only memory
        map. An existing file is resumed only when its record
        ``<path>.tiles.json`` matches every setting; a file whose record says
        it is complete is returned without computing anything.
      mesh: a :class:`jax.sharding.Mesh` whose devices share every tile's rows
        (all of its axes are used). ``None``: the default device, or, after
        ``jax.distributed.initialize()`` with several processes, a mesh of all
        devices of all processes.
      progress: show a tqdm bar of tiles (process 0 only).
      dtype: ``"float32"`` or ``"float64"``, as for
        :func:`ntkdepth.kernels.kernel_trace` (default: the inputs'
        dtype, NumPy's for NumPy arrays; half precision is computed in
        float32); the kernel is computed and stored in it.
      verify: check finished tiles of an existing ``.npy`` against the
        checksums in its record. ``None`` (default): when resuming an
        unfinished file; ``True``: also for a complete file (reading it
        whole); ``False``: never.

    Returns:
      The kernel in ``dtype``: ``out`` itself, a new array, or a read-only
      ``np.memmap`` of the ``.npy`` file.

    Raises:
      ValueError: bad inputs or settings (as the kernel functions), an output
        array of the wrong shape or dtype or read-only, a ``mesh`` that is not
        a :class:`jax.sharding.Mesh`, a ``block_size`` that does not split over
        the mesh, or an output file that cannot be resumed: written with other
        settings, a corrupt record or one naming a tile off the grid, a
        truncated file, a finished tile whose checksum does not match, or a
        file without a record. The message names the file and the remedy.
      OSError: the output's folder is missing or not writable, or its disk is
        full (the message names the path, the bytes needed and free; the
        ``.npy`` is allocated whole before the first tile, so a full disk
        stops the call there, and finished tiles are kept).
    """
    field = _field(get)
    act = as_activation(activation)
    symmetric = x2 is None
    dtype = np.dtype(resolve_dtype(dtype, x1, x2))
    check_hyperparameters(W_std, b_std, dtype=dtype)
    x1, x2 = check_host_inputs(x1, x2, b_std=b_std)
    layer_array = check_depth_and_layers(depth, [depth] if layers is None else layers)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1; got {block_size!r}")
    if mesh is not None and not isinstance(mesh, Mesh):
        raise ValueError(
            f"mesh must be a jax.sharding.Mesh or None; got {mesh!r}: for all local devices "
            f"pass jax.sharding.Mesh(np.array(jax.devices()), ('d',))"
        )
    if verify not in (None, True, False):
        raise ValueError(f"verify must be None, True or False; got {verify!r}")
    if mesh is None and jax.process_count() > 1:
        mesh = Mesh(np.asarray(jax.devices()), ("devices",))
    # No tile larger than the kernel needs (a multiple of the mesh's size).
    unit = 1 if mesh is None else mesh.size
    block = min(int(block_size), -(-max(x1.shape[0], x2.shape[0]) // unit) * unit)
    if mesh is not None and block % mesh.size:
        raise ValueError(
            f"block_size={block} does not split over the mesh's {mesh.size} devices; "
            f"use a multiple of {mesh.size} (e.g. {mesh.size * max(1, block // mesh.size)})"
        )

    n1, n2, m = x1.shape[0], x2.shape[0], len(layer_array)
    shape = (n1, n2) if layers is None else (m, n1, n2)
    spec = dict(activation=act.label, depth=int(depth), W_std=float(W_std), b_std=float(b_std),
                layers=[int(v) for v in layer_array], field=field, dtype=dtype.name)
    tiles = [(i, j) for i in range(0, n1, block) for j in range(0, n2, block)
             if not symmetric or j >= i]
    multi = jax.process_count() > 1
    lead = jax.process_index() == 0

    path = None
    if multi and (out is None or isinstance(out, np.ndarray)):
        raise ValueError(
            "with several processes each one computes only its devices' rows: pass "
            "out='/shared/path/kernel.npy' on a filesystem all processes see"
        )
    if out is None:
        sink = _ArraySink(np.empty(shape, dtype), m)
    elif isinstance(out, np.ndarray):
        if out.shape != shape or out.dtype != dtype:
            raise ValueError(f"out is a {out.dtype} array of shape {out.shape}; the kernel is "
                             f"{dtype} {shape} (np.empty({shape}, np.{dtype.name}))")
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous (e.g. np.empty(shape, dtype))")
        if not out.flags.writeable:
            raise ValueError("out is a read-only array; pass a writeable one (e.g. "
                             "np.empty(shape, dtype)), or a .npy path")
        sink = _ArraySink(out, m)
    else:
        path = os.fspath(out)
        if not path.endswith(".npy"):
            raise ValueError(f"out={path!r}: the output file must end in .npy")
        if isinstance(act, Custom):
            raise ValueError(
                f"out={path!r}: a custom activation ({act.label}) cannot be keyed in the file's "
                f"record, so its tiles could not be resumed safely; pass out=None or an array, "
                f"or a named activation (ntkdepth.kernels.ACTIVATION_NAMES)"
            )
        _check_folder(path)
    warn_float32_depth(dtype, int(layer_array.max()), "tiled_kernel")
    done: dict = {}
    if path is not None:
        record = path + RECORD_SUFFIX
        settings = dict(
            spec, inputs_sha256=[array_digest(x1.astype(dtype, copy=False), length=None),
                                 "x2 = x1" if symmetric else array_digest(x2.astype(dtype, copy=False),
                                                                          length=None)],
            dtype=dtype.str, block_size=block, shape=list(shape), x1_shape=list(x1.shape),
            x2_shape=list(x2.shape),
        )
        if multi:
            from jax.experimental import multihost_utils

            digest = np.frombuffer(bytes.fromhex(settings["inputs_sha256"][0]), np.uint8)
            multihost_utils.assert_equal(digest, "tiled_kernel: the processes' inputs differ")
        # Every process validates what is on disk (the same shared files), so a
        # refusal is raised everywhere; process 0 then creates what is missing.
        done = _check_existing(path, record, settings, shape, dtype, set(tiles))
        if lead and not done:
            _write_record(record, settings, {}, False)
            try:
                _create_file(path, shape, dtype)
            except OSError:
                os.remove(record)  # nothing was finished: leave nothing behind
                raise
        elif lead:
            try:
                _allocate(path, os.path.getsize(path))
            except OSError as e:
                raise _disk_error(e, path, os.path.getsize(path)) from None
        if multi:
            multihost_utils.sync_global_devices("ntkdepth.tiled_kernel: file ready")
            done = _read_record(record, path, set(tiles))["done"]
        _, _, _, offset = _npy_layout(path)
        sink = _FileSink(path, offset, dtype, m, n1, n2)
        complete = len(done) == len(tiles)
        if done and (verify or verify is None and not complete):
            done = _verify(sink, done, block, symmetric, path, record)

    todo = [t for t in tiles if t not in done]
    from tqdm.auto import tqdm  # only here: ntkdepth.kernels imports with jax and numpy alone

    bar = tqdm(total=len(tiles), initial=len(tiles) - len(todo), unit="tile",
               desc=f"{field} tiles of {block}", disable=not progress or not lead)
    with bar, precision(dtype):
        compute = _LocalTiles(spec, act) if mesh is None else _MeshTiles(spec, act, mesh, block, dtype)
        for i0, j0 in todo:
            for r, data in _compute_tile(compute, x1, x2, i0, j0, block, dtype):
                rows = min(data.shape[1], n1 - i0 - r)
                if rows <= 0:
                    continue
                data = data[:, :rows, : n2 - j0]
                sink.write(i0 + r, j0, data)
                if symmetric and i0 != j0:
                    sink.write(j0, i0 + r, np.swapaxes(data, 1, 2))
            sink.flush()
            if path is not None:
                if multi:
                    multihost_utils.sync_global_devices(f"ntkdepth.tiled_kernel: {i0} {j0}")
                if lead:
                    done[(i0, j0)] = _stored_digest(sink, i0, j0, block, symmetric)
                    _write_record(record, settings, done, len(done) == len(tiles))
                else:
                    done[(i0, j0)] = None
            bar.update(1)
    if path is None:
        return sink.result
    if lead and (todo == [] and not _read_record(record, path)["complete"]
                 or any(v is None for v in done.values())):
        _write_record(record, settings, done, len(done) == len(tiles))
    return np.load(path, mmap_mode="r")


def _check_folder(path: str) -> None:
    """The folder of an output file must exist and be writable (the message names ``path``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(
            errno.ENOTDIR, f"out={path!r}: {folder} is a file, not a folder; choose another path"
        )
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"out={path!r}: the folder {folder} does not exist; create it first or "
                          f"choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, f"out={path!r}: the folder {folder} is not writable; choose a folder "
                          f"you can write to"
        )
