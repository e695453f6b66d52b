"""The paper's objects built on the kernels: normalized kernels, limits and rates,
the gradient-flow predictor, separation of data, and the bounds of section 6."""

from ntkdepth.theory.goldilocks import (
    DepthScan,
    depth_scan,
    goldilocks_range,
    near_points,
    stopping_time,
)
from ntkdepth.theory.predictor import GradientFlowPredictor, SingularKernelError

__all__ = [
    "DepthScan",
    "GradientFlowPredictor",
    "SingularKernelError",
    "depth_scan",
    "goldilocks_range",
    "near_points",
    "stopping_time",
]
