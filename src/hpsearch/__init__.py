"""hpsearch: hyperparameter sweeps for MLP classifiers."""

from __future__ import annotations

from ._version import __version__
from .checkpoint import load
from .ensemble import EnsembleClassifier
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError
from .estimator import MLPClassifier

__all__ = [
    "CheckpointError", "DataError", "EnsembleClassifier", "HpsearchError", "MLPClassifier",
    "SpecError", "StorageError", "__version__", "load",
]
