"""How a table's rows become a model's features: the column plan (columns dropped, categorical
columns one-hot encoded, missing numbers filled) and ``apply``, which runs it. The same code makes
the training features (a spec's ``data`` section) and a model's inputs (``table_features``, with
the plan the model keeps in its checkpoint), so a model answers rows with the table's own
columns, loaded by hpsearch, by MLflow or served.

Every problem is one ``DataError`` line naming the file (or input) and the column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class ColumnPlan:
    """How a table becomes features: ``drop`` these columns, one-hot encode ``one_hot`` (column
    -> its categories, in order; a value outside them, or missing, encodes as all zeros), fill
    missing numbers of ``fill`` (column -> value). Every other column must be numeric."""

    drop: tuple[str, ...] = ()
    one_hot: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fill: dict[str, float] = field(default_factory=dict)

    def as_spec(self) -> dict[str, Any]:
        """The plan as the keys of a spec's ``data`` section (empty parts left out)."""
        out: dict[str, Any] = {}
        if self.drop:
            out["drop"] = list(self.drop)
        if self.one_hot:
            out["one_hot"] = {c: list(v) for c, v in self.one_hot.items()}
        if self.fill:
            out["fill"] = dict(self.fill)
        return out


def plan_json(plan: ColumnPlan | None, target: str,
              features: list[str] | None = None) -> dict[str, Any]:
    """What a model of a table keeps of it (``columns_``, in its checkpoint): the target column,
    the plan and the features it makes, so that the table's own rows are made into features
    the same way wherever the model goes."""
    return {"target": target, **(plan or ColumnPlan()).as_spec(), "features": features or []}


def model_columns(model: Any) -> dict[str, Any] | None:
    """The table a model (or an ensemble's members) was trained on, if it was."""
    members = getattr(model, "members", None)
    return getattr(members[0][0] if members else model, "columns_", None)


def table_features(columns: dict[str, Any] | None, X: Any, where: str = "input") -> Any:
    """``X`` as a model of a table takes it: a DataFrame of the table's own columns made into
    its features by the plan (one with the features' names already, or an array, unchanged)."""
    if not columns or not hasattr(X, "columns"):
        return X
    features = columns.get("features") or []
    if features and set(features) <= set(map(str, X.columns)):
        return X[features].to_numpy()
    x, _ = apply(X, plan_from_json(columns), where, columns.get("target"))
    return x


def check_numeric(frame: Any, path: str | Path) -> None:
    """DataError naming the first column that is not numeric or has missing values."""
    import pandas as pd

    for col in frame.columns:
        values = frame[col]
        if not numeric_column(values):
            numeric = pd.to_numeric(values, errors="coerce")
            bad = values[numeric.isna() & values.notna()]
            example = repr(bad.iloc[0]) if len(bad) else "?"
            raise DataError(f"{path}: column {col!r} is not numeric (e.g. {example} in line "
                            f"{int(bad.index[0]) + 2 if len(bad) else '?'})")
        if values.isna().any():
            row = int(values.index[values.isna()][0]) + 2  # +1 header, +1 one-based
            raise DataError(f"{path}: column {col!r} has {int(values.isna().sum())} missing "
                            f"value(s) (first in line {row})")


def numeric_column(values: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def apply(frame: Any, plan: ColumnPlan | None, path: str | Path,
          target: str | None = None) -> tuple[np.ndarray, list[str]]:
    """The features of ``frame`` (float32) and their names, by ``plan``: the target and the
    dropped columns left out, categories one-hot encoded, missing numbers filled; DataError
    naming the file and the column for anything else that is not a number."""
    import pandas as pd

    plan = plan or ColumnPlan()
    missing = [c for c in (*plan.one_hot, *plan.fill) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (the spec's data section names it)")
    parts, names = [], []
    for col in frame.columns:
        if col == target or col in plan.drop:
            continue
        values = frame[col]
        if col in plan.one_hot:
            text = values.astype("string")
            for category in plan.one_hot[col]:
                parts.append((text == category).fillna(False).to_numpy(dtype=np.float32))
                names.append(f"{col}={category}")
            continue
        if col in plan.fill:
            if not numeric_column(values):
                values = pd.to_numeric(values, errors="coerce")
            values = values.fillna(plan.fill[col])
        check_numeric(values.to_frame(col), path)
        parts.append(values.to_numpy(dtype=np.float32))
        names.append(str(col))
    if not parts:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    return np.column_stack(parts).astype(np.float32, copy=False), names


def plan_from_spec(drop: Any, one_hot: Any, fill: Any) -> ColumnPlan:
    """The plan of a spec's data section (already type-checked by config.py)."""
    return ColumnPlan(tuple(drop or ()),
                      {str(c): tuple(map(str, v)) for c, v in (one_hot or {}).items()},
                      {str(c): float(v) for c, v in (fill or {}).items()
                       if not math.isnan(float(v))})


def plan_from_json(columns: dict[str, Any]) -> ColumnPlan:
    """The plan of a columns.json (``plan_json``)."""
    return plan_from_spec(columns.get("drop"), columns.get("one_hot"), columns.get("fill"))
