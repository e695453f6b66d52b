"""Where data files are looked for, and checksums of downloaded ones."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_roots", "md5sum"]

DATA_ENV = "NTKDEPTH_DATA"


def data_roots() -> list[Path]:
    """Folders holding datasets, in order: ``$NTKDEPTH_DATA`` if set, then
    ``../shared/data`` next to the repository holding this package."""
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    return roots


def md5sum(path: str | Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
