"""The paper's objects built on the kernels: normalized kernels, limits and rates,
the gradient-flow predictor, separation of data, and the bounds of section 6."""

from ntkdepth.theory.depth import (
    DecayFit,
    OnsetDepth,
    OnsetLaw,
    corollary1_profile,
    decay_onset_depth,
    fit_decay,
    fit_onset_law,
    lemma1_one_minus_rho,
    limit_eigenvalues,
    limit_matrix,
    normalize_kernel,
    predicted_log_law,
    proposition5_step,
)
from ntkdepth.theory.goldilocks import (
    DepthScan,
    depth_scan,
    goldilocks_range,
    near_points,
    stopping_time,
)
from ntkdepth.theory.predictor import GradientFlowPredictor, SingularKernelError

__all__ = [
    "DecayFit",
    "OnsetDepth",
    "OnsetLaw",
    "corollary1_profile",
    "decay_onset_depth",
    "fit_decay",
    "fit_onset_law",
    "lemma1_one_minus_rho",
    "limit_eigenvalues",
    "limit_matrix",
    "normalize_kernel",
    "predicted_log_law",
    "proposition5_step",
    "DepthScan",
    "GradientFlowPredictor",
    "SingularKernelError",
    "depth_scan",
    "goldilocks_range",
    "near_points",
    "stopping_time",
]
