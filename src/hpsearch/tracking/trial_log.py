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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from ..diagnosis.plots import learning_curves
from ..errors import StorageError, first_line, is_tracking_outage, storage_retries
from ..model import checkpoint
from ..model.pyfunc import PyfuncTemplate
from .messages import (
    Best,
    Call,
    DropModels,
    Finish,
    LogModel,
    Mark,
    Message,
    MetricRow,
    Metrics,
    Noop,
    Start,
    Tag,
    TrialLogFront,
)
from .tracker import Tracker, make_tracker


class AsyncTrialLog(TrialLogFront):
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
    #: Log kept checkpoints as soon as nothing else waits (the machine's writer, writer.py, on
    #: a core of its own: the last models would be written at the sweep's end otherwise).
    eager_models = False

    def __init__(self, uri: str, echo: Callable[[str], None] | None = None) -> None:
        self.uri = uri
        self.echo = echo  # says once when the tracking store stops answering
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
        # (since when, why) while the tracking store does not answer: the writer retries with
        # backoff, and a trial that ends meanwhile is lost (retried, not counted)
        self.outage: tuple[float, str] | None = None
        # told of each change of ``outage`` before it is said (the machine's writer shares it)
        self.on_outage: Callable[[tuple[float, str] | None], None] | None = None

    def _send(self, message: Message) -> None:
        self._check()
        self.put(message)

    def put(self, message: Message) -> None:
        """Queue ``message`` without raising the writer's errors (the machine's writer,
        writer.serve, hands them on itself: ``take_errors``)."""
        if self.uri == "none":
            return
        if not self._running():
            self._done = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(self._queue, self._done),
                                            name="hpsearch-tracking", daemon=True)
            self._thread.start()
        self._queue.put(message)

    def check(self) -> None:
        """Raise the writer's first error, if it has one."""
        self._check()

    def _check(self) -> None:
        if self._errors:
            raise StorageError(self._errors.pop(0))

    def take_errors(self) -> list[str]:
        """The writer's errors so far, taken (no call raises them after this)."""
        taken = []
        while self._errors:
            taken.append(self._errors.pop(0))
        return taken

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
                idle_work = self.eager_models and bool(self._models)
                try:
                    message = messages.get(timeout=0.0 if idle_work else 1.0)
                except queue.Empty:
                    message = Noop()
                try:
                    if idle_work and isinstance(message, Noop):  # nothing else to write
                        self._due(time.monotonic(), models=1)
                    elif message is None:
                        self._due(time.monotonic() + 2 * self.model_delay + self.flush_seconds)
                    elif isinstance(message, Call):  # the sweep process's own call
                        self._call(message)
                    elif isinstance(message, Mark):  # a worker of the machine has ended
                        self._close_unfinished(message.numbers)
                        message.reached()
                    elif isinstance(message, Noop):  # opens the store; writes nothing
                        self._handle(message)
                        self._due(time.monotonic())
                    else:
                        self._retrying(partial(self._handle, message))
                        self._due(time.monotonic())
                except Exception as exc:  # reported to the worker, which stops with one line
                    self._errors.append(first_line(exc, 500))
                if message is None:
                    self._close_unfinished()
                    return
        finally:
            done.set()

    def _call(self, m: Call) -> None:
        try:
            if self._tracker is None:
                self._tracker = make_tracker(self.uri)
            if m.flush and self._models:
                self._due(time.monotonic() + 2 * self.model_delay + self.flush_seconds)
            value = getattr(self._tracker, m.name)
            result = value(*m.args) if callable(value) else value
        except Exception as exc:
            m.reply(None, exc)
        else:
            m.reply(result, None)

    def _retrying(self, write: Callable[[], None]) -> None:
        """``write()``, again after 1, 2, 4 ... s while the tracking store does not answer
        (``outage`` says so meanwhile); the last attempt's error is raised."""
        attempts = storage_retries()
        for attempt in range(attempts + 1):
            try:
                write()
            except Exception as exc:
                if attempt == attempts or not is_tracking_outage(exc):
                    raise
                if self.outage is None:
                    why = first_line(exc, 300)
                    self._outage((time.monotonic(), why))
                    if self.echo is not None:
                        self.echo(f"tracking store not answering ({why}); its writes "
                                  f"are retried after 1, 2, 4 ... s, and a trial that ends "
                                  f"meanwhile is retried")
                time.sleep(2 ** attempt)
                continue
            if self.outage is not None:
                self._outage(None)
            return

    def _outage(self, outage: tuple[float, str] | None) -> None:
        self.outage = outage
        if self.on_outage is not None:
            self.on_outage(outage)

    def _due(self, now: float, models: int = 0) -> None:
        """Write what has waited long enough: metric rows, and kept checkpoints' models (and
        the ``models`` oldest ones however long they waited)."""
        tracker = self._tracker
        if tracker is None:
            return
        if self._rows and now - self._rows_since >= self.flush_seconds:
            for number in list(self._rows):
                rows = [Metric(*r) for r in self._rows[number]]
                run_id = self._run_ids[number]
                self._retrying(partial(tracker.log_metrics, run_id, rows))
                del self._rows[number]
        for i, (number, (m, since)) in enumerate(list(self._models.items())):
            if now - since >= self.model_delay or i < models:
                try:
                    self._retrying(partial(self._log_model, tracker, m))
                finally:
                    del self._models[number]
                    shutil.rmtree(m.staged, ignore_errors=True)

    def wait_back(self) -> float | None:
        """After a trial lost to a tracking outage: wait while the writer retries; the seconds
        the store was away once it answers again, None when the writer gave up (its error is
        raised by the next call)."""
        outage = self.outage
        started = outage[0] if outage else time.monotonic()
        while self.outage is not None and self._running() and not self._errors:
            time.sleep(0.2)
        if self._errors or self.outage is not None:
            return None
        return time.monotonic() - started

    def _handle(self, m: Message) -> None:
        if self._tracker is None:
            self._tracker = make_tracker(self.uri)
        tracker = self._tracker
        if isinstance(m, Start):
            if m.number not in self._run_ids:  # else made by an attempt before an outage
                self._run_ids[m.number] = tracker.start_trial(m.exp_id, m.parent_id, m.study,
                                                              m.number, m.tags)
                self._unfinished.add(m.number)
            tracker.describe_trial(self._run_ids[m.number], m.params, m.inputs)
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

    def _close_unfinished(self, numbers: tuple[int, ...] | None = None) -> None:
        """Close as interrupted the runs started here that never got their ``finish``: all of
        them when the writer ends, or those of ``numbers`` (a worker of the machine ended)."""
        if numbers is None:
            self._template.close()
        for number in sorted(self._unfinished if numbers is None else
                             self._unfinished & set(numbers)):
            try:
                assert self._tracker is not None
                self._tracker.finish_trial(self._run_ids[number], "INTERRUPTED", {}, {
                    "optuna.trial.reason": "the worker stopped before this trial's run was "
                                           "closed"})
            except Exception as exc:
                self._errors.append(first_line(exc, 500))
            self._unfinished.discard(number)


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
