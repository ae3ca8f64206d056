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

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

# MLflow 3's usage telemetry, off unless the user turns it on: its client sets and unsets an
# environment variable from a background thread, and a request iterating os.environ meanwhile
# fails with KeyError('_MLFLOW_TELEMETRY_SESSION_ID') (1 trial in 1,000 with 32 workers on a
# tracking server, bench/many_workers.py); and a sweep on a private cluster sends nothing out.
# Set before anything imports mlflow, and inherited by the MLflow servers hpsearch starts.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from ._version import __version__  # noqa: E402 - after the telemetry switch above
from .errors import CheckpointError, DataError, HpsearchError, SpecError, StorageError

# Imported when first used: `import hpsearch` (and so every command) pays neither for
# scikit-learn (~1.2 s) nor for Optuna or MLflow.
_LAZY = {"MLPClassifier": "model.estimator", "EnsembleClassifier": "model.ensemble",
         "load": "model.checkpoint", "load_spec": "spec.config", "sweep": "api",
         "datasets": None}
# A model exported before the modules moved into subpackages (0.1, the flat layout) runs a
# serving.py that imports hpsearch.checkpoint and hpsearch.estimator: in a process where this
# hpsearch is imported first, those names lead to the same code (_Moved below).
_MOVED = {f"{__name__}.checkpoint": f"{__name__}.model.checkpoint",
          f"{__name__}.estimator": f"{__name__}.model.estimator"}

__all__ = [
    "CheckpointError", "DataError", "EnsembleClassifier", "HpsearchError", "MLPClassifier",
    "SpecError", "StorageError", "__version__", "datasets", "load", "load_spec", "sweep",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _LAZY[name]
    if where is None:
        value: Any = importlib.import_module(f"{__name__}.spec.{name}")
    else:
        value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a module's old flat-layout name: the module under its new name, as it is."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(_MOVED[spec.name])
        self._own = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._own  # the import system gave it the old name's spec


if not any(isinstance(f, _Moved) for f in sys.meta_path):
    sys.meta_path.append(_Moved())
