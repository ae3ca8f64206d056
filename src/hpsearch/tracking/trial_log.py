"""The MLflow side of one worker's trials, written by a background thread (``AsyncTrialLog``),
and the files a finished trial's run gets (history.csv, learning_curve.png, diagnosis.json).

MLflow's own async logging (``mlflow/utils/async_logging``) batches metrics of runs that exist;
ours also creates runs, logs artifacts and closes runs in order, so it has its own queue of typed
messages."""

from __future__ import annotations

import csv
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric

from ..diagnosis.plots import learning_curves
from ..errors import StorageError, first_line
from ..model import checkpoint
from ..model.pyfunc import PyfuncTemplate
from .tracker import SplitInput, Tracker

MetricRow = tuple[str, float, int, int]  # key, value, timestamp (ms), step


# -- the messages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    number: int
    exp_id: str
    parent_id: str
    study: str
    params: dict[str, Any]
    tags: dict[str, str]
    inputs: list[SplitInput] = field(default_factory=list)


@dataclass(frozen=True)
class Metrics:
    number: int
    rows: list[MetricRow]


@dataclass(frozen=True)
class Finish:
    number: int
    state: str
    summary: dict[str, float]
    tags: dict[str, str]
    history: list[dict[str, float]]
    diagnosis: dict[str, Any] | None = None


@dataclass(frozen=True)
class Tag:
    number: int
    study: str
    tags: dict[str, str]


@dataclass(frozen=True)
class Best:
    number: int
    study: str
    parent_id: str
    value: float
    metric: str
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LogModel:
    """Log a kept checkpoint as a logged model of its trial's run. ``staged``: a copy of the
    checkpoint owned by the message (retention may delete the original meanwhile)."""
    number: int
    exp_id: str
    study: str
    staged: Path
    example: np.ndarray  # a few rows of raw features, the model's input example
    feature_names: list[str] | None
    inputs: list[SplitInput]


@dataclass(frozen=True)
class DropModels:
    """Delete the logged models of these trials (outside the top k now)."""
    study: str
    numbers: list[int]


@dataclass(frozen=True)
class Noop:
    """Opens the store (the first message of a worker, sent while its data loads)."""


Message = Start | Metrics | Finish | Tag | Best | LogModel | DropModels | Noop


class AsyncTrialLog:
    """The MLflow side of one worker's trials, written by a background thread so that training
    never waits on MLflow: its SQL store spends ~0.4 ms of Python per metric and a
    learning-curve PNG costs ~0.2 s. (A separate tracking process was tried and measured worse:
    importing MLflow in it cost ~4 s per worker, more than it saved.)

    Calls put a message on a queue and return at once; trials are named by their Optuna trial
    number. A store error is raised by the next call; ``close`` waits until everything queued has
    been written (also after Ctrl-C, so an interrupted trial's run is closed as KILLED), and then
    closes as KILLED any run started here that never got its ``finish`` (a second Ctrl-C can land
    between a trial's end and its ``finish``).
    """

    #: How long ``close`` goes on waiting for queued writes after a Ctrl-C, in seconds.
    grace_after_interrupt = 60.0
    #: How long per-epoch metrics may wait to be written (the UI's live curves lag by this).
    flush_seconds = 2.0
    #: How long a kept checkpoint waits before it is logged as a model (at the latest when the
    #: worker ends; at once if it is still in the top k after this).
    model_delay = 30.0

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()  # set when the thread has returned
        self._errors: list[str] = []
        self._run_ids: dict[int, str] = {}
        self._unfinished: set[int] = set()  # started here, no finish written yet
        self._tracker: Tracker | None = None
        self._template = PyfuncTemplate()  # the writer's: one sweep's models differ little
        # per-epoch rows not written yet: sent with the next flush or with the run's end
        self._rows: dict[int, list[MetricRow]] = {}
        self._rows_since = 0.0
        # kept checkpoints not logged yet, with when they came: a trial that leaves the top k
        # within ``model_delay`` seconds (most early trials of a sweep) never costs a model
        self._models: dict[int, tuple[LogModel, float]] = {}

    def _send(self, message: Message) -> None:
        self._check()
        if self.uri == "none":
            return
        if not self._running():
            self._done = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._queue, self._done),
                                            name="hpsearch-tracking", daemon=True)
            self._thread.start()
        self._queue.put(message)

    def _check(self) -> None:
        if self._errors:
            raise StorageError(self._errors.pop(0))

    def warm_up(self) -> None:
        """Open the tracking store in the background while the data loads."""
        self._send(Noop())

    def start(self, experiment_id: str, parent_id: str, study: str, number: int,
              params: dict[str, Any], tags: dict[str, str],
              inputs: list[SplitInput] | None = None) -> None:
        self._send(Start(number, experiment_id, parent_id, study, params, tags, inputs or []))

    def metrics(self, number: int, metrics: list[MetricRow]) -> None:
        if metrics:
            self._send(Metrics(number, metrics))

    def finish(self, number: int, state: str, summary: dict[str, float], tags: dict[str, str],
               history: list[dict[str, float]],
               diagnosis: dict[str, Any] | None = None) -> None:
        self._send(Finish(number, state, summary, tags, history, diagnosis))

    def tag_trial(self, study: str, number: int, tags: dict[str, str]) -> None:
        """Tag the run of trial ``number`` (any worker's), if it has one."""
        self._send(Tag(number, study, tags))

    def log_model(self, number: int, exp_id: str, study: str, staged: Path,
                  example: np.ndarray, feature_names: list[str] | None,
                  inputs: list[SplitInput]) -> None:
        if self.uri == "none":
            shutil.rmtree(staged, ignore_errors=True)
            return
        self._send(LogModel(number, exp_id, study, staged, example, feature_names, inputs))

    def drop_models(self, study: str, numbers: list[int]) -> None:
        if numbers:
            self._send(DropModels(study, numbers))

    def best(self, study: str, parent_id: str, number: int, value: float, metric: str,
             extra: dict[str, float]) -> None:
        self._send(Best(number, study, parent_id, value, metric, extra))

    def close(self) -> None:
        """Wait until everything queued is written. A Ctrl-C during the wait does not abandon the
        queue (it holds the closing records of trials that are over): the wait goes on for at
        most ``grace_after_interrupt`` seconds more, and the interrupt is raised afterwards.

        The wait polls an event instead of joining the thread: on Python 3.11 a KeyboardInterrupt
        inside ``Thread.join`` marks a thread that is still running as stopped."""
        interrupted, deadline = False, float("inf")
        if self._running():
            self._queue.put(None)
            while not self._done.is_set() and time.monotonic() < deadline:
                try:
                    self._done.wait(min(1.0, deadline - time.monotonic()))
                except KeyboardInterrupt:
                    interrupted = True
                    deadline = min(deadline, time.monotonic() + self.grace_after_interrupt)
            if not self._done.is_set():
                self._queue = queue.Queue()  # the abandoned thread keeps the old one
                grace = self.grace_after_interrupt
                self._errors.append(f"tracking writes still pending {grace:g} s after the "
                                    f"interrupt were abandoned; `hpsearch recover` closes the "
                                    f"runs left RUNNING")
        self._thread = None
        if interrupted:
            for message in self._errors:
                print(f"error: {message}", file=sys.stderr)
            self._errors.clear()
            raise KeyboardInterrupt
        self._check()

    def _running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def _loop(self, messages: queue.Queue[Any], done: threading.Event) -> None:
        try:
            while True:
                try:
                    message = messages.get(timeout=1.0)
                except queue.Empty:
                    message = Noop()
                try:
                    if message is None:
                        self._due(time.monotonic() + 2 * self.model_delay + self.flush_seconds)
                    else:
                        self._handle(message)
                        self._due(time.monotonic())
                except Exception as exc:  # reported to the worker, which stops with one line
                    self._errors.append(first_line(exc, 500))
                if message is None:
                    self._close_unfinished()
                    return
        finally:
            done.set()

    def _due(self, now: float) -> None:
        """Write what has waited long enough: metric rows, and kept checkpoints' models."""
        if self._tracker is None:
            return
        if self._rows and now - self._rows_since >= self.flush_seconds:
            for number in list(self._rows):
                rows = self._rows.pop(number)
                self._tracker.log_metrics(self._run_ids[number], [Metric(*r) for r in rows])
        for number, (m, since) in list(self._models.items()):
            if now - since >= self.model_delay:
                del self._models[number]
                try:
                    self._log_model(self._tracker, m)
                finally:
                    shutil.rmtree(m.staged, ignore_errors=True)

    def _handle(self, m: Message) -> None:
        if self._tracker is None:
            self._tracker = Tracker(self.uri)
        tracker = self._tracker
        if isinstance(m, Start):
            self._run_ids[m.number] = tracker.start_trial(m.exp_id, m.parent_id, m.study,
                                                          m.number, m.params, m.tags,
                                                          m.inputs)
            self._unfinished.add(m.number)
        elif isinstance(m, Metrics | Finish) and m.number not in self._run_ids:
            return  # its run could not be created: that error is already on its way
        elif isinstance(m, Metrics):
            if not self._rows:
                self._rows_since = time.monotonic()
            self._rows.setdefault(m.number, []).extend(m.rows)
        elif isinstance(m, Finish):
            rows = [Metric(*r) for r in self._rows.pop(m.number, [])]
            finish_trial_with_files(tracker, self._run_ids[m.number], m.state, m.summary, m.tags,
                                    m.history, m.diagnosis, rows)
            self._unfinished.discard(m.number)
        elif isinstance(m, Tag):
            run_id = self._run_ids.get(m.number) or tracker.trial_run_id(m.study, m.number)
            if run_id:
                tracker.set_tags(run_id, m.tags)
        elif isinstance(m, LogModel):
            self._models[m.number] = (m, time.monotonic())
        elif isinstance(m, DropModels):
            logged = [n for n in m.numbers if n not in self._models]
            for n in set(m.numbers) & set(self._models):  # never logged: nothing to delete
                shutil.rmtree(self._models.pop(n)[0].staged, ignore_errors=True)
            if logged:
                tracker.delete_trial_models(m.study, logged)
        elif isinstance(m, Best):
            run_id = self._run_ids.get(m.number) or tracker.trial_run_id(m.study, m.number) or ""
            tracker.log_best(m.parent_id, m.number, run_id, m.value, m.metric, m.extra)

    def _log_model(self, tracker: Tracker, m: LogModel) -> None:
        run_id = self._run_ids.get(m.number) or tracker.trial_run_id(m.study, m.number)
        if run_id is None:
            return
        meta, _ = checkpoint.read(m.staged)
        step = int(meta["best_epoch"])
        best = meta["history"][step - 1]
        by_context = {split.context: split for split in m.inputs}
        # the run's summary keys (best_*, *_at_best), not the per-epoch ones: a second value at
        # the best epoch would stand in each learning curve's history
        metrics = {name: (float(best[k]), by_context.get(context)) for name, k, context in (
            ("best_val_accuracy", "val_accuracy", "validation"),
            ("best_val_loss", "val_loss", "validation"),
            ("test_accuracy_at_best", "test_accuracy", "test"),
            ("test_loss_at_best", "test_loss", "test")) if k in best}
        tracker.log_trial_model(
            m.exp_id, run_id, m.study, m.number, step, metrics,
            lambda path, mlflow_model: self._template.write(path, m.staged, m.example,
                                                            m.feature_names, mlflow_model))
        # the learning curves as a picture, for the kept trials (the ones users open): drawing
        # one costs ~75 ms of CPU, and every run's curves are in its metrics and history.csv
        with tempfile.TemporaryDirectory(prefix="hpsearch-") as tmp:
            png = learning_curves(meta["history"], step, f"{m.study} trial {m.number}",
                                  Path(tmp) / "learning_curve.png")
            tracker.log_artifact(run_id, png)

    def _close_unfinished(self) -> None:
        self._template.close()
        for number in sorted(self._unfinished):
            try:
                assert self._tracker is not None
                self._tracker.finish_trial(self._run_ids[number], "INTERRUPTED", {}, {
                    "optuna.trial.reason": "the worker stopped before this trial's run was "
                                           "closed"})
            except Exception as exc:
                self._errors.append(first_line(exc, 500))
        self._unfinished.clear()


def finish_trial_with_files(tracker: Tracker, run_id: str, state: str,
                            summary: dict[str, float], tags: dict[str, str],
                            history: list[dict[str, float]],
                            diagnosis: dict[str, Any] | None = None,
                            rows: list[Metric] | None = None) -> None:
    """Write history.csv and diagnosis.json to a temporary directory, log them with the summary
    and close the run (a kept trial's learning_curve.png comes with its logged model)."""
    tmp = Path(tempfile.mkdtemp(prefix="hpsearch-"))
    try:
        if history:
            write_history_csv(history, tmp / "history.csv")
        if diagnosis is not None:
            (tmp / "diagnosis.json").write_text(json.dumps(diagnosis, indent=1, default=float))
        tracker.finish_trial(run_id, state, summary, tags, tmp if any(tmp.iterdir()) else None,
                             rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_history_csv(history: list[dict[str, float]], path: Path) -> Path:
    keys = list(history[0]) if history else ["epoch"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    return path
