"""hpsearch: hyperparameter sweeps for MLP classifiers."""

from __future__ import annotations

from ._version import __version__
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError
from .estimator import MLPClassifier, load

__all__ = [
    "CheckpointError", "DataError", "HpsearchError", "MLPClassifier", "SpecError",
    "StorageError", "__version__", "load",
]
