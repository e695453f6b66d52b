"""Datasets and input geometry: points on the sphere and projections onto it."""

from ntkdepth.data.sphere import canonical_projection, sample_sphere, sample_cube

__all__ = ["canonical_projection", "sample_cube", "sample_sphere"]
