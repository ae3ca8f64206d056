"""``hpsearch.sweep(X, y)``: the same sweep as ``hpsearch sweep DATA --target COLUMN``, from a
notebook, on arrays or a DataFrame.

The data is written once to ``data/NAME.parquet`` and its spec to ``sweeps/NAME.yaml`` (as
``hpsearch init`` writes it), so every command works on the study afterwards (``hpsearch status
NAME``, ``report``, ``export``, the MLflow UI) and calling again with the same data resumes it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, SpecError
from .export.export import ExportResult, export_model, find_checkpoint
from .model.checkpoint import load_model
from .search.sweep import run_sweep
from .spec import tables
from .spec.config import check_study_name
from .spec.init import init_spec
from .study.store import join_storage_study, resolve_storage_url, study_spec
from .tracking.tracker import make_tracker


@dataclass
class Sweep:
    """What ``sweep`` returns: the study, its best trial and model, and where MLflow has it."""

    name: str
    study: Any  # the optuna.Study
    best_trial: int | None
    best_value: float | None
    best_model: Any  # the best trial's fitted MLPClassifier (its best epoch's weights)
    parent_run_id: str  # the sweep's MLflow run
    experiment_id: str
    run_ids: dict[int, str]  # trial number -> its MLflow run
    spec_path: Path
    storage_url: str
    tracking_uri: str

    def export(self, out: str | Path | None = None, register: bool = True,
               **options: Any) -> ExportResult:
        """``hpsearch export NAME``: the best model (or ``ensemble=K``, ``reseed=R``,
        ``refit=True``) as an MLflow model, its test accuracy computed once."""
        return export_model(self.name, out=out, storage_url=self.storage_url,
                            tracking_uri=self.tracking_uri, register=register, **options)


def sweep(X: Any, y: Any = None, *, target: str | None = None, trials: int = 30,
          name: str | None = None, timeout: float | None = None, workers: int = 1,
          drop: Sequence[str] = (), storage: str | None = None, tracking_uri: str | None = None,
          echo: Callable[[str], None] | None = print) -> Sweep:
    """Sweep an MLP classifier over ``X`` (a 2-D array or a DataFrame) and labels ``y`` (or the
    column ``target`` of the DataFrame ``X``) for ``trials`` trials; the data is checked as
    ``hpsearch init`` checks a table (text columns one-hot encoded, missing numbers filled,
    ``drop`` left out). Progress goes to ``echo`` (None: silent)."""
    frame, target = _frame(X, y, target)
    # the checks `hpsearch init` makes, before anything is written, in Python's words
    tables.inspect(frame, target, "X", tuple(drop), lambda cols: f"drop={cols!r}")
    digest = _digest(frame)
    name = check_study_name(name) if name else f"sweep-{digest[:8]}"
    data = Path("data") / f"{name}.parquet"
    if data.exists():
        import pandas as pd

        if _digest(pd.read_parquet(data)) != digest:
            raise SpecError(f"study {name!r} was swept on other data ({data} differs); pass "
                            f"another name, or remove {data} and the study")
    else:
        data.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(data, index=False)
    spec_path = Path("sweeps") / f"{name}.yaml"
    if not spec_path.exists():
        init_spec(data, target, spec_path, tuple(drop), name=name)
    say = echo or (lambda _line: None)
    result = run_sweep(spec_path, trials, timeout, workers, storage, tracking_uri, name,
                       echo=say)
    study = join_storage_study(name, storage)
    tracker = make_tracker(result.tracking_uri)
    best_model = None
    if result.best_number is not None:
        with tempfile.TemporaryDirectory(prefix="hpsearch-fetch-") as fetched:
            best_model = load_model(find_checkpoint(study, study_spec(study), result.best_number,
                                                    result.tracking_uri, Path(fetched)))
    return Sweep(name, study, result.best_number, result.best_value, best_model,
                 result.parent_run_id, result.experiment_id, tracker.trial_run_ids(name),
                 spec_path, resolve_storage_url(storage), result.tracking_uri)


def _frame(X: Any, y: Any, target: str | None) -> tuple[Any, str]:
    """One DataFrame with the features and the labels, and the labels' column."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
    else:
        x = np.asarray(X)
        if x.ndim != 2:
            raise DataError(f"X: a 2-D array (samples, features) or a DataFrame, not shape "
                            f"{x.shape}")
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    if y is None:
        if target is None:
            raise DataError("y: give the labels, or target=COLUMN of the DataFrame X")
        tables.labels(frame, target, "X")  # an unknown column: named, with the columns
        return frame, target
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(frame):
        raise DataError(f"y: {len(frame)} labels, one per row of X, not shape {labels.shape}")
    target = target or str(getattr(y, "name", None) or "label")
    if target in frame.columns:
        raise DataError(f"y: X already has a column {target!r}; pass target=ANOTHER_NAME")
    frame[target] = labels
    return frame, target


def _digest(frame: Any) -> str:
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + "|".join(frame.columns).encode()).hexdigest()
