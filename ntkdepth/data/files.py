"""Checksums of downloaded data files."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["md5sum"]


def md5sum(path: str | Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
