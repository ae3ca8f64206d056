"""``hpsearch export --refit``: the chosen model trained again on train + validation.

The validation split chooses twice: the configuration (the sweep's best trial, the reseed table
or the ensemble selection) and the number of epochs (the chosen checkpoint's best epoch). Once
both are chosen, its samples are more training data: the refit model has the checkpoint's
hyperparameters and model seed and trains on train + validation with the chosen run's own
learning-rate schedule (the same ``max_epochs``, so a cosine is the same curve), stopped after
the best epoch, with no early stopping and no best-epoch restore: no held-out split is left to
choose with. The one schedule it cannot replay is ``plateau``, which decayed on the validation
score: in the refit it decays on the training loss. A refit that diverges is an error, not an
export. The test split never reaches training; the export scores it once, as for any model. A
refit model has no validation score of its own (it trained on those samples): the card and the
metrics give the chosen checkpoint's, which chose it, and say so.

An ensemble's members are refit in parallel, one process per core with one BLAS thread each, the
layout the sweep's workers train in (for trials it beat one process with two threads,
docs/benchmarks.md; not measured for the refit itself). The card's refit ``seconds`` add up
the members' training times, not the wall clock. With
``export: {in_budget: true}`` the sweep runs the export as its last step, inside
``budget.timeout``: ``reserve_seconds`` is the time the search leaves it.
"""

from __future__ import annotations

import math
import os
import queue
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from ..errors import CheckpointError
from ..model.ensemble import EnsembleClassifier
from ..model.estimator import MLPClassifier
from ..spec.datasets import Splits
from ..spec.schema import SweepSpec
from ..study.store import StudyKey, ranked, train_seconds
from .signals import STOP_SIGNALS, check_stop, spawn_context, stop_signals

# what a refit changes in the chosen checkpoint's parameters (the card lists them)
OVERRIDES = {"early_stopping_patience": None, "restore_best_weights": False,
             "monitor": "train_loss"}


class StopAfter:
    """A fit callback: stop once epoch ``epochs`` has been trained."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, record: dict[str, Any]) -> bool:
        return int(record["epoch"]) >= self.epochs


def refit_params(model: MLPClassifier) -> dict[str, Any]:
    """The checkpoint's hyperparameters and seed, with ``OVERRIDES``."""
    return {**model.get_params(), **OVERRIDES}


def refit_epochs(model: MLPClassifier) -> int:
    """How many epochs a refit trains: the epoch validation chose."""
    return int(model.best_epoch_ or model.n_epochs_)


def _train(params: dict[str, Any], epochs: int, x: np.ndarray,
           y: np.ndarray) -> tuple[MLPClassifier, float]:
    started = time.perf_counter()
    refit = MLPClassifier(**params).fit(x, y, callbacks=[StopAfter(epochs)])
    return refit, time.perf_counter() - started


def _checked(refit: MLPClassifier, seconds: float, label: str, epochs: int, n: int,
             schedule: str, echo: Callable[[str], None]) -> dict[str, Any]:
    """Raise if the refit diverged; else say it is done and return what the card says of it."""
    if refit.status_ == "stopped":  # by StopAfter: the epochs it was meant to train
        refit.status_, refit.stop_reason_ = "completed", f"refit: the chosen {epochs} epochs"
    last = refit.history_[-1] if refit.history_ else {}
    if refit.status_ == "diverged" or not np.isfinite(last.get("train_loss", np.nan)):
        raise CheckpointError(f"refit of {label} diverged on train + validation "
                              f"({refit.stop_reason_}): nothing exported; export without "
                              f"--refit")
    echo(f"refit: {label} done in {seconds:.0f} s (train accuracy "
         f"{last['train_accuracy']:.4f})")
    return {"samples": n, "epochs": epochs, "seconds": round(seconds, 1), "schedule": schedule}


def _train_val(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([splits.train[0], splits.val[0]]),
            np.concatenate([splits.train[1], splits.val[1]]))


def _announce(label: str, params: dict[str, Any], epochs: int, n: int) -> str:
    return (f"refit: {label} on train + validation ({n} samples, {epochs} of "
            f"{params['max_epochs']} epochs, seed {params['random_state']})...")


def refit_model(model: MLPClassifier, splits: Splits, label: str,
                echo: Callable[[str], None] = print) -> tuple[MLPClassifier, dict[str, Any]]:
    """``model``'s configuration trained on train + validation; and what the card says of it."""
    params, epochs = refit_params(model), refit_epochs(model)
    x, y = _train_val(splits)
    echo(_announce(label, params, epochs, len(y)))
    refit, seconds = _train(params, epochs, x, y)
    keep_columns(model, refit)
    return refit, _checked(refit, seconds, label, epochs, len(y), params["schedule"], echo)


def keep_columns(chosen: MLPClassifier, refit: MLPClassifier) -> None:
    """A model of a table keeps its column plan through the refit: it takes the same rows."""
    if getattr(chosen, "columns_", None):
        refit.columns_ = chosen.columns_


# -- members in parallel: processes of our own (multiprocessing.Pool replaces a process that
# ends, and one that starts while this one exits prints a traceback)
def _refit_process(x: np.ndarray, y: np.ndarray, tasks: Any, results: Any) -> None:
    """A refit process: one BLAS thread; trains ``(i, params, epochs)`` tasks until None. The
    stopping signals came blocked (the parent's mask while it started it): SIGINT is ignored
    (a terminal's Ctrl-C reaches the whole group; the parent decides and ends this process),
    SIGTERM and SIGHUP end it at once, as the parent's terminate() does."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    threadpool_limits(1)
    for i, params, epochs in iter(tasks.get, None):
        try:
            results.put((i, *_train(params, epochs, x, y)))
        except Exception as exc:  # reported by the export, in one line
            results.put((i, None, f"{type(exc).__name__}: {exc}"))


def _refit_parallel(jobs: list[tuple[dict[str, Any], int, str]], x: np.ndarray, y: np.ndarray,
                    processes: int, finished: Callable[[int, MLPClassifier, float], None]
                    ) -> None:
    # Spawned, as the sweep's workers are: a forked child would inherit the locks of this
    # process's threads (MLflow's among them) in whatever state they were. A stopping signal
    # is only recorded meanwhile (cooperative) and acted on between two results, so that no
    # process is left half-started; then every process is ended at once.
    ctx = spawn_context()
    with stop_signals("cooperative"):
        tasks, results = ctx.Queue(), ctx.Queue()
        for i, (params, epochs, _) in enumerate(jobs):
            tasks.put((i, params, epochs))
        for _ in range(processes):
            tasks.put(None)
        procs = [ctx.Process(target=_refit_process, args=(x, y, tasks, results),
                             name=f"hpsearch-refit-{k}", daemon=True)
                 for k in range(processes)]
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # inherited
        try:
            for p in procs:
                p.start()
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            left = len(jobs)
            while left:
                check_stop()
                try:
                    i, model, seconds = results.get(timeout=1.0)
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise CheckpointError(f"a refit process ended with exit status "
                                              f"{dead[0].exitcode}: nothing exported") from None
                    continue
                if model is None:
                    raise CheckpointError(f"refit of {jobs[i][2]} failed: {seconds}")
                finished(i, model, seconds)
                left -= 1
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for p in procs:  # at once: a divergence or a stopping signal ends every member
                if p.pid is not None and p.exitcode is None:
                    p.terminate()
            for p in procs:
                if p.pid is not None:
                    p.join()


def refit_ensemble(ens: EnsembleClassifier, splits: Splits,
                   echo: Callable[[str], None] = print, processes: int = 1
                   ) -> tuple[EnsembleClassifier, dict[str, Any]]:
    """Every member refit, each keeping its weight; ``processes`` of them at once (each with
    one BLAS thread), or one after the other in this process."""
    jobs = [(refit_params(m), refit_epochs(m), f"member {i}/{len(ens.members)} (trial {n})")
            for i, (m, _, n) in enumerate(ens.members, 1)]
    x, y = _train_val(splits)
    done: dict[int, tuple[MLPClassifier, dict[str, Any]]] = {}

    def finished(i: int, refit: MLPClassifier, seconds: float) -> None:
        params, epochs, label = jobs[i]
        done[i] = refit, _checked(refit, seconds, label, epochs, len(y), params["schedule"],
                                  echo)

    processes = max(1, min(processes, len(jobs)))
    if processes == 1:
        for i, (params, epochs, label) in enumerate(jobs):
            echo(_announce(label, params, epochs, len(y)))
            finished(i, *_train(params, epochs, x, y))
    else:
        echo(f"refit: {len(jobs)} members on train + validation ({len(y)} samples), "
             f"{processes} at a time...")
        _refit_parallel(jobs, x, y, processes, finished)
    notes = [done[i][1] for i in range(len(jobs))]
    for i, (chosen, _, _) in enumerate(ens.members):
        keep_columns(chosen, done[i][0])
    members = [(done[i][0], w, n) for i, (_, w, n) in enumerate(ens.members)]
    return EnsembleClassifier(members), {
        "samples": notes[0]["samples"], "epochs": [n["epochs"] for n in notes],
        "seconds": round(sum(n["seconds"] for n in notes), 1)}


# -- the sweep's budget ----------------------------------------------------------------------
# an allowance for what an export does besides training: load the kept checkpoints, score them
# on validation, write, log and register the model (bench/anytime.py times the same export
# without a refit: docs/benchmarks.md)
EXPORT_SECONDS = 20.0


def refits_in_budget(spec: SweepSpec) -> bool:
    """Whether ``budget.timeout`` covers a refit (``export: {in_budget: true, refit: true}``)."""
    return spec.export_in_budget and spec.export_refit


def refit_members(spec: SweepSpec) -> int:
    """How many models an export of ``spec`` refits at most: the ensemble's distinct picks
    (never more than the kept checkpoints), else the one chosen model."""
    return min(spec.export_ensemble or 1, spec.keep_checkpoints)


def refit_processes(spec: SweepSpec) -> int:
    """How many members an export refits at once at most: as many as the sweep has workers on
    this machine (``budget.workers``; auto: one per core)."""
    return max(1, spec.budget.workers or os.cpu_count() or 1)


def reserve_seconds(study: optuna.Study, spec: SweepSpec,
                    trials: list[optuna.trial.FrozenTrial]) -> float:
    """The wall-clock time an in-budget export needs now, which the search leaves it: the top
    M complete trials' mean training time (M = ``refit_members``) scaled to train + validation,
    in rounds over ``refit_processes``, at least the longest one, plus the export's own work
    (loading, scoring, writing the model). 0 when the spec exports after the sweep, or without
    refit (an export without training takes seconds), or before any trial has completed."""
    if not refits_in_budget(spec):
        return 0.0
    m = refit_members(spec)
    times = [train_seconds(t) for t in ranked(study, trials)[:m]]
    if not times:
        return 0.0
    data = study.user_attrs.get(StudyKey.DATA, {})
    n_train, n_val = data.get("n_train"), data.get("n_val")
    scale = (n_train + n_val) / n_train if n_train and n_val else 1.25
    rounds = math.ceil(m / min(m, refit_processes(spec)))
    return EXPORT_SECONDS + scale * max(max(times), rounds * statistics.fmean(times))
