"""A winner it can trust: the top configurations trained again with more model seeds.

A trial's validation score mixes what its hyperparameters are worth with the luck of its one
model seed (the initial weights, the minibatch order, the dropout masks). ``reseed`` trains each
of the top ``k`` complete trials' configurations ``r`` more times on the same split, with seeds
``training.seed + 1 .. + r``, measures each on the validation split only (the test split is not
passed to training at all), and ranks the configurations by the mean of their ``r + 1`` scores,
with its standard error. The results are recorded in the study (``hpsearch.reseed``), where the
report reads its table; the export takes the first configuration's own checkpoint.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from . import datasets
from .config import SweepSpec
from .errors import StorageError
from .estimator import MLPClassifier
from .space import chosen_of, model_params
from .store import StudyKey, direction_sign, ranked


@dataclass
class Reseeded:
    number: int  # the trial whose configuration this is
    values: list[float]  # its objective value per seed, the sweep's own first
    seconds: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def se(self) -> float:
        if len(self.values) < 2:
            return math.nan
        return statistics.stdev(self.values) / math.sqrt(len(self.values))


def reseed(study: optuna.Study, spec: SweepSpec, splits: datasets.Splits, r: int, k: int,
           echo: Callable[[str], None] = print) -> list[Reseeded]:
    """Train the top ``k`` configurations with ``r`` more seeds; best mean first."""
    metric = spec.objective.metric
    rows = []
    if not ranked(study):
        raise StorageError(f"study {study.study_name!r} has no completed trial to reseed")
    for t in ranked(study)[:k]:
        assert t.value is not None
        row = Reseeded(t.number, [float(t.value)], 0.0)
        for i in range(1, r + 1):
            params = model_params(chosen_of(t.params, spec.space), spec)
            params.setdefault("preprocessing", splits.preprocessing)  # as trial.objective
            params["random_state"] = spec.training.seed + i
            started = time.perf_counter()
            model = MLPClassifier(**params).fit(*splits.train, eval_sets={"val": splits.val})
            row.seconds += time.perf_counter() - started
            row.values.append(float(model.history_[model.best_epoch_ - 1][metric])
                              if model.best_epoch_ else math.nan)
            echo(f"reseed: trial {t.number}'s configuration, seed {params['random_state']}: "
                 f"{metric} {row.values[-1]:.4f} ({time.perf_counter() - started:.0f} s)")
        rows.append(row)
    sign = direction_sign(study)
    rows.sort(key=lambda row: sign * row.mean if not math.isnan(row.mean) else math.inf)
    study.set_user_attr(StudyKey.RESEED, {
        "seeds": [spec.training.seed + i for i in range(r + 1)], "metric": metric,
        "rows": [{"trial": row.number, "values": row.values, "mean": row.mean,
                  "se": row.se, "seconds": row.seconds} for row in rows]})
    return rows
