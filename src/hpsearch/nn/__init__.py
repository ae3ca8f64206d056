"""The numerical core: a NumPy MLP, float32 by default.

- ``functional``: activations, losses, penalties and their gradients, as plain functions.
- ``network``: the layers' weights as views into one flat parameter vector.
- ``optimizers``: SGD, momentum, RMSProp, Adam, AdamW over that vector (``OPTIMIZERS``).
- ``schedules``: learning-rate schedules (``SCHEDULES``).
- ``training``: the loop: minibatches, per-epoch measurements, callbacks fired, nothing else.

May import: nothing of hpsearch; numpy only.
"""

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
