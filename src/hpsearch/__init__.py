"""hpsearch: hyperparameter sweeps for MLP classifiers."""

from __future__ import annotations

__version__ = "0.1.0"

from .checkpoint import load  # noqa: E402
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError  # noqa: E402
from .estimator import MLPClassifier  # noqa: E402

__all__ = [
    "CheckpointError", "DataError", "HpsearchError", "MLPClassifier", "SpecError",
    "StorageError", "__version__", "load",
]
