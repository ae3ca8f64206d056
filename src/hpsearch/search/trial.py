"""One trial: the objective (sample, train, save, close), and a trial's end as a small value,
``TrialOutcome``, that the two stores are written from: the run's summary and tags (MLflow) and
the trial's attributes (Optuna)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..diagnosis.diagnostics import diagnose
from ..errors import describe
from ..model.estimator import MLPClassifier
from ..model.preprocessing import apply_input_transform, input_transform
from ..spec import datasets
from ..spec.schema import SweepSpec
from ..spec.space import model_params, suggest
from ..study.noise import trial_noise
from ..study.store import TrialKey, stored_trial
from ..tracking.messages import TrialLogFront
from ..tracking.tracker import split_inputs
from .callbacks import EpochLogger, PruningCallback
from .reseed import duplicate_of
from .retention import save_trial_checkpoint
from .signals import StopCallback, endless_trials, released, signal_name, signal_of


class TrialFailed(Exception):
    """Raised by the objective after recording a failed trial; the sweep goes on."""


@dataclass
class Prepared:
    """The splits transformed once per worker for one preprocessing (fitted on the training
    split), shared by every trial: a trial no longer converts and copies the data set."""
    offset: np.ndarray
    scale: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class Context:
    """One worker's view of the sweep (see worker.join_study)."""
    spec: SweepSpec
    study: optuna.Study
    experiment_id: str
    parent_id: str
    splits: datasets.Splits
    n_trials: int
    log: TrialLogFront  # writes this worker's trial runs (its .uri: the tracking URI)
    echo: Callable[[str], None] = print
    tags: dict[str, str] = field(default_factory=dict)
    last_trial: int = -1  # the trial this worker ran last
    interrupted: int | None = None  # the trial a stopping signal ended, to be retried
    prepared: dict[tuple[str, str], Prepared] = field(default_factory=dict)


def prepared(ctx: Context, preprocessing: str, dtype: str) -> Prepared:
    key = (preprocessing, dtype)
    if key not in ctx.prepared:
        sp = ctx.splits
        offset, scale = input_transform(sp.train[0].astype(dtype, copy=False), preprocessing,
                                        np.dtype(dtype))
        ctx.prepared[key] = Prepared(offset, scale, *(
            apply_input_transform(x, offset, scale) for x in (sp.train[0], sp.val[0],
                                                              sp.test[0])))
    return ctx.prepared[key]


class TrackingLost(Exception):
    """The trial ended while the tracking store did not answer: its run cannot be written now,
    so it is lost to the infrastructure (failed, retried, not counted)."""


@dataclass
class TrialOutcome:
    """How a trial ended, in the forms the stores take."""
    state: str  # COMPLETE, PRUNED, FAIL or INTERRUPTED
    summary: dict[str, float]  # the run's final metrics
    tags: dict[str, str]  # the run's tags
    attrs: dict[str, Any]  # the Optuna trial's user attributes
    history: list[dict[str, float]]
    diagnosis: dict[str, Any] | None


def trial_outcome(model: MLPClassifier, state: str, reason: str, seconds: float,
                  reference: float | None, spec: SweepSpec) -> TrialOutcome:
    """The end of a trial from its (possibly unfitted) model; ``reference`` is the best training
    accuracy of the study's other trials, for the underfitting rule."""
    history = list(getattr(model, "history_", []))
    best = getattr(model, "best_epoch_", 0)
    status = getattr(model, "status_", "not trained")
    summary: dict[str, float] = {"epochs_run": len(history), "train_time_s": seconds}
    attrs: dict[str, Any] = {}
    if history and best:
        rec = history[best - 1]
        summary |= {"best_epoch": best, "best_val_accuracy": rec["val_accuracy"],
                    "best_val_loss": rec["val_loss"],
                    "test_accuracy_at_best": rec["test_accuracy"]}
        attrs[TrialKey.TEST_ACCURACY_AT_BEST] = rec["test_accuracy"]
    tags = {"hpsearch.status": status}
    if reason:
        tags["optuna.trial.reason"] = reason
    diagnosis = None
    if history:
        diagnosis = diagnose(history, best or None, spec.training.max_epochs, reference,
                             spec.diagnostics, getattr(model, "status_", None))
        ev = diagnosis.evidence
        tags |= {"fit.verdict": diagnosis.verdict, "fit.advice": diagnosis.advice,
                 "fit.summary": diagnosis.summary}
        summary |= {f"fit.{k}": float(ev[k]) for k in
                    ("gap_at_best", "val_drop_from_peak", "gap_at_last", "val_loss_rise")
                    if k in ev}
        attrs |= {TrialKey.VERDICT: diagnosis.verdict, TrialKey.SUMMARY: diagnosis.summary}
        attrs |= {f"fit.{k}": float(ev[k]) for k in ("gap_at_best", "val_drop_from_peak",
                  "train_accuracy_at_best", "val_accuracy_at_best") if k in ev}
    attrs |= {k: summary[k] for k in (TrialKey.EPOCHS_RUN, TrialKey.TRAIN_TIME_S,
                                      TrialKey.BEST_EPOCH) if k in summary}
    attrs[TrialKey.STATUS] = status
    if reason:
        attrs[TrialKey.REASON] = reason
    return TrialOutcome(state, summary, tags, attrs, history,
                        diagnosis.to_dict() if diagnosis else None)


def _record(ctx: Context, trial: optuna.Trial, outcome: TrialOutcome,
            storage_ok: bool) -> None:
    """Close the trial's run (queued first, so it happens even if the storage is gone), then
    record the outcome in the trial (skipped when the storage is known lost)."""
    ctx.log.finish(trial.number, outcome.state, outcome.summary, outcome.tags, outcome.history,
                   outcome.diagnosis)
    if storage_ok:
        for key, value in outcome.attrs.items():
            trial.set_user_attr(key, value)


def objective(ctx: Context, trial: optuna.Trial) -> float:
    """Train one trial, log it as a child run, return the best validation score."""
    spec, log = ctx.spec, ctx.log
    ctx.last_trial = trial.number
    chosen = suggest(trial, spec.space)
    params = model_params(chosen, spec)
    params.setdefault("preprocessing", ctx.splits.preprocessing)
    reseed_of = trial.user_attrs.get(TrialKey.RESEED_OF)  # enqueued by reseed.reseeding
    if reseed_of is not None:
        params["random_state"] = trial.user_attrs[TrialKey.MODEL_SEED]
        twin = duplicate_of(ctx.study, trial)
        if twin is not None:  # never trained, so no run: the reason stays with the trial
            reason = (f"the same configuration and seed as trial {twin} (two workers began "
                      f"the reseed trials at once): not trained twice")
            trial.set_user_attr(TrialKey.STATUS, "duplicate")
            trial.set_user_attr(TrialKey.REASON, reason)
            raise optuna.TrialPruned(f"duplicate of trial {twin}")
    endless = trial.number in endless_trials()
    if endless:  # fault tests only: a trial that cannot end first (but on their release)
        params["max_epochs"] = 10**9
    logged = {**MLPClassifier(**params).get_params(),
              **{k: v for k, v in chosen.items() if k not in params}}
    data = prepared(ctx, logged["preprocessing"], logged["dtype"])
    model = MLPClassifier(**{**params, "preprocessing": "none"})  # data is transformed already
    tags = dict(ctx.tags)
    retry_of = retry_of_trial(ctx.study, trial)
    if retry_of is not None:
        tags["hpsearch.retry_of"] = str(retry_of)
        trial.set_user_attr(TrialKey.RETRY_OF, retry_of)
    if TrialKey.WARM_START_OF in trial.user_attrs:  # "<parent>#<number>", enqueued by warmstart
        tags["hpsearch.warm_start_of"] = str(trial.user_attrs[TrialKey.WARM_START_OF])
    if reseed_of is not None:
        tags |= {"hpsearch.reseed_of": str(reseed_of), "model.seed": str(params["random_state"])}
    log.start(ctx.experiment_id, ctx.parent_id, ctx.study.study_name, trial.number, logged, tags,
              split_inputs(ctx.splits))
    if retry_of is not None:  # the lost trial's run links to its retry
        log.tag_trial(ctx.study.study_name, retry_of, {"hpsearch.retried_as": str(trial.number)})
    logger = EpochLogger(log, trial.number)
    # a reseed trial measures a configuration's seed noise: pruning it would bias the mean
    pruning = PruningCallback(ctx.study, trial, spec.objective.metric,
                              spec.pruner if reseed_of is None else None)
    started = time.perf_counter()

    def close(state: str, reason: str = "", storage_ok: bool = True) -> None:
        logger.flush()
        reference = (best_train_accuracy(ctx.study, trial.number)
                     if storage_ok and getattr(model, "history_", None) else None)
        _record(ctx, trial, trial_outcome(model, state, reason, time.perf_counter() - started,
                                          reference, spec), storage_ok)

    try:
        sp = ctx.splits
        model.fit(data.train, sp.train[1], eval_sets={"val": (data.val, sp.val[1]),
                                                      "test": (data.test, sp.test[1])},
                  callbacks=[pruning, logger, StopCallback(), *([released] if endless else [])])
        model.set_input_transform(params["preprocessing"], data.offset, data.scale)
        if ctx.splits.columns:  # a table's rows, text and gaps included, are its inputs
            model.columns_ = ctx.splits.columns
    except KeyboardInterrupt as exc:
        ctx.interrupted = trial.number
        close("INTERRUPTED", f"interrupted by {signal_name(signal_of(exc))}; retried with the "
                             f"same parameters when the sweep resumes")
        raise
    except Exception as exc:  # one trial's bug or bad parameter must not stop the sweep
        lost = describe(exc)  # a storage outage or a disk failure: not the trial's fault
        if lost:
            close("FAIL", f"storage lost during the trial: {lost}; retried when it is back",
                  storage_ok=False)
            raise
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        close("FAIL", reason)
        raise TrialFailed(reason) from exc

    def end(state: str, reason: str = "") -> None:
        outage = log.outage
        if outage is not None:  # its run cannot be written now: a loss, not its own end
            why = f"tracking store lost during the trial ({outage[1]}); retried"
            close("FAIL", why)
            raise TrackingLost(why)
        close(state, reason)

    if pruning.reason:
        end("PRUNED", pruning.reason)
        raise optuna.TrialPruned(pruning.reason)
    if not model.best_epoch_:
        close("FAIL", model.stop_reason_)
        raise TrialFailed(model.stop_reason_)
    value = float(model.history_[model.best_epoch_ - 1][spec.objective.metric])
    x_val, y_val = ctx.splits.val  # the loss's noise needs the predictions (a bootstrap)
    proba = model.predict_proba(x_val) if spec.objective.metric == "val_loss" else None
    trial.set_user_attr(TrialKey.NOISE, trial_noise(spec.objective.metric, value, proba,
                                                    np.searchsorted(model.classes_, y_val)))
    try:
        save_trial_checkpoint(ctx.study, trial.number, model, {"trial": {
            "study": ctx.study.study_name, "number": trial.number, "value": value,
            "metric": spec.objective.metric, "params": chosen,
            "data_fingerprint": ctx.splits.fingerprint}})
    except OSError as exc:  # a full or read-only disk must not lose the recorded trial
        trial.set_user_attr(TrialKey.CHECKPOINT_ERROR, str(exc))
    end("COMPLETE", model.stop_reason_ if model.status_ == "diverged" else "")
    return value


def retry_of_trial(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The trial this one retries: set by `hpsearch recover`, the outage and interrupt paths
    (``retry_of``), or by Optuna's heartbeat retry (``failed_trial``)."""
    if TrialKey.RETRY_OF in trial.user_attrs:
        return int(trial.user_attrs[TrialKey.RETRY_OF])
    return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(
        stored_trial(study, trial))


def best_train_accuracy(study: optuna.Study, exclude: int) -> float | None:
    """The best training accuracy (at the kept epoch) of the study's other finished trials."""
    key = TrialKey.TRAIN_ACCURACY_AT_BEST
    values = [t.user_attrs[key] for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.number != exclude and key in t.user_attrs]
    return max(values) if values else None
