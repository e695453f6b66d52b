"""text8 as skip-gram pairs over a vocabulary, the training set of the paper's Table 1 (section 5):
the plain file or ``text8.zip``, fetched and MD5-checked (docs/experiments.md#data).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ntkdepth.data.files import (DATA_ENV, DataError, data_roots, download, file_record, md5sum,
                                 new_dirs_removed_on_error, user_data_dir)

__all__ = [
    "TEXT8_URL",
    "TEXT8_MD5",
    "Vocabulary",
    "default_text8_path",
    "fetch_text8",
    "load_text8",
    "text8_record",
    "pair_statistics",
    "skipgram_pairs",
]

TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_MD5 = "f26f94c5209bc6159618bad4a559ff81"
TEXT8_BYTES = 31_344_016
TEXT8_CHARACTERS = 100_000_000  # the unzipped file: the first 10^8 characters of the dump
_SAMPLE = Path("text8") / "text8-enwiki-sample"


def default_text8_path() -> Path:
    """The text8 file read when none is named.

    The first of ``text8/text8.zip``, ``text8/text8``,
    ``text8/text8-enwiki-sample``, ``text8.zip``, ``text8`` found in the user
    data directory (``$NTKDEPTH_DATA``, else the per-user cache), then in the
    read-only fallback ``../shared/data``. Raises ``FileNotFoundError`` listing
    where it looked and naming ``ntkdepth data fetch text8``.
    """
    tried = []
    for root in data_roots():
        for name in ("text8/text8.zip", "text8/text8", str(_SAMPLE), "text8.zip", "text8"):
            path = root / name
            tried.append(str(path))
            if path.is_file():
                return path
    raise FileNotFoundError(
        "no text8 file found; looked at " + ", ".join(tried)
        + f". Download it with `ntkdepth data fetch text8` (into {user_data_dir() / 'text8'}), "
        f"set {DATA_ENV} to a folder holding text8/text8.zip, or name a file with the "
        "setting text8_path."
    )


def fetch_text8(
    directory: str | Path | None = None,
    url: str | None = None,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Downloads the official ``text8.zip`` (31 MB) and checks its MD5; returns its path.

    From ``url`` (default :data:`TEXT8_URL`) into ``directory`` if given,
    else ``text8/`` in the user data directory.
    A file already there with the right checksum is kept. The download goes to
    a temporary file in that folder and is renamed into place once checked; on
    failure nothing is left behind (not even the folders it created).
    """
    url = TEXT8_URL if url is None else url
    directory = user_data_dir() / "text8" if directory is None or str(directory) == "" else Path(directory)
    target = directory / "text8.zip"
    if target.is_file() and md5sum(target) == TEXT8_MD5:
        return target
    with new_dirs_removed_on_error(directory):
        try:
            download(url, target, TEXT8_MD5, timeout=timeout, progress=progress)
        except OSError as err:
            raise OSError(f"could not fetch text8.zip: {err}") from None
    return target


def load_text8(path: str | Path | None = None, max_words: int | None = None) -> list[str]:
    """The words of a text8 file: the plain file, or a zip holding one (``text8.zip``).

    ``max_words`` keeps the first words only. Characters other than ``a``-``z``
    and spaces mean the file is not in text8 format: an error.
    """
    path = default_text8_path() if path is None else Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a text8 file: name the file itself (text8 or text8.zip)")
    if not path.is_file():
        raise FileNotFoundError(f"text8 file {path} does not exist")
    refetch = "download the official one with `ntkdepth data fetch text8`"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise DataError(f"{path} is empty (0 bytes), not a text8 file; {refetch}")
    if magic[:2] == b"\x1f\x8b":
        raise DataError(f"{path} is a gzip file; text8 is read as the plain file or as the official "
                        "text8.zip: unpack it first (gunzip)")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if not names:
                    raise DataError(f"{path} is a zip with no file in it; {refetch}")
                raw = zf.read("text8" if "text8" in names else names[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{path} is a damaged zip ({e}); {refetch}") from None
    elif magic == b"PK\x03\x04":
        raise DataError(f"{path} is a truncated or damaged zip (its table of contents at the end is "
                        f"missing); {refetch}")
    else:
        raw = path.read_bytes()
    bad = raw.translate(None, b"abcdefghijklmnopqrstuvwxyz \n")
    if bad:
        raise DataError(
            f"{path} is not in text8 format: it holds {len(bad)} characters other than a-z and "
            f"spaces (first: {bad[:10]!r})"
        )
    words = raw.decode("ascii").split()
    if not words:
        raise DataError(f"{path} holds no words, only spaces; {refetch}")
    return words[:max_words] if max_words else words


def text8_record(path: str | Path | None, words_used: int) -> dict:
    """What a text8 run read: the file (path, bytes, MD5), what it is, and how many words were used.

    ``kind`` says whether the file is the official ``text8.zip`` (its MD5),
    a plain file of the official length (10^8 characters), or another text
    in text8 format, e.g. an excerpt: results on an excerpt are not results
    on text8.
    """
    path = default_text8_path() if path is None else Path(path)
    record = file_record(path)
    if record["md5"] == TEXT8_MD5:
        kind = "the official text8.zip (MD5 checked)"
    elif not zipfile.is_zipfile(path) and record["bytes"] == TEXT8_CHARACTERS:
        kind = "a plain text8 file of the official length (10^8 characters)"
    else:
        kind = "a text in text8 format that is not the official text8 (an excerpt or another corpus)"
    return {**record, "kind": kind, "official": not kind.startswith("a text"), "words_used": int(words_used)}


@dataclass(frozen=True)
class Vocabulary:
    """The ``V`` most frequent words; ties go to the alphabetically first word."""

    words: tuple[str, ...]
    counts: np.ndarray  # [V], occurrences in the corpus

    @classmethod
    def build(cls, words: list[str], size: int) -> Vocabulary:
        if size < 2:
            raise ValueError(f"a vocabulary needs at least 2 words; got size {size}")
        counter = Counter(words)
        if size > len(counter):
            raise DataError(f"vocabulary size {size} exceeds the {len(counter)} distinct words of the corpus")
        ranked = sorted(counter.items(), key=lambda wc: (-wc[1], wc[0]))[:size]
        return cls(tuple(w for w, _ in ranked), np.array([c for _, c in ranked], np.int64))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, words: list[str]) -> np.ndarray:
        """Token ids ``[m]`` of the words in the vocabulary, in corpus order; others are dropped."""
        index = self.index
        return np.fromiter((index[w] for w in words if w in index), dtype=np.int32)


def skipgram_pairs(ids: np.ndarray, window: int) -> np.ndarray:
    """``[P, 2]`` int32 ``(center, context)`` pairs: every context within ``window`` of each center."""
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    ids = np.asarray(ids, dtype=np.int32)
    if ids.ndim != 1 or ids.size < 2:
        raise ValueError(f"need a 1-d sequence of at least 2 token ids; got shape {ids.shape}")
    parts = []
    for offset in range(1, window + 1):
        if offset >= ids.size:
            break
        a, b = ids[:-offset], ids[offset:]
        parts.append(np.stack([a, b], 1))
        parts.append(np.stack([b, a], 1))
    return np.concatenate(parts)


def pair_statistics(pairs: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(p [V], Q [V, V])``: the centers' frequencies and each center's context distribution.

    SGD on the pairs with the MSE loss follows, in expectation, the gradient
    flow of ``sum_c p_c |f(c) - Q_c|^2 / 2`` (a center never seen has ``p_c = 0``
    and a zero row in ``Q``).
    """
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ValueError(f"pairs must be [P, 2] with P > 0; got {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= vocab_size:
        raise ValueError(f"pairs hold token ids outside [0, {vocab_size})")
    counts = np.bincount(
        pairs[:, 0].astype(np.int64) * vocab_size + pairs[:, 1], minlength=vocab_size**2
    ).reshape(vocab_size, vocab_size).astype(np.float64)
    rows = counts.sum(1)
    p = rows / rows.sum()
    q = np.divide(counts, rows[:, None], out=np.zeros_like(counts), where=rows[:, None] > 0)
    return p, q
