"""A sweep spec once read and checked: frozen dataclasses, one per section of the YAML file
(config.py reads and validates the file into them; nothing else builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model.columns import ColumnPlan


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "digits"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    preprocessing: str | None = None  # None: what suits the dataset
    target: str | None = None  # a table's target column
    data_dir: str | None = None
    sep: str = ","  # a CSV's separator
    columns: ColumnPlan | None = None  # a table's drop / one_hot / fill


@dataclass(frozen=True)
class TrainingSpec:
    max_epochs: int = 30
    batch_size: int = 128
    early_stopping_patience: int | None = 10
    early_stopping_metric: str = "val_accuracy"  # default: the objective's metric
    train_eval_size: int | None = 10_000
    seed: int = 0  # model seed, the same for every trial: trials differ by hyperparameters only


@dataclass(frozen=True)
class ObjectiveSpec:
    metric: str = "val_accuracy"
    direction: str = "maximize"


@dataclass(frozen=True)
class BudgetSpec:
    n_trials: int = 20
    timeout: float | None = None
    workers: int | None = None  # None ("auto"): one worker process per core, 1 BLAS thread each
    stop: str | None = None  # "converged": stop when done (noise.converged)
    patience_trials: int = 20  # ... when this many trials did not beat the best by the noise


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"
    seed: int | None = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrunerSpec:
    name: str = "median"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WarmStartSpec:
    study: str  # a study in the same storage (``hpsearch next`` names the parent)
    trials: int = 3  # its best trials that fit this space run first, with their parameters


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (param, allowed values), all must hold


@dataclass(frozen=True)
class SweepSpec:
    name: str
    path: str
    data: DataSpec
    training: TrainingSpec
    objective: ObjectiveSpec
    budget: BudgetSpec
    sampler: SamplerSpec
    pruner: PrunerSpec
    keep_checkpoints: int
    space: tuple[ParamSpec, ...]
    diagnostics: dict[str, float] = field(default_factory=dict)  # threshold overrides
    text: str = ""  # the file as written, logged with the sweep
    warm_start: WarmStartSpec | None = None
    export_ensemble: int = 0  # export.ensemble: `hpsearch export` averages up to K checkpoints
    export_reseed: tuple[int, int] = (0, 3)  # export.reseed, .reseed_top (reseed.py)
    export_refit: bool = False  # export.refit: retrain on train + val (refit.py)
    export_in_budget: bool = False  # export.in_budget: the sweep ends with the export (refit.py)
