"""What a worker hands its trial log, one typed message per write (the background writer,
trial_log.AsyncTrialLog, takes them in order): a run started, per-epoch metrics, a run finished,
tags, the best trial so far, a kept checkpoint to log as a model, models to drop, and a message
that only opens the store; ``TrialLogFront``: the calls a worker makes, each one message, in
front of the in-process writer (trial_log.AsyncTrialLog) or of the machine's writer
(writer.RemoteTrialLog)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # light to import: the sweep command starts its writer before MLflow loads
    import numpy as np

    from .logged_models import SplitInput

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


@dataclass(frozen=True)
class Mark:
    """A point in the writer's queue (never crosses a process): when the writer reaches it, the
    runs of ``numbers`` still open are closed as interrupted (their worker has ended), then
    ``reached()`` is called (the machine's writer tells that worker its writes are done)."""
    numbers: tuple[int, ...]
    reached: Callable[[], None]


@dataclass(frozen=True)
class Call:
    """A Tracker method called in the writer's order (never crosses a process): the sweep
    process's own MLflow calls (the experiment, the parent run, the verdict tags) made by the
    machine's writer; ``reply`` gets ``(result, None)`` or ``(None, the exception)``."""
    name: str
    args: tuple[Any, ...]
    reply: Callable[[Any, BaseException | None], None]
    flush: bool = False  # write every kept model still waiting first


Message = Start | Metrics | Finish | Tag | Best | LogModel | DropModels | Noop | Mark | Call


class TrialLogFront:
    """The calls a worker makes on its trial log, each one typed message handed to ``_send``;
    trials are named by their Optuna trial number."""

    uri: str

    def _send(self, message: Message) -> None:
        raise NotImplementedError

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

    # what each writer answers in its own way
    outage: tuple[float, str] | None  # (since when, why) while the tracking store is away

    def check(self) -> None:
        """Raise the writer's first error, if it has one."""
        raise NotImplementedError

    def close(self) -> None:
        """Wait until everything sent is written."""
        raise NotImplementedError

    def wait_back(self) -> float | None:
        """After a trial lost to a tracking outage: the seconds the store was away once it
        answers again, None when the writer gave up."""
        raise NotImplementedError
