"""Sampler and pruner registries, like the engine's ``OPTIMIZERS`` table: each name with the
options a spec may give it and how to build it. config.py validates specs against these tables,
and the sweep builds from them; an unknown name is a one-line SpecError, never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from .errors import SpecError

__all__ = ["PRUNERS", "SAMPLERS", "make_pruner", "make_sampler", "sampler_seed"]


@dataclass(frozen=True)
class Entry:
    """One registry entry: the spec options it takes and its factory: for samplers
    ``build(options, seed, grid, spec_seed)``, for pruners ``build(options, max_epochs)``."""

    options: frozenset[str]
    build: Callable[..., Any]


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
    "median": Entry(frozenset({"n_startup_trials", "n_warmup_steps", "interval_steps"}),
                    lambda o, max_epochs: optuna.pruners.MedianPruner(**o)),
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
