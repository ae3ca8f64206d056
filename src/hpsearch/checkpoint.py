"""Checkpoints: a directory with ``weights.npz`` (arrays only) and ``checkpoint.json`` (config,
classes, preprocessing, version, training summary).

Loading never unpickles: ``np.load(..., allow_pickle=False)`` refuses object arrays, and every
array's name, shape and dtype is checked against the JSON before a model is built from it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .errors import CheckpointError

if TYPE_CHECKING:
    from .estimator import MLPClassifier

FORMAT = "hpsearch-checkpoint"
FORMAT_VERSION = 1
WEIGHTS, META = "weights.npz", "checkpoint.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_model(model: MLPClassifier, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted MLPClassifier to directory ``path``; returns the directory."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "net_")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    net = model.net_
    arrays = {f"W{i}": w for i, w in enumerate(net.weights)}
    arrays |= {f"b{i}": b for i, b in enumerate(net.biases)}
    arrays |= {"input_offset": model.input_offset_, "input_scale": model.input_scale_}
    params = {k: _jsonable(v) for k, v in model.get_params().items()}
    if not isinstance(params.get("random_state"), int | type(None)):
        params["random_state"] = None  # a RandomState object cannot be stored as JSON
    classes = model.classes_
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hpsearch_version": __version__,
        "params": params,
        "sizes": net.sizes,
        "dtype": str(net.dtype),
        "classes": [_jsonable(c) for c in classes.tolist()],
        "classes_dtype": classes.dtype.str if classes.dtype.kind != "O" else "str",
        "n_features_in": int(model.n_features_in_),
        "feature_names_in": (list(map(str, model.feature_names_in_))
                             if hasattr(model, "feature_names_in_") else None),
        "monitor": model.monitor_,
        "best_epoch": model.best_epoch_,
        "best_score": model.best_score_,
        "status": model.status_,
        "stop_reason": model.stop_reason_,
        "history": model.history_,
        **(extra or {}),
    }
    # Write the weights to a temporary name and rename, so a crash never leaves a half file.
    tmp = out / (WEIGHTS + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(out / WEIGHTS)
    (out / META).write_text(json.dumps(meta, indent=1, allow_nan=True))
    return out


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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


def load_model(path: str | Path) -> MLPClassifier:
    """Build a fitted MLPClassifier from checkpoint directory ``path``."""
    from .estimator import MLPClassifier
    from .nn import Network

    meta, arrays = read_checkpoint(path)
    try:
        params = dict(meta["params"])
        params["hidden_sizes"] = tuple(params["hidden_sizes"])
        model = MLPClassifier(**params)
        model._validate_params_()
        cdtype = meta["classes_dtype"]
        classes = np.asarray(meta["classes"], dtype=object if cdtype == "str" else cdtype)
        if cdtype == "str":
            classes = classes.astype(str)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{Path(path) / META}: malformed config ({exc})") from None
    sizes = [int(s) for s in meta["sizes"]]
    if sizes[-1] != len(classes) or sizes[1:-1] != list(params["hidden_sizes"]):
        raise CheckpointError(f"{Path(path) / META}: sizes {sizes} disagree with the "
                              f"classes/hidden_sizes recorded")
    net = Network(sizes, dtype=meta["dtype"])
    for i in range(net.n_layers):
        net.weights[i][...] = arrays[f"W{i}"]
        net.biases[i][...] = arrays[f"b{i}"]
    model.net_ = net
    model.classes_ = classes
    model.n_features_in_ = sizes[0]
    if meta.get("feature_names_in"):
        model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    model.input_offset_ = arrays["input_offset"]
    model.input_scale_ = arrays["input_scale"]
    model.history_ = list(meta.get("history") or [])
    model.best_epoch_ = meta.get("best_epoch", 0)
    model.best_score_ = float(meta.get("best_score") or "nan")
    model.monitor_ = meta.get("monitor", "train_loss")
    model.status_ = meta.get("status", "completed")
    model.stop_reason_ = meta.get("stop_reason", "")
    model.n_epochs_ = len(model.history_)
    model.train_time_s_ = float("nan")  # not recorded in checkpoints
    return model


def load(path: str | Path) -> MLPClassifier:
    """Public entry point: ``hpsearch.load(DIR)`` for a checkpoint directory or a directory
    written by ``hpsearch export`` (whose checkpoint is the MLflow model's artifact)."""
    root = Path(path)
    exported = root / "artifacts" / "checkpoint"
    if not (root / META).is_file() and (exported / META).is_file():
        return load_model(exported)
    return load_model(root)
