"""hpsearch: hyperparameter sweeps for MLP classifiers.

The public API; users import from here only:

- ``MLPClassifier``: the NumPy MLP, a scikit-learn estimator; ``EnsembleClassifier``.
- ``load(DIR)``: the model in a checkpoint directory or in an ``hpsearch export`` directory.
- ``load_spec(PATH)``: a sweep spec (YAML), validated.
- ``sweep(X, y, trials=30)``: a sweep on arrays or a DataFrame, from a notebook (``api``).
- ``datasets``: ``datasets.load(name)`` and ``datasets.split(...)``.
- the errors a user can cause: ``HpsearchError`` and its subclasses.

The layers below are subpackages (docs/architecture.md): ``nn`` <- ``model`` <- ``diagnosis``,
``spec`` <- ``tracking`` <- ``study`` <- ``search`` <- ``report``, ``export`` <- ``cli``.
"""

from __future__ import annotations

import sys
from typing import Any

from ._version import __version__
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError
from .model import checkpoint as _checkpoint
from .model import estimator as _estimator
from .model.checkpoint import load
from .model.ensemble import EnsembleClassifier
from .model.estimator import MLPClassifier
from .spec import datasets

# A model exported before the modules moved into subpackages (0.1, the flat layout) runs a
# serving.py that imports hpsearch.checkpoint and hpsearch.estimator: in a process where this
# hpsearch is imported first, those names must still lead to the same code.
sys.modules.setdefault(f"{__name__}.checkpoint", _checkpoint)
sys.modules.setdefault(f"{__name__}.estimator", _estimator)

__all__ = [
    "CheckpointError", "DataError", "EnsembleClassifier", "HpsearchError", "MLPClassifier",
    "SpecError", "StorageError", "__version__", "datasets", "load", "load_spec", "sweep",
]


def __getattr__(name: str) -> Any:
    # Imported when first used: `import hpsearch` does not pay for Optuna or MLflow.
    if name == "load_spec":
        from .spec.config import load_spec

        return load_spec
    if name == "sweep":
        from .api import sweep

        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
