"""Where datasets live (the user data directory, and ``../shared/data`` read as a fallback) and
downloads that never leave a partial file behind (docs/experiments.md#data).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DATA_ENV",
    "DataError",
    "data_roots",
    "download",
    "file_record",
    "md5sum",
    "new_dirs_removed_on_error",
    "shared_data_dir",
    "user_data_dir",
]

DATA_ENV = "NTKDEPTH_DATA"


class DataError(ValueError):
    """Data that cannot serve a run: a file in another format, damaged or cut short, or holding
    too little for the settings. The message names the file and what to do."""


def user_data_dir() -> Path:
    """The folder datasets are fetched into: ``$NTKDEPTH_DATA``, else the per-user cache."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ntkdepth" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ntkdepth"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "ntkdepth"


def shared_data_dir() -> Path:
    """``shared/data`` beside the checkout holding this package (read-only fallback)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_roots() -> list[Path]:
    """The folders datasets are read from, in order: :func:`user_data_dir`, then
    :func:`shared_data_dir` (listed whether or not they exist)."""
    roots = [user_data_dir()]
    shared = shared_data_dir()
    if shared not in roots:
        roots.append(shared)
    return roots


def md5sum(path: str | Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict:
    """What a run read from ``path``: ``{"path": resolved path, "bytes": size, "md5": digest}``."""
    path = Path(path).resolve()
    return {"path": str(path), "bytes": path.stat().st_size, "md5": md5sum(path)}


@contextlib.contextmanager
def new_dirs_removed_on_error(directory: Path) -> Iterator[Path]:
    """Creates ``directory`` (and missing parents); on an error, removes those it
    created again (where still empty), so that a failed download leaves no trace."""
    directory = Path(directory)
    created = []
    for d in [directory, *directory.parents]:
        if d.exists():
            break
        created.append(d)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(created)
        raise OSError(f"cannot create the data folder {directory}: {err}") from None
    try:
        yield directory
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(created: list[Path]) -> None:
    for d in created:  # deepest first
        try:
            d.rmdir()
        except OSError:
            break


def download(
    url: str, target: Path, md5: str, *, timeout: float = 60.0, progress: bool = True
) -> Path:
    """Downloads ``url`` to ``target`` if its MD5 is ``md5``; ``target``'s folder must exist.

    The bytes go to a temporary file in ``target``'s folder (shown with a
    progress bar), are checked, then renamed onto ``target``: on any failure
    (network, disk, checksum, interruption) the temporary file is deleted and
    ``target`` is untouched. Raises ``OSError`` naming the URL and the cause.
    """
    from tqdm.auto import tqdm

    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise OSError(f"{url}: {getattr(err, 'reason', err)}") from None
            with response:
                total = response.headers.get("Content-Length") if response.headers else None
                with tqdm(
                    total=int(total) if total and total.isdigit() else None, unit="B",
                    unit_scale=True, unit_divisor=1024, desc=target.name, disable=not progress,
                    leave=False,
                ) as bar:
                    try:
                        for block in iter(lambda: response.read(1 << 20), b""):
                            out.write(block)
                            bar.update(len(block))
                    except OSError as err:
                        raise OSError(f"{url}: download interrupted ({err})") from None
        got = md5sum(tmp)
        if got != md5:
            raise OSError(f"{url}: MD5 {got}, expected {md5} (not the official file)")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
