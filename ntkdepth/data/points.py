"""One entry point for the depth experiments' data: :func:`load_points` draws points on the sphere,
in the cube (projected onto the sphere) or MNIST images, with held-out ones, reproducibly from a
seed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ntkdepth.data.files import DataError
from ntkdepth.data.mnist import load_mnist, mnist_dir, mnist_record, resolve_split, sample_on_sphere
from ntkdepth.data.sphere import canonical_projection, sample_cube, sample_sphere

__all__ = ["DATASETS", "PointSource", "Points", "load_points", "point_source", "points_record"]

DATASETS = ("sphere", "cube", "mnist")


class PointSource(NamedTuple):
    """Where points come from: ``size`` points of dimension ``dim`` (``size`` None: unlimited)."""

    name: str
    dim: int
    size: int | None
    directory: Path | None  # MNIST only
    split: str | None  # MNIST only


class Points(NamedTuple):
    """A draw of :func:`load_points`.

    x: ``[n, d]`` float64 points. held_out: ``[held_out, d]`` further points,
    distinct from those. labels, indices: ``[n + held_out]`` class labels and
    indices into the split (MNIST; ``None`` otherwise), in the order of
    ``x`` then ``held_out``. min_angle: the smallest angle of a pair of
    them to a common line (MNIST; ``None`` otherwise). source: the
    :class:`PointSource`.
    """

    x: np.ndarray
    held_out: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray | None
    min_angle: float | None
    source: PointSource


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def point_source(name: str, *, dim: int | None = None, data_dir: str | os.PathLike = "",
                 split: str = "auto", need: int = 0) -> PointSource:
    """Resolves the dataset ``name`` without drawing from it.

    ``dim`` is required for ``"sphere"`` and ``"cube"`` and ignored for MNIST
    (784). With ``need > 0`` a dataset holding fewer points raises
    :class:`~ntkdepth.data.files.DataError` (a ``ValueError``) naming both numbers.
    """
    _check_name(name)
    if name == "mnist":
        directory = mnist_dir(data_dir)
        split = resolve_split(data_dir, split)
        images, _ = _mnist(directory, split)
        source = PointSource(name, int(np.prod(images.shape[1:])), len(images), directory, split)
        if need > source.size:
            raise DataError(f"{need} points requested, but the {split} split in {directory} holds "
                            f"{source.size} images: ask for fewer")
        return source
    if dim is None:
        raise ValueError(f"dataset {name!r} needs its dimension: pass dim")
    return PointSource(name, int(dim), None, None, None)


def points_record(source: PointSource, draws) -> dict | None:
    """What a run read from ``source`` making draws of the sizes ``draws``: MNIST's
    :func:`~ntkdepth.data.mnist.mnist_record`; None for points drawn at random (no file)."""
    if source.name != "mnist":
        return None
    return mnist_record(source.directory, source.split, source.size, draws)


@functools.lru_cache(maxsize=2)
def _mnist_cached(directory: str, split: str, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(directory, split)


def _mnist(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's images and labels, read once per process while its files are unchanged."""
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                  for p in sorted(Path(directory).iterdir()) if p.is_file())
    return _mnist_cached(str(directory), split, stamp)


def load_points(name: str, n: int, seed, *, dim: int | None = None, held_out: int = 0,
                on_sphere: bool = True, data_dir: str | os.PathLike = "", split: str = "auto") -> Points:
    """Draws ``n`` points of the dataset ``name`` and ``held_out`` more (module docstring).

    Args:
      name: ``"sphere"``, ``"cube"`` or ``"mnist"``.
      n: number of points, ``>= 1``.
      seed: seed or generator of the draw.
      dim: the dimension ``d`` (sphere and cube).
      held_out: further points drawn after the first ``n``, ``>= 0``.
      on_sphere: project the cube's points onto the sphere (the sphere's and
        MNIST's always lie on it).
      data_dir, split: the MNIST folder and split (see :func:`mnist_dir`,
        :func:`resolve_split`).

    Returns:
      :class:`Points`.

    Raises:
      ValueError: an unknown dataset, ``n < 1`` or ``held_out < 0``, a missing
        dimension, more MNIST points than the split holds, or (through the
        samplers) points that the projection would merge.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    if isinstance(held_out, bool) or not isinstance(held_out, (int, np.integer)) or held_out < 0:
        raise ValueError(f"held_out must be an integer >= 0; got {held_out!r}")
    if not on_sphere and name != "cube":
        raise ValueError(f"the points of {name!r} always lie on the sphere; on_sphere=False is for 'cube'")
    total = n + held_out
    source = point_source(name, dim=dim, data_dir=data_dir, split=split, need=total)
    labels = indices = min_angle = None
    if name == "mnist":
        images, all_labels = _mnist(source.directory, source.split)
        sample = sample_on_sphere(seed, images, all_labels, total)
        x, labels, indices, min_angle = sample.x, sample.labels, sample.indices, sample.min_angle
    elif name == "sphere":
        x = sample_sphere(np.random.default_rng(seed), total, source.dim)
    else:
        x = sample_cube(np.random.default_rng(seed), total, source.dim)
        if on_sphere:
            x = canonical_projection(x)
    return Points(x[:n], x[n:], labels, indices, min_angle, source)
