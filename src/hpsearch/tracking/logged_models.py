"""The tracker's model half: kept checkpoints as MLflow 3 logged models (logged, found, deleted,
downloaded), the export's registration, and the dataset inputs of a trial run. A mixin of
tracking.tracker.Tracker, so that the tracker stays the one object with an MLflow client."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.artifacts
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelOutput, Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from ..errors import StorageError, first_line, mask_uri


def now_ms() -> int:
    """Milliseconds since the epoch, MLflow's timestamps."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SplitInput:
    """One split of the data a trial saw, as an MLflow dataset input (no copy of the data):
    the UI's Dataset column and the run page show its name, context and digest."""

    context: str  # training, validation or test
    name: str  # the dataset's name
    digest: str  # from the split fingerprint
    source: str  # where the data came from
    rows: int

    def as_input(self) -> DatasetInput:
        source_type = "http" if self.source.startswith(("http://", "https://")) else "local"
        dataset = Dataset(name=self.name, digest=self.digest, source_type=source_type,
                          source=json.dumps({"uri": self.source}),
                          profile=json.dumps({"num_rows": self.rows}))
        return DatasetInput(dataset, [InputTag("mlflow.data.context", self.context)])



class ModelStore:
    """Model methods of Tracker (which provides ``client``, ``uri`` and ``_call``)."""

    client: Any
    uri: str

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def trial_run_id(self, study: str | None, number: int) -> str | None:
        raise NotImplementedError

    def register_model(self, name: str, path: Path, number: int, value: float, maximize: bool,
                       test_accuracy: float, tags: dict[str, str] | None = None
                       ) -> tuple[str | None, str | None, str]:
        """Register the exported model DIR ``path`` of trial ``number`` under ``name`` (with
        ``tags`` on the version); the alias ``champion`` moves to it when its validation
        ``value`` beats the champion's. Returns (version, champion version, a sentence saying
        what happened)."""
        client = self.client
        try:
            try:
                client.get_registered_model(name)
            except MlflowException:
                client.create_registered_model(name, description=f"hpsearch sweep {name}")
            run_id = self.trial_run_id(name, number)
            # The registered version points at a copy of its own in the trial run's artifacts,
            # not at DIR: a later export to the same DIR, or of the same trial (its refit, an
            # ensemble it leads), must not change what an existing version serves.
            source = str(path.resolve())
            if run_id:
                where = f"exports/{uuid.uuid4().hex[:12]}"
                client.log_artifacts(run_id, str(path), where)
                source = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + where
            mv = client.create_model_version(
                name, source=source, run_id=run_id,
                tags={"optuna.trial.number": str(number), "objective_value": str(value),
                      "test_accuracy": f"{test_accuracy:.6f}", **(tags or {})})
            try:
                current = client.get_model_version_by_alias(name, "champion")
                best = float(current.tags.get("objective_value", "nan"))
            except MlflowException:
                current, best = None, float("nan")
            if current is None or best != best or (value > best if maximize else value < best):
                client.set_registered_model_alias(name, "champion", mv.version)
                return mv.version, mv.version, (f"registered as {name} version {mv.version}, "
                                                f"alias champion")
            return mv.version, current.version, (
                f"registered as {name} version {mv.version}; champion stays version "
                f"{current.version} (validation {best:.4f} is not beaten)")
        except MlflowException as exc:
            raise StorageError(f"model registry {mask_uri(self.uri)}: {first_line(exc)}") from None

    # -- kept checkpoints as MLflow 3 logged models --------------------------------------------
    def log_trial_model(self, exp_id: str, run_id: str, study: str, number: int, step: int,
                        metrics: dict[str, tuple[float, SplitInput | None]],
                        build: Callable[[Path, Model], None]) -> str:
        """Log trial ``number``'s best-epoch checkpoint as a logged model of its run: created,
        written by ``build(dir, mlflow_model)`` into a temporary directory, uploaded to the
        store's artifact location, linked to the run at ``step`` (the best epoch) with the
        ``metrics`` of that epoch (value, and the split it was measured on). The model id."""
        c = self.client
        lm = self._call("creating the logged model", c.create_logged_model, exp_id,
                        name=f"{study}-trial-{number}", source_run_id=run_id,
                        tags={"optuna.study": study, "optuna.trial.number": str(number),
                              "hpsearch.role": "checkpoint", "hpsearch.best_epoch": str(step)},
                        model_type="hpsearch-mlp")
        ts = now_ms()
        rows = [Metric(k, v, ts, step, model_id=lm.model_id,
                       dataset_name=split.name if split else None,
                       dataset_digest=split.digest if split else None)
                for k, (v, split) in metrics.items()]
        try:
            with tempfile.TemporaryDirectory(prefix="hpsearch-model-") as tmp:
                where = Path(tmp) / "model"
                build(where, Model(artifact_path=lm.artifact_location, model_uuid=lm.model_id,
                                   run_id=run_id, model_id=lm.model_id))
                c.log_model_artifacts(lm.model_id, str(where))
            c.finalize_logged_model(lm.model_id, "READY")
            c.log_outputs(run_id, [LoggedModelOutput(lm.model_id, step)])
            c.log_batch(run_id, metrics=rows)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                # another worker's better trial pushed this one out of the top k meanwhile,
                # and its retention deleted the model: nothing left to do
                return ""
            raise StorageError(f"tracking store {mask_uri(self.uri)}: logging the model of "
                               f"trial {number} failed: {first_line(exc)}") from None
        return str(lm.model_id)

    def trial_models(self, study: str) -> dict[int, str]:
        """The logged models of ``study``'s kept checkpoints: trial number -> model id."""
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, study)
        if exp is None:
            return {}
        found = self._call("searching logged models", self.client.search_logged_models,
                           [exp.experiment_id], f"tags.`optuna.study` = '{study}'",
                           max_results=1000)
        return {int(m.tags["optuna.trial.number"]): m.model_id for m in found
                if m.tags.get("hpsearch.role") == "checkpoint"}

    def delete_trial_models(self, study: str, numbers: Iterable[int]) -> list[int]:
        """Delete the logged models of trials ``numbers`` (retention); idempotent."""
        models, deleted = self.trial_models(study), []
        for n in numbers:
            if n in models:
                try:
                    self.client.delete_logged_model(models[n])
                except MlflowException:  # another worker deleted it first
                    pass
                deleted.append(n)
        return deleted

    def download_trial_model(self, study: str, number: int, dst: Path) -> Path | None:
        """Trial ``number``'s logged model downloaded to ``dst`` (None when it has none)."""
        model_id = self.trial_models(study).get(number)
        if model_id is None:
            return None
        model = self._call("reading the logged model", self.client.get_logged_model, model_id)
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self._call("downloading the logged model",
                               mlflow.artifacts.download_artifacts,
                               artifact_uri=model.artifact_location, dst_path=str(dst)))


class NullModelStore:
    """Tracking off: no models, nothing registered."""

    def register_model(self, *args: Any, **kwargs: Any) -> tuple[str | None, str | None, str]:
        return None, None, "not registered (tracking is off)"

    def log_trial_model(self, *args: Any, **kwargs: Any) -> str:
        return ""

    def trial_models(self, study: str) -> dict[int, str]:
        return {}

    def delete_trial_models(self, study: str, numbers: Iterable[int]) -> list[int]:
        return []

    def download_trial_model(self, study: str, number: int, dst: Path) -> Path | None:
        return None
