"""MLflow layout: one experiment per sweep, one parent run per study, one child run per trial.

Driven through ``MlflowClient`` with explicit run ids (the fluent API's active-run stack is per
thread and per process). Per-epoch metrics are buffered and sent with ``log_batch`` at most every
``flush_seconds`` (and at the end of the trial), so tracking never costs a round trip per epoch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import (
    Metric,
    Param,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .._version import __version__
from ..errors import (
    StorageError,
    TrackingOutage,
    describe,
    first_line,
    is_tracking_outage,
    mask_uri,
)
from .backend import check_scheme, prepare_backend, resolve_tracking_uri, versions
from .logged_models import ModelStore, NullModelStore, SplitInput, now_ms

EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                 "test_accuracy", "learning_rate")
# MLflow run status for each Optuna trial state.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED",
              "INTERRUPTED": "KILLED"}


class Tracker(ModelStore):
    """Thin layer over MlflowClient with hpsearch's run layout."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = prepare_backend(resolve_tracking_uri(uri))
        self.client = MlflowClient(tracking_uri=self.uri)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            kind = TrackingOutage if is_tracking_outage(exc) else StorageError
            raise kind(f"tracking store {mask_uri(self.uri)}: {what} failed: "
                       f"{describe(exc) or first_line(exc)}") from None

    # -- experiment and parent run -----------------------------------------------------------
    def experiment(self, name: str, about: dict[str, str] | None = None) -> str:
        """The experiment named ``name``, created on first use (artifacts under mlruns/ for the
        embedded store); ``about``: tags that say what it is (dataset, objective, spec, version;
        ``mlflow.note.content`` is the description the UI shows), set on every sweep."""
        exp_id = self._experiment(name)
        if about:
            for key, value in about.items():
                self._call("describing the experiment", self.client.set_experiment_tag, exp_id,
                           key, value)
        return exp_id

    def _experiment(self, name: str) -> str:
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self._call("restoring the experiment", self.client.restore_experiment,
                           exp.experiment_id)
            return str(exp.experiment_id)
        location = None
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///"):]).resolve()
            location = (db.parent / "artifacts" / name).as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:
            exp = self._call("reading the experiment", self.client.get_experiment_by_name, name)
            if exp is None:
                raise
            return str(exp.experiment_id)  # another process created it first

    def check_run(self, run_id: str) -> None:
        """Read the run once: a tracking store that is down, refuses us or lacks the run fails
        here in one line, before any trial starts (trial runs are written in the background)."""
        self._call("reading the sweep run", self.client.get_run, run_id)

    def run_exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def create_parent(self, exp_id: str, study: str, spec_path: str, spec_text: str,
                      settings: dict[str, Any], commit: str) -> str:
        tags = {"hpsearch.role": "sweep", "optuna.study": study,
                "mlflow.source.git.commit": commit, "hpsearch.version": __version__}
        run = self._call("creating the sweep run", self.client.create_run, exp_id,
                         run_name=f"sweep-{study}", tags=tags)
        run_id = run.info.run_id
        params = [Param(f"version.{k}", v) for k, v in versions().items()]
        params += [Param(k, str(v)[:6000]) for k, v in settings.items()]
        self._call("logging sweep settings", self.client.log_batch, run_id, params=params)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / Path(spec_path).name
            copy.write_text(spec_text)
            self._call("logging the spec", self.client.log_artifact, run_id, str(copy), "spec")
        return run_id

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self._call(f"logging {Path(path).name}", self.client.log_artifact, run_id, str(path),
                   artifact_path)

    def set_status(self, run_id: str, status: str) -> None:
        if status == "RUNNING":
            self._call("reopening the sweep run", self.client.update_run, run_id, "RUNNING")
        else:
            self._call("closing the run", self.client.set_terminated, run_id, status)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._call("tagging a run", self.client.log_batch, run_id, tags=_tags(tags))

    def trial_run_id(self, study: str | None, number: int) -> str | None:
        """The run of trial ``number`` of ``study`` (any worker's), found by its tags."""
        if study is None:
            return None
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, study)
        if exp is None:
            return None
        runs = self._call("searching runs", self.client.search_runs, [exp.experiment_id],
                          f"tags.`optuna.trial.number` = '{number}' and "
                          f"tags.`hpsearch.role` = 'trial'", max_results=5)
        return runs[0].info.run_id if runs else None

    def trial_run_ids(self, study: str) -> dict[int, str]:
        """Every trial run of ``study``, by trial number (the latest run where a trial was
        retried under the same number), read a page of runs at a time."""
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, study)
        if exp is None:
            return {}
        out: dict[int, str] = {}
        token = None
        while True:
            page = self._call("searching runs", self.client.search_runs, [exp.experiment_id],
                              "tags.`hpsearch.role` = 'trial'", max_results=1000,
                              order_by=["attributes.start_time ASC"], page_token=token)
            for run in page:
                number = run.data.tags.get("optuna.trial.number")
                if number is not None and number.isdigit():
                    out[int(number)] = run.info.run_id
            token = page.token
            if not token:
                return out

    def close_lost_trial(self, study: str, number: int, reason: str) -> str | None:
        """Close the run of a trial whose worker died (or lost its storage) as KILLED, with the
        reason; the run id, or None when the trial never got a run."""
        run_id = self.trial_run_id(study, number)
        if run_id:
            self._call("closing a lost trial's run", self.client.log_batch, run_id, tags=[
                RunTag("optuna.trial.state", "FAIL"), RunTag("optuna.trial.reason", reason)])
            self.set_status(run_id, "KILLED")
        return run_id

    def log_best(self, parent_id: str, trial_number: int, run_id: str, value: float,
                 metric: str, extra: dict[str, float]) -> None:
        ts = now_ms()
        metrics = [Metric(f"best_{metric}", value, ts, trial_number)]
        metrics += [Metric(f"best_trial.{k}", v, ts, trial_number) for k, v in extra.items()]
        tags = [RunTag("best_trial", str(trial_number)), RunTag("best_run_id", run_id)]
        self._call("logging the best trial", self.client.log_batch, parent_id, metrics=metrics,
                   tags=tags)

    def trial_history(self, run_id: str) -> list[dict[str, float]]:
        """A trial run's per-epoch history (its history.csv artifact); [] when it has none."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run_id, "history.csv", tmp)
            except Exception:  # noqa: BLE001 - a trial without curves is shown without
                return []
            return list(pd.read_csv(path).to_dict("records"))

    def close_orphan_runs(self, study: str, states: dict[int, str]) -> list[tuple[int, str, str]]:
        """Close the trial runs left RUNNING whose trials Optuna has finished (``states``:
        trial number -> Optuna state name), with that state. Returns (number, run id, state)."""
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, study)
        if exp is None:
            return []
        runs = self._call("searching runs", self.client.search_runs, [exp.experiment_id],
                          "tags.`hpsearch.role` = 'trial' and attributes.status = 'RUNNING'",
                          max_results=1000)
        closed = []
        for run in runs:
            number = int(run.data.tags.get("optuna.trial.number", -1))
            state = states.get(number)
            if state is None or state in ("RUNNING", "WAITING"):
                continue
            self.set_tags(run.info.run_id, {
                "optuna.trial.state": state,
                "hpsearch.recovered": "run left open by a worker that stopped; closed by "
                                      "`hpsearch recover` with Optuna's state"})
            self.set_status(run.info.run_id, RUN_STATUS.get(state, "KILLED"))
            closed.append((number, run.info.run_id, state))
        return closed

    # -- trial runs -------------------------------------------------------------------------------
    def start_trial(self, exp_id: str, parent_id: str, study: str, number: int,
                    tags: dict[str, str]) -> str:
        """Create trial ``number``'s run, a child of ``parent_id``; its id."""
        all_tags = {"mlflow.parentRunId": parent_id, "hpsearch.role": "trial",
                    "optuna.study": study, "optuna.trial.number": str(number),
                    "optuna.trial.state": "RUNNING", **tags}
        run = self._call("creating the trial run", self.client.create_run, exp_id,
                         run_name=f"trial-{number}", tags=all_tags)
        return str(run.info.run_id)

    def describe_trial(self, run_id: str, params: dict[str, Any],
                       inputs: list[SplitInput] | None = None) -> None:
        """A trial run's parameters and its three splits as dataset inputs (both idempotent:
        a write retried after an outage logs them again harmlessly)."""
        plist = [Param(k, str(v)) for k, v in sorted(params.items())]
        for start in range(0, len(plist), 90):  # log_batch takes up to 100 params per call
            self._call("logging parameters", self.client.log_batch, run_id,
                       params=plist[start:start + 90])
        if inputs:
            datasets = [split.as_input() for split in inputs]
            for attempt in range(3):
                try:
                    self.client.log_inputs(run_id, datasets=datasets)
                    break
                except Exception as exc:
                    # Two workers' first trials create the same dataset at once and MLflow's
                    # get-or-create loses the race on a unique constraint: the next try finds it.
                    if attempt == 2 or "unique" not in str(exc).lower():
                        self._call("logging the dataset inputs", _raise, exc)

    def log_values(self, run_id: str, values: dict[str, float]) -> None:
        """Summary metrics of a run (step 0), e.g. the parent run's ``noise_floor``."""
        self.log_metrics(run_id, [Metric(k, float(v), now_ms(), 0) for k, v in values.items()])

    def log_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        for start in range(0, len(metrics), 900):  # up to 1000 metrics per call
            self._call("logging metrics", self.client.log_batch, run_id,
                       metrics=metrics[start:start + 900])

    def finish_trial(self, run_id: str, state: str, summary: dict[str, float],
                     tags: dict[str, str], files: Path | None = None,
                     rows: list[Metric] | None = None) -> None:
        """Close a trial's run: its last per-epoch ``rows``, summary metrics and tags in one
        batch (MLflow takes 1,000 metrics a call), the files of directory ``files`` in one
        upload, its status."""
        ts = now_ms()
        metrics = [Metric(k, float(v), ts, 0) for k, v in summary.items()]
        rows = list(rows or [])
        if len(rows) + len(metrics) > 900:
            self.log_metrics(run_id, rows)
            rows = []
        metrics = rows + metrics
        tag_list = [RunTag("optuna.trial.state", "FAIL" if state == "INTERRUPTED" else state)]
        tag_list += _tags(tags)
        self._call("logging the trial summary", self.client.log_batch, run_id, metrics=metrics,
                   tags=tag_list)
        if files is not None:
            self._call("logging the trial's files", self.client.log_artifacts, run_id,
                       str(files))
        self._call("closing the trial run", self.client.set_terminated, run_id, RUN_STATUS[state])


def split_inputs(splits: Any) -> list[SplitInput]:
    """The three splits of ``splits`` (a datasets.Splits) as dataset inputs."""
    parts = (("training", splits.train), ("validation", splits.val), ("test", splits.test))
    return [SplitInput(context, f"{splits.name}-{context}",
                       f"{splits.fingerprint[:12]}-{context[:5]}", splits.source or splits.name,
                       len(part[1])) for context, part in parts]


def _raise(exc: BaseException) -> None:
    raise exc


def _tags(tags: dict[str, str]) -> list[RunTag]:
    return [RunTag(k, v[:5000]) for k, v in tags.items()]  # MLflow's limit on a tag's value


class NullTracker(NullModelStore, Tracker):
    """Tracking switched off (``--tracking-uri none``): same calls, nothing recorded. Used to
    measure what tracking costs, and for dry runs."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = "none"
        self._runs = 0

    def _new_id(self) -> str:
        self._runs += 1
        return f"none-{os.getpid()}-{self._runs}"

    def experiment(self, name: str, about: dict[str, str] | None = None) -> str:
        return "none"

    def check_run(self, run_id: str) -> None:
        pass

    def run_exists(self, run_id: str) -> bool:
        return run_id.startswith("none-")

    def create_parent(self, *args: Any, **kwargs: Any) -> str:
        return self._new_id()

    def set_status(self, run_id: str, status: str) -> None:
        pass

    def log_best(self, *args: Any, **kwargs: Any) -> None:
        pass

    def describe_trial(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start_trial(self, *args: Any, **kwargs: Any) -> str:
        return self._new_id()

    def trial_run_id(self, study: str | None, number: int) -> str | None:
        return None

    def trial_run_ids(self, study: str) -> dict[int, str]:
        return {}

    def close_lost_trial(self, study: str, number: int, reason: str) -> str | None:
        return None

    def log_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        pass

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        pass

    def finish_trial(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_artifact(self, *args: Any, **kwargs: Any) -> None:
        pass

    def trial_history(self, run_id: str) -> list[dict[str, float]]:
        return []

    def close_orphan_runs(self, study: str, states: dict[int, str]) -> list[tuple[int, str, str]]:
        return []


def make_tracker(uri: str | None = None) -> Tracker:
    """A Tracker for ``uri`` (resolved as documented); ``none`` switches tracking off."""
    uri = resolve_tracking_uri(uri)
    if uri == "none":
        return NullTracker()
    check_scheme(uri)
    return Tracker(uri)
