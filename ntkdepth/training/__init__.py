"""Training finite networks with optax, and width sweeps with checkpoints (paper, section 5)."""

from ntkdepth.training.loop import (
    LOSSES,
    FullBatchData,
    NonFiniteDataError,
    PairData,
    StepFunctions,
    Trainer,
    TrainingDiverged,
    TrainSpec,
    loss_fn,
    make_optimizer,
    record_steps_grid,
    step_functions,
)
from ntkdepth.training.memory import (
    MemoryEstimate,
    WidthTooLargeError,
    available_memory,
    check_memory,
    estimate_memory,
)
from ntkdepth.training.settings import GradientFlowSettings, SweepSettings
from ntkdepth.training.sweep import SweepRun, run_width_sweep

__all__ = [
    "LOSSES", "FullBatchData", "PairData", "StepFunctions", "Trainer", "TrainingDiverged", "TrainSpec",
    "NonFiniteDataError", "loss_fn", "make_optimizer", "record_steps_grid", "step_functions",
    "MemoryEstimate", "SweepRun", "WidthTooLargeError", "available_memory", "check_memory",
    "estimate_memory", "run_width_sweep", "GradientFlowSettings", "SweepSettings",
]
