"""The MLflow model of an exported hpsearch checkpoint ("models from code": MLflow loads this
file as source, so nothing is unpickled). Output: the predicted label and one probability column
per class.

Input, in whatever form users hold their data: a NumPy array (2-D, or images of any shape that
flatten to the feature count), a list of lists, or a DataFrame (with the feature columns, taken
by name when it has them all, else in order). The model has no input schema on purpose: MLflow's
enforcement of a column schema refuses arrays, and of a tensor schema refuses DataFrames and
other image shapes; this file checks the one thing that matters, the feature count, and a wrong
one is an INVALID_PARAMETER_VALUE error naming both counts (HTTP 400 from `mlflow models
serve`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


def features(model_input: Any, n_features: int, names: list[str] | None = None) -> np.ndarray:
    """``model_input`` as a (samples, n_features) float64 array; MlflowException otherwise."""
    if isinstance(model_input, dict) and len(model_input) == 1:  # {"inputs": {"x": [...]}}
        model_input = next(iter(model_input.values()))
    if isinstance(model_input, pd.DataFrame):
        if names and set(names) <= set(map(str, model_input.columns)):
            model_input = model_input[names]
        model_input = model_input.to_numpy()
    try:
        x = np.asarray(model_input, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MlflowException(f"input must be numbers: a 2-D array, a list of rows or a "
                              f"DataFrame of {n_features} features ({exc})",
                              error_code=INVALID_PARAMETER_VALUE) from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim > 2:  # images: (n, 28, 28) or (n, 1, 28, 28) flatten to (n, 784)
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != n_features:
        got = x.shape[1] if x.ndim == 2 else "?"
        raise MlflowException(f"expected {n_features} features per sample, received {got} "
                              f"(input shape {tuple(np.shape(model_input))})",
                              error_code=INVALID_PARAMETER_VALUE)
    return x


class HpsearchModel(PythonModel):
    def load_context(self, context: Any) -> None:
        # MLflow runs this file when it saves and loads the model, before the model's code_paths
        # (hpsearch itself) are importable: hpsearch is imported once the model is loaded.
        from hpsearch.model.checkpoint import load_model

        ckpt = Path(context.artifacts["checkpoint"])
        self.model = load_model(ckpt)
        names = getattr(self.model, "feature_names_in_", None)
        self.names = [str(n) for n in names] if names is not None else None
        if (ckpt / "feature_names.json").is_file():  # written by hpsearch.model.pyfunc.save_pyfunc
            self.names = json.loads((ckpt / "feature_names.json").read_text())

    # The hint np.ndarray is one MLflow infers no schema from, so it enforces none and asks for
    # none (no hint at all makes it warn on every save). The input may be any of the forms
    # above: `features` makes the array.
    def predict(self, context: Any, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        from hpsearch.model.frames import prediction_frame

        columns = getattr(self.model, "columns_", None)  # a model of a table: its own rows
        if columns and isinstance(model_input, pd.DataFrame):
            model_input = _table_features(columns, model_input)
        return prediction_frame(self.model, features(model_input, self.model.n_features_in_,
                                                     self.names))



def _table_features(columns: dict[str, Any], frame: pd.DataFrame) -> Any:
    """A DataFrame of the table's own columns as the model's features (its column plan)."""
    from hpsearch.errors import DataError
    from hpsearch.model.columns import table_features

    try:
        return table_features(columns, frame)
    except DataError as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(HpsearchModel())
