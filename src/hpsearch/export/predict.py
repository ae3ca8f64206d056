"""``hpsearch predict DIR input.csv``: labels and probabilities of an exported model (or a
checkpoint) for a CSV of raw features, with or without a header row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..model.checkpoint import load
from ..model.columns import check_numeric, model_columns, table_features
from ..model.frames import prediction_frame
from ..spec import tables


def predict_csv(model_dir: str | Path, csv_path: str | Path, out: str | Path | None,
                sep: str = ",") -> Path:
    """Predicted labels and probabilities for every row of a table of raw features (a CSV,
    or for a model of a table, the table's own columns in a CSV or parquet file)."""
    model = load(model_dir)
    path = Path(csv_path)
    columns = model_columns(model)
    if columns:  # a model of a table: its rows, text categories and gaps included
        x = table_features(columns, tables.read_table(path, sep), str(path))
        return _write(prediction_frame(model, x), path, out)
    frame = tables.read_csv(path, header_optional=True)
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(frame.columns) == list(range(frame.shape[1])):
        frame.columns = list(names)  # no header row: the features in the model's order
    if frame.shape[1] != model.n_features_in_:
        raise DataError(f"{path}: {frame.shape[1]} columns, the model takes "
                        f"{model.n_features_in_} features")
    if names is not None and list(frame.columns) != list(names):
        raise DataError(f"{path}: columns differ from the model's features")
    check_numeric(frame, path)
    return _write(prediction_frame(model, frame.to_numpy(dtype=np.float64)), path, out)


def _write(result: Any, path: Path, out: str | Path | None) -> Path:
    target = Path(out) if out else path.with_name(path.stem + ".predictions.csv")
    result.to_csv(target, index=False, float_format="%.6g")
    return target
