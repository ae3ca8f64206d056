"""pandas views of a model: its training history, and its predictions in the form every way of
serving it answers (``hpsearch predict``, the exported MLflow model, the model server)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .estimator import MLPClassifier


def history_frame(history: list[dict[str, float]]) -> pd.DataFrame:
    """``history_`` as a pandas DataFrame indexed by epoch."""
    return pd.DataFrame(history).set_index("epoch")


def prediction_frame(model: MLPClassifier, X: Any) -> pd.DataFrame:
    """Predictions as a DataFrame: ``label`` and one ``proba_<class>`` column per class (the
    output of an exported model, of ``hpsearch predict`` and of the MLflow server)."""
    proba = model.predict_proba(np.asarray(X, dtype=np.float64))
    out = pd.DataFrame({"label": model.classes_[proba.argmax(axis=1)]})
    for i, c in enumerate(model.classes_):
        out[f"proba_{c}"] = proba[:, i].astype(np.float64)
    return out


def output_frame(classes: np.ndarray, rows: int) -> pd.DataFrame:
    """A frame of the form ``prediction_frame`` returns for a model of ``classes`` (uniform
    probabilities): its columns and dtypes are the output signature, without the model."""
    proba = np.full((rows, len(classes)), 1.0 / len(classes))
    out = pd.DataFrame({"label": classes[np.zeros(rows, dtype=int)]})
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i].astype(np.float64)
    return out
