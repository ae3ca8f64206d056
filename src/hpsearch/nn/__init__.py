"""The numerical core: a NumPy MLP (imports numpy only)."""

from __future__ import annotations

from .functional import ACTIVATIONS
from .network import Network
from .optimizers import OPTIMIZER_PARAMS, OPTIMIZERS, Optimizer, make_optimizer
from .schedules import SCHEDULE_PARAMS, SCHEDULES, Schedule, make_schedule
from .training import TrainConfig, TrainResult, evaluate, train

__all__ = [
    "ACTIVATIONS", "OPTIMIZERS", "OPTIMIZER_PARAMS", "SCHEDULES", "SCHEDULE_PARAMS",
    "Network", "Optimizer", "Schedule", "TrainConfig", "TrainResult",
    "evaluate", "make_optimizer", "make_schedule", "train",
]
