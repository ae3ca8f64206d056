"""The MLflow model of an exported hpsearch checkpoint ("models from code": MLflow loads this
file as source, so nothing is unpickled). Input: a DataFrame of raw features in the dataset's
column order; output: the predicted label and one probability column per class."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class HpsearchModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from hpsearch.checkpoint import load_model

        self.model = load_model(context.artifacts["checkpoint"])

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        from hpsearch.estimator import prediction_frame

        x = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        return prediction_frame(self.model, x)

mlflow.models.set_model(HpsearchModel())
