"""Datasets and input geometry: points on the sphere, projections onto it, MNIST, and the
angles and separation of a set of points."""

from ntkdepth.data.mnist import (
    MnistNotFoundError,
    MnistSample,
    Subset,
    available_splits,
    draw_subset,
    fetch_mnist,
    load_mnist,
    mnist_dir,
    mnist_on_sphere,
    read_idx,
    resolve_split,
    sample_on_sphere,
    verify_mnist,
)
from ntkdepth.data.points import DATASETS, Points, PointSource, load_points, point_source
from ntkdepth.data.pairs import closest_pair, max_abs_cosine, min_pairwise_angle, pair_angles
from ntkdepth.data.sphere import (
    canonical_projection,
    inverse_stereographic,
    sample_cube,
    sample_sphere,
)

__all__ = [
    "DATASETS",
    "PointSource",
    "Points",
    "load_points",
    "point_source",
    "MnistNotFoundError",
    "MnistSample",
    "Subset",
    "available_splits",
    "draw_subset",
    "canonical_projection",
    "closest_pair",
    "fetch_mnist",
    "inverse_stereographic",
    "load_mnist",
    "mnist_dir",
    "max_abs_cosine",
    "min_pairwise_angle",
    "mnist_on_sphere",
    "pair_angles",
    "read_idx",
    "resolve_split",
    "sample_cube",
    "sample_on_sphere",
    "sample_sphere",
    "verify_mnist",
]
