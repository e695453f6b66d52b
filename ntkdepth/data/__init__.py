"""Datasets and input geometry: points on the sphere and projections onto it."""

from ntkdepth.data.sphere import (
    canonical_projection,
    inverse_stereographic,
    sample_cube,
    sample_sphere,
)

__all__ = ["canonical_projection", "inverse_stereographic", "sample_cube", "sample_sphere"]
