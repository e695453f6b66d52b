"""Training finite networks with optax, and width sweeps with checkpoints (paper, section 5)."""

from ntkdepth.training.loop import (
    LOSSES,
    FullBatchData,
    NonFiniteDataError,
    PairData,
    Trainer,
    TrainingDiverged,
    TrainSpec,
    feature_record,
    loss_fn,
    make_optimizer,
    record_steps_grid,
)
from ntkdepth.training.sweep import (
    MemoryEstimate,
    SweepRun,
    WidthTooLargeError,
    available_memory,
    check_memory,
    estimate_memory,
    run_width_sweep,
)

__all__ = [
    "LOSSES", "FullBatchData", "PairData", "Trainer", "TrainingDiverged", "TrainSpec",
    "NonFiniteDataError", "feature_record", "loss_fn", "make_optimizer", "record_steps_grid",
    "MemoryEstimate", "SweepRun", "WidthTooLargeError", "available_memory", "check_memory",
    "estimate_memory", "run_width_sweep",
]
