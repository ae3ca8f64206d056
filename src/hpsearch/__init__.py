"""hpsearch: hyperparameter sweeps for MLP classifiers."""

from __future__ import annotations

import sys

from ._version import __version__
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError
from .model import checkpoint as _checkpoint
from .model import estimator as _estimator
from .model.checkpoint import load
from .model.ensemble import EnsembleClassifier
from .model.estimator import MLPClassifier

# A model exported before the modules moved into subpackages (0.1, the flat layout) runs a
# serving.py that imports hpsearch.checkpoint and hpsearch.estimator: in a process where this
# hpsearch is imported first, those names must still lead to the same code.
sys.modules.setdefault(f"{__name__}.checkpoint", _checkpoint)
sys.modules.setdefault(f"{__name__}.estimator", _estimator)

__all__ = [
    "CheckpointError", "DataError", "EnsembleClassifier", "HpsearchError", "MLPClassifier",
    "SpecError", "StorageError", "__version__", "load",
]
