"""Files that hold results: settings hashes, files written whole or not at all, and reads that name a
damaged file and say what to do.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ntkdepth.config import shorten

__all__ = [
    "DamagedFileError",
    "DiskFullError",
    "array_digest",
    "atomic_write",
    "jsonable",
    "load_npz",
    "notify_write",
    "read_json",
    "save_npz",
    "settings_hash",
    "write_hooks",
    "write_json",
    "write_text",
]

#: Callables given the path of each file written (:func:`notify_write`): the points where a process
#: killed must leave its folder recoverable. The fault-injection tests kill or fail there.
write_hooks: list[Callable[[Path], None]] = []


class DamagedFileError(FileNotFoundError):
    """A stored file that exists but cannot be read: reported like a missing one, with the remedy."""

    def __init__(self, path: Path | str, detail: str, remedy: str = "delete it and run again"):
        self.path = Path(path)
        super().__init__(f"{self.path} is damaged or incomplete ({detail}); {remedy}")


class DiskFullError(OSError):
    """A write that found no space left on its device (``errno.ENOSPC``), naming the file, the bytes
    it needed (``needed``, None where unknown), those free and, where given, what to do (``remedy``)."""

    def __init__(self, path: Path | str, needed: int | None = None, remedy: str | None = None):
        self.path = Path(path)
        self.needed = needed
        folder = next((p for p in [self.path, *self.path.parents] if p.is_dir()), Path("."))
        self.free = shutil.disk_usage(folder).free
        need = f"it needs {needed:,} bytes, " if needed else ""
        super().__init__(errno.ENOSPC, f"no space left on the device writing {shorten(str(self.path), 200)}: {need}"
                                       f"{self.free:,} bytes are free there" + (f"; {remedy}" if remedy else ""))


def jsonable(obj):
    """``obj`` with NumPy values as plain Python; inf and NaN as the strings "inf", "-inf", "nan"."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if hasattr(obj, "__array__"):
        return jsonable(np.asarray(obj))
    if isinstance(obj, (float, np.floating)):
        # JSON has no inf or NaN.
        return float(obj) if np.isfinite(obj) else str(float(obj))
    return obj


def settings_hash(settings: Any, length: int = 16) -> str:
    """A hex digest of ``settings`` (anything :func:`jsonable` takes), independent of key order."""
    text = json.dumps(jsonable(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def array_digest(*arrays, length: int | None = 16) -> str:
    """A SHA-256 hex digest of the dtypes, shapes and bytes of ``arrays``: its first ``length``
    characters (all 64 for ``None``)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data if a.size else b"")
    return h.hexdigest()[:length]


def notify_write(path: Path) -> None:
    """Calls every one of :data:`write_hooks` with ``path``: a file or folder was just put in place."""
    for hook in list(write_hooks):
        hook(path)


def atomic_write(path: Path | str, write: Callable[[Path], None], size: int | None = None, *,
                 sync: bool = False) -> Path:
    """Calls ``write(tmp)`` on a temporary path beside ``path``, then renames it to ``path``.

    A full disk raises :class:`DiskFullError` (``size``: the bytes the file needs,
    where known); ``path`` keeps what it held. With ``sync`` the file's bytes reach
    the disk before the rename (``fsync``), so that a machine that loses power keeps
    the old file or the new one, never an empty one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        if sync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno != errno.ENOSPC or isinstance(err, DiskFullError):
            raise
        raise DiskFullError(path, size) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    notify_write(path)
    return path


def write_text(path: Path | str, text: str, *, sync: bool = False) -> Path:
    """Writes ``text`` to ``path`` whole or not at all (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text), len(text.encode()), sync=sync)


def write_json(path: Path | str, value: Any, *, indent: int | None = 2, sort_keys: bool = False,
               sync: bool = False) -> Path:
    """Writes ``value`` (anything :func:`jsonable` takes) as JSON to ``path``, whole or not at all."""
    return write_text(path, json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys) + "\n", sync=sync)


def save_npz(path: Path | str, arrays: dict[str, Any]) -> Path:
    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    size = sum(np.asarray(a).nbytes for a in arrays.values())  # the data, without the zip's headers
    return atomic_write(path, write, size)


def load_npz(path: Path | str, remedy: str = "delete it and run again") -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file ``path``; :class:`DamagedFileError` if it cannot be read."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise DamagedFileError(path, f"{type(err).__name__}: {err}", remedy) from None


def read_json(path: Path | str, remedy: str = "delete it and run again"):
    """The JSON value in ``path``; :class:`DamagedFileError` if it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DamagedFileError(path, f"not valid JSON: {err}", remedy) from None
