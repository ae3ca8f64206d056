"""Checkpoint files: a directory with ``weights.npz`` (arrays only) and ``checkpoint.json``
(format, version and whatever the model records about itself).

This module knows the file format, not the model: ``write`` and ``read`` take and give
``(meta, arrays)``; the estimator turns itself into those and back (``checkpoint_state``,
``from_checkpoint_state``). Reading never unpickles: ``np.load(..., allow_pickle=False)``
refuses object arrays, and every array's name, shape and dtype is checked against the layer
``sizes`` and ``dtype`` in the JSON, and every value for finiteness, before anything uses them.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._version import __version__
from ..errors import CheckpointError

FORMAT = "hpsearch-checkpoint"
FORMAT_VERSION = 1
WEIGHTS, META = "weights.npz", "checkpoint.json"


def write(path: str | Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write checkpoint directory ``path``: ``arrays`` to weights.npz and ``meta`` (JSON-able,
    with the ``sizes`` and ``dtype`` that ``read`` checks the arrays against) to checkpoint.json
    after the format's own fields. Returns the directory."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "hpsearch_version": __version__}
    # Write the weights to a temporary name and rename, so a crash never leaves a half file.
    tmp = out / (WEIGHTS + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(out / WEIGHTS)
    (out / META).write_text(json.dumps({**header, **meta}, indent=1, allow_nan=True))
    return out


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Validated (meta, arrays) of checkpoint directory ``path``; CheckpointError otherwise."""
    root = Path(path)
    meta_file, weights_file = root / META, root / WEIGHTS
    for f in (meta_file, weights_file):
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (not an hpsearch checkpoint directory?)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_file}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_file}: not an hpsearch checkpoint (format field)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_file}: format_version {meta.get('format_version')!r} "
                              f"is not supported (this hpsearch reads {FORMAT_VERSION})")
    try:
        sizes = [int(s) for s in meta["sizes"]]
        dtype = np.dtype(meta["dtype"])
        n_layers = len(sizes) - 1
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_file}: malformed sizes/dtype ({exc})") from None
    if dtype not in (np.float32, np.float64) or n_layers < 1:
        raise CheckpointError(f"{meta_file}: unsupported dtype {dtype} or sizes {sizes}")

    expected: dict[str, tuple[int, ...]] = {
        f"W{i}": (sizes[i], sizes[i + 1]) for i in range(n_layers)}
    expected |= {f"b{i}": (sizes[i + 1],) for i in range(n_layers)}
    expected |= {"input_offset": (sizes[0],), "input_scale": (sizes[0],)}
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(weights_file, allow_pickle=False) as npz:
            names = set(npz.files)
            if names != set(expected):
                raise CheckpointError(
                    f"{weights_file}: arrays {sorted(names)} do not match the layers in {META} "
                    f"(expected {sorted(expected)})")
            for name, shape in expected.items():
                arr = npz[name]
                if arr.shape != shape:
                    raise CheckpointError(f"{weights_file}: {name} has shape {arr.shape}, "
                                          f"{META} says {shape}")
                if arr.dtype != dtype:
                    raise CheckpointError(f"{weights_file}: {name} has dtype {arr.dtype}, "
                                          f"{META} says {dtype}")
                arrays[name] = arr
    except ValueError as exc:  # allow_pickle=False refusing an object array lands here
        raise CheckpointError(f"{weights_file}: refused ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{weights_file}: corrupt ({exc})") from None
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{weights_file}: {name} holds non-finite values")
    return meta, arrays


def locate(path: str | Path) -> Path:
    """The checkpoint directory of ``path``: ``path`` itself, or the ``artifacts/checkpoint``
    of a directory written by ``hpsearch export``."""
    root = Path(path)
    exported = root / "artifacts" / "checkpoint"
    if not any((root / m).is_file() for m in _registered()) and \
            any((exported / m).is_file() for m in _registered()):
        return exported
    return root


# -- models, for the modules that save and load them through this one ------------------------
# The real entry points are MLPClassifier.save / MLPClassifier.load / hpsearch.load.

class Checkpointable(Protocol):
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


# marker file -> how to load a directory holding it; the last registered is tried first
_loads: dict[str, Callable[[str | Path], Any]] = {}
MODEL_MODULES = ("estimator", "ensemble")  # the modules of this package that register one


def register_model(load: Callable[[str | Path], Any], marker: str = META) -> None:
    """How ``load_model`` builds a model from a directory holding file ``marker``.
    hpsearch.model.estimator registers ``MLPClassifier.load`` (checkpoint.json) and model.ensemble
    ``EnsembleClassifier.load`` (ensemble.json) when imported; ``_registered`` imports both."""
    _loads[marker] = load


def _registered() -> dict[str, Callable[[str | Path], Any]]:
    """The loaders, once the two model modules have registered theirs. They import this module,
    so it imports them by name when a model is first loaded (`import hpsearch` and the commands
    that load no model do not pay for scikit-learn)."""
    if __package__ and len(_loads) < len(MODEL_MODULES):
        for module in MODEL_MODULES:
            importlib.import_module(f"{__package__}.{module}")
    return _loads


def save_model(model: Checkpointable, path: str | Path,
               extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted model to directory ``path`` (``extra``: more JSON fields); returns it."""
    meta, arrays = model.checkpoint_state()
    return write(path, {**meta, **(extra or {})}, arrays)


def load_model(path: str | Path) -> Any:
    """The fitted model (an MLPClassifier, or an ensemble of them) in directory ``path``."""
    if not _registered():  # only for a checkpoint.py loaded outside its package
        raise RuntimeError("no model class registered: import hpsearch first")
    for marker, load in reversed(_loads.items()):
        if (Path(path) / marker).is_file():
            return load(path)
    return _loads[META](path)  # its error names the missing file


def load(path: str | Path) -> Any:
    """``load_model`` of a checkpoint directory or of a ``hpsearch export`` directory."""
    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such directory (an `hpsearch export` directory or "
                              f"a checkpoint)")
    return load_model(locate(path))
