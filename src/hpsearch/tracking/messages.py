"""What a worker hands its trial log, one typed message per write (the background writer,
trial_log.AsyncTrialLog, takes them in order): a run started, per-epoch metrics, a run finished,
tags, the best trial so far, a kept checkpoint to log as a model, models to drop, and a message
that only opens the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


Message = Start | Metrics | Finish | Tag | Best | LogModel | DropModels | Noop
