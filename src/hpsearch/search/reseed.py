"""A winner it can trust: the top configurations trained again with more model seeds.

A trial's validation score mixes what its hyperparameters are worth with the luck of its one
model seed (the initial weights, the minibatch order, the dropout masks). The top ``k``
configurations are trained ``r`` more times on the same split, with seeds ``training.seed + 1
.. + r``, measured on the validation split only, and ranked by the mean of their ``r + 1``
scores, with its standard error; the report shows the table.

In the sweep (spec ``export: {reseed: R, reseed_top: K}``) this is the budget's last stretch:
the search stops when one more search trial would leave the reseed trials less time than they
need (R x the top K trials' training times, spread over this worker and the others once their
running trials are expected to end: ``reseed_end``), and the top K configurations are enqueued
again as trials with model seeds ``training.seed + 1 .. + R`` (user attributes ``reseed_of`` and
``model_seed``). They run like any trial (child runs, checkpoints, retries after a fault), are
never pruned, do not count towards ``n_trials``, and their checkpoints join the kept ones, so an
ensemble export can use them. With only ``n_trials`` (no timeout) they run after the search.

``hpsearch export --reseed R`` (``reseed``) does the same after the sweep, outside its budget,
for a study swept without it: in one process, the test split not passed to training at all;
its table is recorded in the study (``hpsearch.reseed``). Either way the single-model export
takes the first configuration's best kept checkpoint.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from ..errors import StorageError
from ..model.estimator import MLPClassifier
from ..spec import datasets
from ..spec.schema import SweepSpec
from ..spec.space import chosen_of, model_params
from ..study.store import (
    StudyKey,
    TrialKey,
    counted_trials,
    direction_sign,
    ranked,
    search_trials,
    train_seconds,
)

RUNNING = optuna.trial.TrialState.RUNNING
WAITING = optuna.trial.TrialState.WAITING


@dataclass
class Reseeded:
    number: int  # the trial whose configuration this is
    values: list[float]  # its objective value per seed, the sweep's own first
    seconds: float
    members: list[int] = field(default_factory=list)  # in the sweep: the trials, its own first

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def se(self) -> float:
        if len(self.values) < 2:
            return math.nan
        return statistics.stdev(self.values) / math.sqrt(len(self.values))

    def row(self) -> dict:
        """As the study records it and the report reads it."""
        return {"trial": self.number, "values": self.values, "mean": self.mean, "se": self.se,
                "seconds": self.seconds, "members": self.members}


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
        "rows": [row.row() for row in rows]})
    return rows


# -- in the sweep ----------------------------------------------------------------------------------
def search_top(trials: list[optuna.trial.FrozenTrial], study: optuna.Study,
               k: int) -> list[optuna.trial.FrozenTrial]:
    """The top ``k`` complete search trials (reseed trials are not configurations of their own)."""
    return search_trials(ranked(study, trials))[:k]


# How many of the latest complete search trials tell how long the next one takes: the search
# narrows on its best region late, and there the models were larger (a 20-minute Fashion-MNIST
# sweep's complete trials had taken 54 s on average when its search ended, the last five 71 s,
# the two then running 115 and 132 s: docs/benchmarks.md).
RECENT_TRIALS = 5


def _complete_seconds(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """The training times of the latest ``RECENT_TRIALS`` complete search trials (by number)."""
    done = [t for t in search_trials(trials) if t.state == optuna.trial.TrialState.COMPLETE]
    return [train_seconds(t) for t in sorted(done, key=lambda t: t.number)[-RECENT_TRIALS:]]


def full_seconds(trial: optuna.trial.FrozenTrial, max_epochs: int) -> float:
    """How long ``trial``'s configuration trains if it runs every one of ``max_epochs`` (early
    stopping may end another seed's run later than this one's): its time per epoch times
    ``max_epochs``; its own time when the epochs are not recorded."""
    epochs = int(trial.user_attrs.get(TrialKey.EPOCHS_RUN, 0) or 0)
    seconds = train_seconds(trial)
    return seconds / epochs * max(epochs, max_epochs) if epochs else seconds


def trial_seconds(trials: list[optuna.trial.FrozenTrial]) -> float:
    """How long a search trial that is not pruned takes: the mean training time of the latest
    complete search trials (0 before one completes). A pruned trial ends sooner; a plan that
    must fit the budget counts on the longer one."""
    times = _complete_seconds(trials)
    return statistics.fmean(times) if times else 0.0


def remaining_seconds(elapsed: float, times: list[float]) -> float:
    """How much longer a trial that has run ``elapsed`` s is expected to take: the mean of the
    complete trials' ``times`` that were longer, less ``elapsed`` (a trial past the mean is one
    of the long ones); 0 when none was longer."""
    longer = [t for t in times if t > elapsed]
    return statistics.fmean(longer) - elapsed if longer else 0.0


def _finish(free: list[float], jobs: list[float]) -> float:
    """When the last of ``jobs`` ends, each given, longest first, to the worker free first
    (``free``: when each worker is free)."""
    free = sorted(free)
    for job in sorted(jobs, reverse=True):
        free[0] += job
        free.sort()
    return free[-1]


def reseed_end(study: optuna.Study, spec: SweepSpec, start: float,
               trials: list[optuna.trial.FrozenTrial] | None = None) -> float | None:
    """When the reseed trials would end if this worker began them at ``start``: the R x K
    trials (each as long as the trial it repeats would take over every epoch: ``full_seconds``)
    spread over this worker and the ones running a search trial now, each free when that trial
    is expected to end (``remaining_seconds``). None when the spec has no reseed or no trial
    has completed."""
    r, k = spec.export_reseed
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    times = [full_seconds(t, spec.training.max_epochs) for t in search_top(trials, study, k)]
    if not r or not times:
        return None
    now, done = time.time(), _complete_seconds(trials)
    # (a start in the future, from a clock or time zone that differs, counts as now)
    busy = [now + remaining_seconds(now - min(now, t.datetime_start.timestamp()), done)
            if t.datetime_start else now
            for t in search_trials(trials) if t.state == RUNNING]
    return _finish([start, *busy], times * r)


def reseed_due(study: optuna.Study, spec: SweepSpec, deadline: float | None,
               trials: list[optuna.trial.FrozenTrial] | None = None) -> bool:
    """Whether the search should end here for the reseed trials: they started already, or one
    more search trial (``trial_seconds``) would leave them less time before ``deadline`` than
    they need. ``trials``: the study's trials if the caller has read them."""
    if not spec.export_reseed[0]:
        return False
    if study.user_attrs.get(StudyKey.RESEED_PHASE):
        return True
    if deadline is None:
        return False
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    end = reseed_end(study, spec, time.time() + trial_seconds(trials), trials)
    return end is not None and end >= deadline


def _may_start(study: optuna.Study, spec: SweepSpec, deadline: float | None) -> bool:
    """The reseed trials start when the time left is theirs (never after the deadline), when
    ``budget.stop`` fired, or when the whole study's search is over (n_trials counted and no
    search trial running); not when one worker's quota ends while the others search on."""
    if deadline is not None and time.time() >= deadline:
        return False
    if reseed_due(study, spec, deadline) or study.user_attrs.get(StudyKey.STOPPED):
        return True
    trials = study.get_trials(deepcopy=False)
    return len(counted_trials(trials)) >= int(study.user_attrs.get(StudyKey.N_TRIALS, 0)) and \
        not any(t.state == RUNNING for t in search_trials(trials))


def waiting(study: optuna.Study) -> int:
    """How many reseed trials wait for a worker."""
    return sum(TrialKey.RESEED_OF in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=(WAITING,)))


def resume(study: optuna.Study, remaining: int) -> int:
    """A sweep run again: with search budget left its reseed trials come again at its new end
    (pairs already trained are not trained twice: ``duplicate_of``); the reseed trials that
    wait (a sweep stopped in its last stretch) are returned, to be run."""
    if remaining and study.user_attrs.get(StudyKey.RESEED_PHASE):
        study.set_user_attr(StudyKey.RESEED_PHASE, None)
    return waiting(study)


def reseeding(study: optuna.Study, spec: SweepSpec, echo: Callable[[str], None],
              deadline: float | None) -> bool:
    """Start the reseed trials when they may start (once per study: the first worker to come
    enqueues them) and say whether one waits for a worker."""
    r, k = spec.export_reseed
    if not r:
        return False
    if not study.user_attrs.get(StudyKey.RESEED_PHASE):
        if not _may_start(study, spec, deadline):
            return waiting(study) > 0
        now, trials = time.time(), study.get_trials(deepcopy=False)
        need = (reseed_end(study, spec, now, trials) or now) - now
        top = search_top(trials, study, k)
        if not top:
            return False
        seeds = [spec.training.seed + i for i in range(1, r + 1)]
        done = {(t.user_attrs[TrialKey.RESEED_OF], t.user_attrs[TrialKey.MODEL_SEED])
                for t in study.get_trials(deepcopy=False) if TrialKey.RESEED_OF in t.user_attrs
                and t.state in (RUNNING, WAITING, optuna.trial.TrialState.COMPLETE)}
        for t in top:  # enqueued first: a worker that sees the phase finds them waiting
            for seed in (sd for sd in seeds if (t.number, sd) not in done):  # (a resumed sweep)
                study.enqueue_trial(t.params, user_attrs={TrialKey.RESEED_OF: t.number,
                                                          TrialKey.MODEL_SEED: seed},
                                    skip_if_exists=False)
        study.set_user_attr(StudyKey.RESEED_PHASE, {"top": [t.number for t in top],
                                                    "seeds": seeds, "started": time.time()})
        echo(f"reseed: the search ends; trials {', '.join(str(t.number) for t in top)} train "
             f"again with model seeds {seeds} ({len(top) * r} trials, about {need:.0f} s)")
    return waiting(study) > 0


def duplicate_of(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """An earlier trial with this reseed trial's configuration and seed (two workers that began
    the reseed trials at the same moment both enqueue them), running or complete: its number,
    else None. A failed one (lost to a fault, retried) or a pruned twin does not count."""
    attrs = trial.user_attrs
    key = (attrs.get(TrialKey.RESEED_OF), attrs.get(TrialKey.MODEL_SEED))
    if key[0] is None:
        return None
    retried = attrs.get(TrialKey.RETRY_OF)
    return next((t.number for t in study.get_trials(deepcopy=False)
                 if t.number < trial.number and t.number != retried
                 and t.state in (RUNNING, optuna.trial.TrialState.COMPLETE)
                 and (t.user_attrs.get(TrialKey.RESEED_OF),
                      t.user_attrs.get(TrialKey.MODEL_SEED)) == key), None)


def sweep_rows(study: optuna.Study, spec: SweepSpec) -> list[Reseeded]:
    """The configurations of a sweep that ran its reseed trials, best mean first (each with its
    complete trials: a configuration whose original is not complete is left out). Empty
    without them."""
    phase = study.user_attrs.get(StudyKey.RESEED_PHASE)
    if not phase:
        return []
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    by_number = {t.number: t for t in trials}
    rows = []
    for n in phase["top"]:
        if n not in by_number:
            continue
        seeds = {t.user_attrs[TrialKey.MODEL_SEED]: t for t in reversed(trials)
                 if t.user_attrs.get(TrialKey.RESEED_OF) == n}  # one per seed: the first
        members = [by_number[n]] + [seeds[sd] for sd in sorted(seeds)]
        rows.append(Reseeded(n, [float(t.value) for t in members if t.value is not None],
                             sum(train_seconds(t) for t in members[1:]),
                             [t.number for t in members]))
    sign = direction_sign(study)
    rows.sort(key=lambda row: sign * row.mean)
    return rows


def table(study: optuna.Study, spec: SweepSpec) -> dict | None:
    """The reseed table as the report shows it: the sweep's reseed trials, else what
    `hpsearch export --reseed` recorded, else None."""
    rows = sweep_rows(study, spec)
    if not rows:
        return study.user_attrs.get(StudyKey.RESEED)
    seeds = [spec.training.seed] + list(study.user_attrs[StudyKey.RESEED_PHASE]["seeds"])
    return {"seeds": seeds, "metric": spec.objective.metric, "in_sweep": True,
            "rows": [row.row() for row in rows]}
