"""A checkpoint as an MLflow model directory ("models from code": serving.py is loaded as
source, the checkpoint is an artifact, hpsearch's own code travels in ``code/``): what
``hpsearch export`` writes, and what every kept checkpoint is logged as (a logged model)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import Model, infer_signature

from .checkpoint import load_model
from .frames import output_frame, prediction_frame
from .state import stored_classes

# saving a model validates its input example by loading it back, with a progress bar each time
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # hpsearch itself: the code a model carries


def serving_features_file() -> str:
    return "feature_names.json"  # beside the checkpoint in the model's artifacts (serving.py)


# the model's code: MLflow runs it, we need not import it
SERVING = Path(__file__).resolve().with_name("serving.py")


class PyfuncTemplate:
    """The MLflow models of one sweep's checkpoints differ only in the checkpoint and in the ids
    MLmodel records: the rest (serving.py, the environment files, the signature) is written
    once, by ``save_pyfunc``, and copied for every trial after. A trial's logged model does not
    carry hpsearch's code (copying it twice per model was most of the cost): it loads where
    hpsearch is installed, as it is wherever the sweep ran; the exported model carries it."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._key: tuple[Any, ...] | None = None

    def write(self, path: Path, ckpt: Path, example: np.ndarray,
              feature_names: list[str] | None, mlflow_model: Model) -> None:
        """``save_pyfunc(path, ckpt, example, feature_names, mlflow_model, with_example=False)``
        from the template (made on first use, and again when the features change)."""
        meta = json.loads((Path(ckpt) / "checkpoint.json").read_text())
        key = (int(np.shape(example)[1]), tuple(feature_names or ()), tuple(meta["classes"]))
        if self._dir is None or key != self._key:
            if self._dir is not None:
                shutil.rmtree(self._dir.parent, ignore_errors=True)
            self._dir = Path(tempfile.mkdtemp(prefix="hpsearch-template-")) / "model"
            save_pyfunc(self._dir, ckpt, example, feature_names, Model(), with_example=False,
                        with_code=False)
            self._key = key
        shutil.copytree(self._dir, path, ignore=shutil.ignore_patterns("checkpoint"))
        shutil.copytree(ckpt, path / "artifacts" / "checkpoint")
        if feature_names:
            (path / "artifacts" / "checkpoint" / serving_features_file()).write_text(
                json.dumps(list(feature_names)))
        template = Model.load(str(self._dir / "MLmodel"))
        for field in ("artifact_path", "run_id", "model_uuid", "model_id", "utc_time_created"):
            setattr(template, field, getattr(mlflow_model, field, None))
        template.save(str(path / "MLmodel"))

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir.parent, ignore_errors=True)
            self._dir = None


def save_pyfunc(path: Path, ckpt: Path, example: np.ndarray,
                feature_names: list[str] | None, mlflow_model: Model | None = None,
                with_example: bool = True, with_code: bool = True) -> None:
    """Write the MLflow model of checkpoint ``ckpt`` to ``path``. ``example``: a few rows of
    raw features (the input example). An output schema only: serving.py takes arrays, lists and
    DataFrames (its docstring says why no input schema) and checks the feature count itself."""
    example = np.asarray(example, dtype=np.float64)
    with tempfile.TemporaryDirectory(prefix="hpsearch-ckpt-") as tmp:
        # MLflow names the artifact after its source directory: stage it as "checkpoint"
        staged = Path(tmp) / "checkpoint"
        shutil.copytree(ckpt, staged)
        if feature_names:  # serving.py takes a DataFrame's columns by these names
            (staged / serving_features_file()).write_text(json.dumps(list(feature_names)))
        if with_example:  # the export: what its model answers
            predictions = prediction_frame(load_model(staged), example)
        else:  # a trial's logged model, in the tracking writer: the same columns and dtypes,
            # without loading the model (scikit-learn's import, ~1.8 s, in a new process)
            meta = json.loads((staged / "checkpoint.json").read_text())
            predictions = output_frame(stored_classes(meta), len(example))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs: dict[str, Any] = {"mlflow_model": mlflow_model} if mlflow_model else {}
            mlflow.pyfunc.save_model(
                path=str(path), python_model=str(SERVING),
                artifacts={"checkpoint": str(staged)},
                code_paths=[str(PACKAGE_DIR)] if with_code else None,
                signature=infer_signature(None, predictions),
                # MLflow checks an input example by loading the model back and predicting:
                # the export keeps one, a trial's logged model (saved while trials train) not
                input_example=example if with_example else None,
                metadata={"n_features": int(example.shape[1]),
                          "feature_names": feature_names or []},
                pip_requirements=["numpy", "pandas", "scikit-learn",
                                  f"mlflow=={mlflow.__version__}"], **kwargs)
