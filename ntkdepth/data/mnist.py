"""MNIST: the official IDX files, their checksums, and images as points on ``S^783`` (paper,
section 6.4), drawn without replacement so that no two are colinear
(docs/predictor.md#invertibility); where the files are read from: docs/experiments.md#data.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ntkdepth.data.files import (DATA_ENV, DataError, data_roots, download, file_record, md5sum,
                                 new_dirs_removed_on_error, user_data_dir)
from ntkdepth.data.pairs import closest_pair

__all__ = [
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "MnistNotFoundError",
    "MnistSample",
    "Subset",
    "available_splits",
    "draw_subset",
    "fetch_mnist",
    "load_mnist",
    "mnist_dir",
    "mnist_data_line",
    "mnist_on_sphere",
    "mnist_record",
    "read_idx",
    "resolve_split",
    "sample_on_sphere",
    "verify_mnist",
]

SPLITS = ("train", "test")

#: The image and label files of each split (without ``.gz``).
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: MD5 checksums of the official gzipped files (as torchvision and TensorFlow Datasets list them).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Mirrors of the official files, tried in order (yann.lecun.com no longer serves them reliably).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


# IDX type codes: the third byte of the magic number.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class MnistNotFoundError(FileNotFoundError):
    """A folder lacks the MNIST files of a split; the message says where it looked and how to fetch."""


# --------------------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        # BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise DataError(f"{path}: corrupt gzip data ({err})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not; detected from the content).

    The IDX format: a magic number ``00 00 TT DD`` (``TT`` the type code:
    0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64;
    ``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then
    the data in row-major order, big-endian.

    Returns:
      An array of shape ``[d1, ..., dDD]`` in native byte order.

    Raises:
      FileNotFoundError: no file at ``path``.
      ~ntkdepth.data.files.DataError: a ``ValueError``: corrupt gzip data, a bad magic number or
        type code, a header cut short, or a payload shorter (truncated) or longer (trailing bytes)
        than the product of the sizes; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file at {path}")
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header (4-byte magic number)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0 or code not in _IDX_DTYPES:
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic:08x}: expected 0x0000TTDD with type code TT in "
            f"{[hex(c) for c in _IDX_DTYPES]} (not an IDX file, or a gzip file that lost its header)"
        )
    if ndim == 0:
        raise DataError(f"{path}: IDX magic number 0x{magic:08x} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimension sizes need {header} bytes, the file has "
            f"{len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python integers: no overflow for any header
    payload = len(data) - header
    if payload < expected:
        raise DataError(
            f"{path}: truncated: shape {list(dims)} of {dtype.name} needs {expected} data bytes, "
            f"the file has {payload}"
        )
    if payload > expected:
        raise DataError(
            f"{path}: {payload - expected} bytes beyond the data of shape {list(dims)} "
            f"({expected} bytes): not a well-formed IDX file"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- the folder


def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: ``data_dir`` if given (not empty); else the first ``mnist/``
    folder of :func:`ntkdepth.data.files.data_roots` that holds a split; else
    ``mnist/`` in the user data directory (where ``ntkdepth data fetch mnist`` writes)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    for root in data_roots():
        directory = root / "mnist"
        if any(not _split_files(directory, s)[1] for s in SPLITS):
            return directory
    return user_data_dir() / "mnist"


def _split_files(directory: Path, split: str) -> tuple[list[Path | None], list[str]]:
    """The image and label file of ``split`` (``None`` where missing) and the missing names."""
    found, missing = [], []
    for stem in MNIST_FILES[split]:
        candidates = [directory / stem, directory / f"{stem}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        found.append(path)
        if path is None:
            missing.append(f"{stem}[.gz]")
    return found, missing


def _check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; splits: {list(SPLITS)}")


def available_splits(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The splits (``"train"``, ``"test"``) whose image and label files are both in the folder."""
    directory = mnist_dir(data_dir)
    return [s for s in SPLITS if not _split_files(directory, s)[1]]


def _how_to_fetch(directory: Path) -> str:
    return (
        f"download the official files with `ntkdepth data fetch mnist` (into "
        f"{user_data_dir() / 'mnist'}), or point to a folder that has them with the experiment "
        f"setting data_dir or the environment variable {DATA_ENV} (which names the folder above "
        "mnist/)"
    )


def _where(data_dir) -> str:
    if data_dir is not None and str(data_dir) != "":
        return "the given data_dir"
    user, *fallback = data_roots()
    label = f"${DATA_ENV}/mnist" if os.environ.get(DATA_ENV) else f"the per-user cache; ${DATA_ENV} is not set"
    where = f"{user / 'mnist'} ({label})"
    if fallback:
        where += " and the read-only fallback " + ", ".join(str(r / "mnist") for r in fallback)
    return where


def resolve_split(data_dir: str | os.PathLike | None = None, split: str = "auto") -> str:
    """``split`` itself, or for ``"auto"`` the training split if present, else the test split.

    Raises :class:`MnistNotFoundError` (naming the folder and how to fetch) when
    the folder holds neither split, and ``ValueError`` for an unknown name.
    """
    if split != "auto":
        _check_split_name(split)
        return split
    splits = available_splits(data_dir)
    if splits:
        return splits[0]
    directory = mnist_dir(data_dir)
    contents = (
        "the folder does not exist" if not directory.is_dir() else
        f"it has neither {' + '.join(MNIST_FILES['train'])} nor {' + '.join(MNIST_FILES['test'])}, "
        "gzipped or not"
    )
    raise MnistNotFoundError(
        f"no MNIST split in {directory} (looked in {_where(data_dir)}: {contents}); {_how_to_fetch(directory)}"
    )


def load_mnist(
    data_dir: str | os.PathLike | None = None, split: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one MNIST split.

    Args:
      data_dir: the folder (``None`` or ``""``: see :func:`mnist_dir`).
      split: ``"train"`` (60,000 images), ``"test"`` (10,000) or ``"auto"``
        (see :func:`resolve_split`).

    Returns:
      ``(images, labels)``: uint8 ``[n, 28, 28]`` and uint8 ``[n]`` (digits 0..9).

    Raises:
      MnistNotFoundError: the split's files are not in the folder; the message
        names the missing files, the splits that are there, where it looked
        and how to fetch.
      ~ntkdepth.data.files.DataError: a ``ValueError``: a corrupt file (see :func:`read_idx`),
        images that are not ``[n, rows, cols]`` uint8, labels that are not ``[n]`` uint8 digits, or
        different numbers of images and labels.
    """
    split = resolve_split(data_dir, split)
    directory = mnist_dir(data_dir)
    (images_path, labels_path), missing = _split_files(directory, split)
    if missing:
        present = available_splits(data_dir)
        raise MnistNotFoundError(
            f"the MNIST {split!r} split is missing from {directory} (looked in {_where(data_dir)}): "
            f"no {' or '.join(missing)}; splits present there: {present or 'none'}. "
            + ("Use one of those, or " if present else "") + _how_to_fetch(directory)
        )
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images [n, rows, cols]; got {images.dtype} {list(images.shape)}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{labels_path}: expected uint8 labels [n]; got {labels.dtype} {list(labels.shape)}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST {split!r} split in {directory}: {images.shape[0]} images but {labels.shape[0]} labels "
            f"({images_path.name}, {labels_path.name})"
        )
    if labels.size and labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise DataError(f"{labels_path}: label {labels[bad]} at index {bad} is not a digit 0..9")
    return images, labels


def verify_mnist(data_dir: str | os.PathLike | None = None, split: str = "test") -> dict[str, str]:
    """Checks the ``.gz`` files of ``split`` against :data:`~ntkdepth.data.mnist.MNIST_MD5`; returns ``{name: md5}``.

    Uncompressed files have no published checksum and are not checked.
    Raises :class:`~ntkdepth.data.files.DataError` naming a file whose checksum differs and
    :class:`MnistNotFoundError` when the split has no ``.gz`` file.
    """
    _check_split_name(split)
    directory = mnist_dir(data_dir)
    sums = {}
    for stem in MNIST_FILES[split]:
        path = directory / f"{stem}.gz"
        if not path.is_file():
            continue
        sums[path.name] = md5sum(path)
        if sums[path.name] != MNIST_MD5[path.name]:
            raise DataError(
                f"{path}: MD5 {sums[path.name]} differs from the official {MNIST_MD5[path.name]} "
                "(a corrupt or partial download: delete it and fetch again)"
            )
    if not sums:
        raise MnistNotFoundError(f"no gzipped MNIST {split!r} files in {directory} to check")
    return sums


def fetch_mnist(
    data_dir: str | os.PathLike | None = None,
    splits: Sequence[str] = SPLITS,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[Path]:
    """Downloads the official ``.gz`` files of ``splits``, checking their MD5.

    Into ``data_dir`` if given, else ``mnist/`` in the user data directory
    (``$NTKDEPTH_DATA``, else the per-user cache; never the read-only
    fallback). Files already there with the right checksum are kept; others
    are downloaded from the first mirror that serves them with the right
    checksum (``mirrors``, default :data:`~ntkdepth.data.mnist.MNIST_MIRRORS`; see
    :func:`ntkdepth.data.files.download`: a temporary file in
    the folder, checked, then renamed). When a file cannot be fetched, the
    files fetched by this call and the folders it created are removed again:
    a failed fetch leaves the disk as it was. Returns the paths. Raises
    ``OSError`` listing what each mirror answered when none succeeds.
    """
    for split in splits:
        _check_split_name(split)
    mirrors = MNIST_MIRRORS if mirrors is None else tuple(mirrors)
    if not mirrors:
        raise ValueError("no mirror to fetch MNIST from")
    explicit = data_dir is not None and str(data_dir) != ""
    directory = Path(data_dir).expanduser() if explicit else user_data_dir() / "mnist"
    paths, fetched = [], []
    with new_dirs_removed_on_error(directory):
        try:
            for split in splits:
                for stem in MNIST_FILES[split]:
                    name = f"{stem}.gz"
                    target = directory / name
                    if target.is_file() and md5sum(target) == MNIST_MD5[name]:
                        paths.append(target)
                        continue
                    failures = []
                    for mirror in mirrors:
                        url = mirror.rstrip("/") + "/" + name
                        try:
                            download(url, target, MNIST_MD5[name], timeout=timeout, progress=progress)
                        except OSError as err:
                            failures.append(str(err))
                            continue
                        break
                    else:
                        raise OSError(f"could not fetch {name}: " + "; ".join(failures))
                    print(f"fetched {target}", file=sys.stderr)
                    fetched.append(target)
                    paths.append(target)
        except BaseException:
            for path in fetched:
                path.unlink(missing_ok=True)
            raise
    return paths


def mnist_record(data_dir: str | os.PathLike | None, split: str, split_images: int,
                 draws: Sequence[int]) -> dict:
    """What a run read of MNIST, for its ``config.json`` and results: the split's image and label
    files (path, bytes, MD5, and whether they are the official ones), the split, how many images
    it holds, and the size of each uniform draw the run made from it (``draws``).

    Only the official ``.gz`` files have published checksums (:data:`~ntkdepth.data.mnist.MNIST_MD5`); an
    uncompressed file or one with another MD5 is recorded as not official.
    """
    directory = mnist_dir(data_dir)
    paths, missing = _split_files(directory, split)
    if missing:
        raise MnistNotFoundError(f"the MNIST {split!r} split is missing from {directory}: no {' or '.join(missing)}")
    files, notes = [], []
    for path in paths:
        record = file_record(path)
        official = MNIST_MD5.get(path.name) == record["md5"]
        files.append({**record, "official": official})
        if not official:
            notes.append(f"{path.name} has MD5 {record['md5']}, not the official {MNIST_MD5[path.name]}"
                         if path.name in MNIST_MD5 else
                         f"{path.name} is uncompressed, which has no published checksum to check it against")
    official = not notes
    return {
        "dataset": "MNIST", "directory": str(directory.resolve()), "split": split,
        "split_images": int(split_images), "splits_in_folder": available_splits(directory),
        "files": files, "official": official,
        "kind": "the official MNIST files (MD5 checked)" if official else
                "not the official MNIST files as published: " + "; ".join(notes),
        "draws": [int(d) for d in draws],
    }


def mnist_data_line(record: dict | None) -> str:
    """One line of a summary naming the MNIST files a run read (a :func:`mnist_record`)."""
    if not record:
        return "Data: not recorded by this run."
    files = ", ".join(f"`{f['path']}` ({f['bytes']:,} bytes, MD5 {f['md5']})" for f in record["files"])
    draws = record["draws"]
    sizes = sorted(set(draws))
    drawn = (f"{len(draws)} uniform draw(s) of {sizes[0]:,} images" if len(sizes) == 1 else
             f"{len(draws)} uniform draws of {', '.join(f'{d:,}' for d in sizes)} images")
    return (f"Data: the MNIST {record['split']} split ({record['split_images']:,} images; splits in the folder: "
            f"{', '.join(record['splits_in_folder'])}), files {files}: {record['kind']}; {drawn}.")


# --------------------------------------------------------------------------- on the sphere


def mnist_on_sphere(images: np.ndarray) -> np.ndarray:
    """Images ``[n, rows, cols]`` (or already flat ``[n, p]``) as unit vectors ``[n, rows * cols]``, float64.

    Raises ``ValueError`` naming the first all-zero image (it has no direction).
    """
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"expected images [n, rows, cols] or [n, p]; got shape {list(images.shape)}")
    x = images.reshape(images.shape[0], -1).astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"image {int(np.flatnonzero(~np.isfinite(x).all(1))[0])} contains NaN or inf")
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"image {zero[0]} is all zero: it has no direction to project onto the sphere")
    return x / norms[:, None]


class MnistSample(NamedTuple):
    """Images drawn without replacement, on the sphere.

    Attributes:
      x: ``[n, p]`` unit vectors (``p = 784`` for MNIST).
      labels: ``[n]`` their labels (int64).
      indices: ``[n]`` their indices in the dataset, in draw order.
      min_angle: the smallest angle between two of them, in radians.
    """

    x: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    min_angle: float


def sample_on_sphere(
    rng: np.random.Generator | int,
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    *,
    min_angle: float = 1e-6,
) -> MnistSample:
    """``n`` images drawn uniformly without replacement and normalized onto the sphere.

    Drawing without replacement keeps every image once, but a dataset can hold
    the same picture twice; so the sample is checked: every pair must be at
    least ``min_angle`` apart (the default 1e-6 is above the ~2e-7 that the
    kernel recursion resolves for 784 inputs; see ``ntkdepth.kernels.relu``),
    which also rules out colinear pairs. Any prefix of the draw order is itself
    a uniform sample, so one draw of ``n_train + n_test`` images splits into
    disjoint uniform training and held-out sets.

    Args:
      rng: a generator or a seed.
      images: ``[N, rows, cols]`` or ``[N, p]``.
      labels: ``[N]``.
      n: how many to draw, ``2 <= n <= N``.

    Raises:
      ValueError: ``n`` out of range, mismatched lengths, an all-zero image
        among those drawn, or two drawn images closer than ``min_angle``
        (naming their dataset indices).
    """
    labels = np.asarray(labels)
    total = len(images)
    if labels.shape != (total,):
        raise ValueError(f"labels must be [N] with N = {total} images; got shape {list(labels.shape)}")
    if not 2 <= n <= total:
        raise ValueError(f"can draw 2 <= n <= {total} images without replacement; got n = {n}")
    rng = np.random.default_rng(rng)
    indices = rng.choice(total, size=n, replace=False)
    x = mnist_on_sphere(np.asarray(images)[indices])
    angle, i, j = closest_pair(x, colinear=True)
    if angle < min_angle:
        raise ValueError(
            f"images {indices[i]} and {indices[j]} of the dataset are colinear or nearly so (angle "
            f"{angle:.3g} < min_angle {min_angle:g}): their NTK Gram matrix is singular; draw "
            "with another seed"
        )
    return MnistSample(x=x, labels=labels[indices].astype(np.int64), indices=indices, min_angle=float(angle))


class Subset(NamedTuple):
    """One random subset: unit vectors ``x_*`` ``[n_*, p]`` and integer labels ``[n_*]``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    indices: np.ndarray  # [n_train + n_val + n_test] dataset indices: train, then validation, then test


def draw_subset(images: np.ndarray, labels: np.ndarray, n_train: int, n_val: int, n_test: int,
                seed: int, s: int) -> Subset:
    """Subset ``s``: one uniform draw without replacement (generator ``[seed, s]``), split in order
    into ``n_train`` training, ``n_val`` validation and ``n_test`` held-out images on the sphere."""
    a, b = n_train, n_train + n_val
    sample = sample_on_sphere(np.random.default_rng([seed, s]), images, labels, b + n_test)
    x, y = sample.x, sample.labels
    return Subset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], sample.indices)
