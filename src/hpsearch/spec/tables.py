"""Tables users bring (a CSV or parquet file, or a DataFrame): reading them, their target's class
labels checked, and ``inspect``, which proposes the column plan that makes their features
(model.columns: columns dropped, categorical columns one-hot encoded, missing numbers filled) and
says why, for ``hpsearch init``.

Every problem is one ``DataError`` line naming the file and the column.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, first_line
from ..model.columns import ColumnPlan, numeric_column

PARQUET = (".parquet", ".pq")
# A text column with at most this many distinct values is a category (one-hot encoded); more, and
# it is an identifier or free text, which an MLP cannot use as such.
MAX_CATEGORIES = 50
# A target is a set of class labels: at most this many, and at most half the rows distinct.
MAX_CLASSES = 200


def is_table(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".csv", ".tsv", ".txt", *PARQUET)


def read_table(path: str | Path, sep: str = ",") -> Any:
    """A CSV (``sep``-separated) or parquet file as a DataFrame; DataError naming the file when
    it is missing, empty, unreadable or (CSV) looks separated by something else."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'parquet' if path.suffix in PARQUET else 'CSV'} file not found")
    if path.suffix.lower() in PARQUET:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own types for a file that is not parquet
            raise DataError(f"{path}: not a readable parquet file ({first_line(exc)})") from None
    else:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty")
        try:
            frame = pd.read_csv(path, sep=sep)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({first_line(exc)})") from None
        if frame.shape[1] == 1 and sep == ",":
            header = str(frame.columns[0])
            other = next((s for s in (";", "\t", "|") if s in header), None)
            if other is not None:
                shown = {"\t": "\\t"}.get(other, other)
                raise DataError(f"{path}: one column read, and its header holds {shown!r}: the "
                                f"file looks {shown!r}-separated; pass --sep '{shown}' (spec: "
                                f"data.sep)")
    if frame.shape[0] == 0:
        raise DataError(f"{path}: no rows (a header only)")
    return frame


def read_csv(path: str | Path, header_optional: bool = False) -> Any:
    """A CSV file as a DataFrame; DataError naming the file when missing or unreadable. With
    ``header_optional`` a first row of numbers only is data, not a header (the columns are then
    numbered 0, 1, ...), unless it is exactly 0, 1, ..., n - 1: the header pandas writes for an
    array's columns."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        if header_optional:
            first = pd.to_numeric(pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0],
                                  errors="coerce")
            if first.notna().all() and list(first) != list(range(len(first))):
                return pd.read_csv(path, header=None)
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({first_line(exc)})") from None


def labels(frame: Any, target: str, path: str | Path) -> np.ndarray:
    """The class labels of column ``target``; DataError unless it is there, has no missing
    value, holds at least two classes and looks like classes, not a measured quantity."""
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        more = f" and {frame.shape[1] - 20} more" if frame.shape[1] > 20 else ""
        close = difflib.get_close_matches(target, list(map(str, frame.columns)), n=1,
                                          cutoff=0.6) or [c for c in map(str, frame.columns)
                                                          if c.lower() == target.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"{path}: unknown target column {target!r}{hint}; the columns are "
                        f"{shown}{more}")
    y = frame[target]
    if y.isna().any():
        line = int(y.index[y.isna()][0]) + 2  # +1 header, +1 one-based
        raise DataError(f"{path}: target column {target!r} has {int(y.isna().sum())} missing "
                        f"value(s) (first in line {line})")
    values = y.to_numpy()
    if values.dtype.kind == "f":
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise DataError(f"{path}: target column {target!r} holds non-integer numbers "
                            f"(e.g. {next(v for v in values if v % 1):g}): hpsearch trains "
                            f"classifiers, and a class label is a name or a whole number")
        values = values.astype(np.int64)
    elif values.dtype.kind in "OUSb":
        values = values.astype(str)
    n_classes = len(np.unique(values))
    if n_classes < 2:
        raise DataError(f"{path}: target column {target!r} has {n_classes} class "
                        f"({str(values[0])!r} in every row); a classifier needs at least 2")
    if n_classes > MAX_CLASSES or (len(values) >= 20 and n_classes > len(values) / 2):
        raise DataError(f"{path}: target column {target!r} has {n_classes} distinct values in "
                        f"{len(values)} rows: not class labels (a measured quantity or an "
                        f"identifier?)")
    return values


def cli_drop(columns: list[str]) -> str:
    """How to drop columns, on the command line."""
    return " ".join(f"--drop {c}" for c in columns)


def inspect(frame: Any, target: str, path: str | Path, drop: tuple[str, ...] = (),
            how_to_drop: Callable[[list[str]], str] = cli_drop) -> tuple[ColumnPlan, list[str]]:
    """A plan for ``frame``'s feature columns, and one line per decision saying why. DataError
    for a column no plan can use: text with more than MAX_CATEGORIES distinct values (the line
    says to drop it)."""
    labels(frame, target, path)
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise DataError(f"{path}: no column {unknown[0]!r} to drop")
    dropped, one_hot, fill, notes, text = list(drop), {}, {}, [], []
    notes += [f"drop {c!r}: as asked" for c in drop]
    for col in frame.columns:
        if col == target or col in drop:
            continue
        values = frame[col]
        present = values.dropna()
        distinct = present.nunique()
        if distinct <= 1:
            dropped.append(col)
            notes.append(f"drop {col!r}: {'empty' if not len(present) else 'constant'} "
                         f"(carries no information)")
        elif numeric_column(values):
            if _row_index(values):
                dropped.append(col)
                notes.append(f"drop {col!r}: a row number (0, 1, 2, ... or 1, 2, 3, ...)")
            elif values.isna().any():
                fill[col] = float(f"{present.median():.6g}")
                notes.append(f"fill {col!r}: {int(values.isna().sum())} missing value(s) "
                             f"take the median {fill[col]:g}")
        elif distinct <= MAX_CATEGORIES:
            categories = tuple(sorted(map(str, present.unique())))
            one_hot[col] = categories
            notes.append(f"one-hot {col!r}: {distinct} categories "
                         f"({', '.join(categories[:6])}{', ...' if distinct > 6 else ''})"
                         + (f"; {int(values.isna().sum())} missing: all zeros"
                            if values.isna().any() else ""))
        else:
            text.append(f"{col!r} ({distinct} distinct)")
            dropped.append(col)
    if text:
        names = [t.split(" (")[0].strip("'") for t in text]
        raise DataError(f"{path}: text with more distinct values than categories (at most "
                        f"{MAX_CATEGORIES}) in {len(frame)} rows, an identifier or free text: "
                        f"column{'s' if len(text) > 1 else ''} {', '.join(text)}; drop "
                        f"{'them' if len(text) > 1 else 'it'} with {how_to_drop(names)}")
    features = [c for c in frame.columns if c != target and c not in dropped]
    if not features:
        raise DataError(f"{path}: no feature columns left besides the target {target!r}")
    return ColumnPlan(tuple(dropped), one_hot, fill), notes


def _row_index(values: Any) -> bool:
    """Whole numbers counting the rows: 0, 1, 2, ... or 1, 2, 3, ..."""
    if values.isna().any() or values.dtype.kind not in "iu":
        return False
    v = values.to_numpy()
    return len(v) > 2 and bool(np.all(np.diff(v) == 1)) and int(v[0]) in (0, 1)
