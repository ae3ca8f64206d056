"""A fitted MLPClassifier as the checkpoint format holds it, and back: ``to_state`` gives the
(meta, arrays) that ``checkpoint.write`` takes, ``from_state`` rebuilds the model from what
``checkpoint.read`` checked. The estimator's ``checkpoint_state`` and ``from_checkpoint_state``
call these."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..nn import Network


def to_state(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The fitted model as ``checkpoint.write`` takes it: ``meta`` (parameters, layer sizes,
    dtype, classes, features, training summary; JSON-able) and ``arrays`` (weights, biases,
    input transform)."""
    net = model.net_
    arrays = {f"W{i}": w for i, w in enumerate(net.weights)}
    arrays |= {f"b{i}": b for i, b in enumerate(net.biases)}
    arrays |= {"input_offset": model.input_offset_, "input_scale": model.input_scale_}
    params = {k: _jsonable(v) for k, v in model.get_params().items()}
    if not isinstance(params.get("random_state"), int | type(None)):
        params["random_state"] = None  # a RandomState object cannot be stored as JSON
    classes = model.classes_
    meta = {
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
        "columns": getattr(model, "columns_", None),  # a table's target and column plan
    }
    return meta, arrays


def stored_classes(meta: Mapping[str, Any]) -> np.ndarray:
    """A checkpoint's ``classes_``, as the model had them (their dtype included)."""
    cdtype = meta["classes_dtype"]
    classes = np.asarray(meta["classes"], dtype=object if cdtype == "str" else cdtype)
    return classes.astype(str) if cdtype == "str" else classes


def from_state(cls: Any, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               source: str | Path) -> Any:
    """The fitted model that ``checkpoint_state`` described, from the (meta, arrays) of
    ``checkpoint.read`` (which has checked the arrays against ``sizes`` and ``dtype``);
    CheckpointError naming ``source``, the checkpoint's JSON file, otherwise."""
    try:
        params = dict(meta["params"])
        params["hidden_sizes"] = tuple(params["hidden_sizes"])
        model = cls(**params)
        model._validate_params()
        classes = stored_classes(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: malformed config ({exc})") from None
    sizes = [int(s) for s in meta["sizes"]]
    if sizes[-1] != len(classes) or sizes[1:-1] != list(params["hidden_sizes"]):
        raise CheckpointError(f"{source}: sizes {sizes} disagree with the "
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
    if meta.get("columns"):
        model.columns_ = dict(meta["columns"])
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
