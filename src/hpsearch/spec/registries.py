"""Sampler and pruner registries, like the engine's ``OPTIMIZERS`` table: each name with the
options a spec may give it and how to build it. config.py validates specs against these tables,
and the sweep builds from them; an unknown name is a one-line SpecError, never a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import SpecError

__all__ = ["PRUNERS", "SAMPLERS", "MarginMedianPruner", "make_pruner", "make_sampler",
           "median_comparison", "sampler_seed"]


@dataclass(frozen=True)
class Entry:
    """One registry entry: the spec options it takes and its factory: for samplers
    ``build(options, seed, grid, spec_seed)``, for pruners ``build(options, max_epochs)``."""

    options: frozenset[str]
    build: Callable[..., Any]


def median_comparison(study: optuna.Study, trial: FrozenTrial,
                      step: int) -> tuple[float, float, int]:
    """What the median rule compares at ``step``: the trial's best value so far, the median of
    the complete trials' values at that step (NaN if none has one) and how many there were."""
    values = [v for v in trial.intermediate_values.values() if not math.isnan(v)]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = (max(values) if maximize else min(values)) if values else math.nan
    others = [v for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if not math.isnan(v := t.intermediate_values.get(step, math.nan))]
    median = float(np.median(others)) if others else math.nan
    return best, median, len(others)


class MarginMedianPruner(optuna.pruners.MedianPruner):
    """Optuna's median rule with a margin: a trial the median pruner would stop is stopped only
    if its best value so far is behind the complete trials' median at its epoch by more than
    ``margin`` (in the metric's units). With a margin of about one standard error of the
    validation score, gaps within its sampling noise no longer decide; 0 is the median rule."""

    def __init__(self, margin: float = 0.0, **options: int) -> None:
        super().__init__(**options)
        self.margin = float(margin)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not super().prune(study, trial):
            return False
        if self.margin <= 0 or trial.last_step is None:
            return True
        best, median, _ = median_comparison(study, trial, trial.last_step)
        if math.isnan(best) or math.isnan(median):
            return True
        behind = median - best if study.direction == optuna.study.StudyDirection.MAXIMIZE \
            else best - median
        return behind > self.margin + 1e-12  # a gap of exactly the margin (0.003 is 36 of
        # 12,000 images) is spared whatever the rounding of the subtraction


SAMPLERS: dict[str, Entry] = {
    "tpe": Entry(frozenset({"seed", "n_startup_trials", "multivariate"}),
                 lambda o, seed, space, spec_seed: optuna.samplers.TPESampler(seed=seed, **o)),
    "random": Entry(frozenset({"seed"}),
                    lambda o, seed, space, spec_seed: optuna.samplers.RandomSampler(seed=seed)),
    "grid": Entry(frozenset({"seed"}),
                  lambda o, seed, space, spec_seed: optuna.samplers.GridSampler(space, seed=seed)),
    "cmaes": Entry(frozenset({"seed", "n_startup_trials"}),
                   lambda o, seed, space, spec_seed: optuna.samplers.CmaEsSampler(seed=seed, **o)),
    # A QMC sequence is one sequence for the whole study: every worker uses the spec's seed.
    "qmc": Entry(frozenset({"seed", "qmc_type"}),
                 lambda o, seed, space, spec_seed: optuna.samplers.QMCSampler(seed=spec_seed,
                                                                               **o)),
}

PRUNERS: dict[str, Entry] = {
    "median": Entry(frozenset({"n_startup_trials", "n_warmup_steps", "interval_steps", "margin"}),
                    lambda o, max_epochs: MarginMedianPruner(**o)),
    "hyperband": Entry(frozenset({"min_resource", "reduction_factor"}),
                       lambda o, max_epochs: optuna.pruners.HyperbandPruner(
                           max_resource=max_epochs, **o)),
    "successive_halving": Entry(
        frozenset({"min_resource", "reduction_factor", "min_early_stopping_rate"}),
        lambda o, max_epochs: optuna.pruners.SuccessiveHalvingPruner(**o)),
    "none": Entry(frozenset(), lambda o, max_epochs: optuna.pruners.NopPruner()),
}


def _entry(table: dict[str, Entry], kind: str, name: str) -> Entry:
    if name not in table:
        raise SpecError(f"{kind} {name!r} is unknown (choose from {', '.join(table)})")
    return table[name]


def sampler_seed(seed: int | None, existing: int, worker: int) -> int | None:
    """The spec's sampler seed for a fresh study's first worker (so a one-worker sweep is
    reproducible); shifted for every other worker and every resume, which would otherwise draw
    the same random parameters again."""
    if seed is None:
        return None
    return (seed + 7919 * existing + 104729 * worker) % 2**32


def make_sampler(name: str, options: dict[str, Any], seed: int | None,
                 grid: dict[str, list[Any]], existing: int = 0,
                 worker: int = 0) -> optuna.samplers.BaseSampler:
    """Sampler ``name`` with the spec's ``options``; ``grid`` is the grid sampler's space."""
    return _entry(SAMPLERS, "sampler", name).build(
        dict(options), sampler_seed(seed, existing, worker), grid, seed)


def make_pruner(name: str, options: dict[str, Any], max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruner ``name`` with the spec's ``options`` (Hyperband's max_resource: the epochs)."""
    return _entry(PRUNERS, "pruner", name).build(dict(options), max_epochs)
