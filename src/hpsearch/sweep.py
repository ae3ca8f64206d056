"""Studies: creation and resumption, the objective of one trial, and worker processes.

A sweep is an Optuna study plus an MLflow experiment. ``run_sweep`` creates (or resumes) both,
records the spec in the study so that ``hpsearch worker NAME`` can join from anywhere, creates the
one parent run, then runs trials in this process or in K worker processes until the study holds
``n_trials`` finished trials (complete, pruned or failed).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from . import datasets
from .config import SweepSpec, check_study_name, load_spec, parse_spec
from .diagnostics import ADVICE, diagnose, revisit
from .errors import (
    HpsearchError,
    SpecError,
    StorageError,
    first_line,
    install_masking,
    mask_uri,
)
from .estimator import MLPClassifier
from .faults import (
    SafeJournalBackend,
    StaleTrialHandler,
    StopCallback,
    budget_counts,
    check_stop,
    describe,
    endless_trials,
    exit_status,
    is_outage,
    signal_name,
    signal_of,
    stop_signals,
)
from .space import grid, model_params, suggest
from .tracking import AsyncTrialLog, Tracker, make_tracker

DEFAULT_STORAGE = "mlruns/optuna.journal"
DEFAULT_CHECKPOINTS = "mlruns/checkpoints"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
ATTR = "hpsearch."  # prefix of the study's user attributes


class TrialFailed(Exception):
    """Raised by the objective after recording a failed trial; the sweep goes on."""


def resolve_storage_url(url: str | None = None) -> str:
    """The argument, else $HPSEARCH_STORAGE, else mlruns/optuna.journal; journal paths are made
    absolute so that worker processes find the same file."""
    url = url or os.environ.get("HPSEARCH_STORAGE") or DEFAULT_STORAGE
    if url.startswith("journal:") or url.endswith(".journal"):
        url = "journal:" + str(Path(url.removeprefix("journal:")).resolve())
    return url


def checkpoint_root() -> Path:
    """Where trials' best-epoch checkpoints go: $HPSEARCH_CHECKPOINTS or mlruns/checkpoints."""
    return Path(os.environ.get("HPSEARCH_CHECKPOINTS") or DEFAULT_CHECKPOINTS).resolve()


def checkpoint_dir(study: optuna.Study, number: int) -> Path:
    root = os.environ.get("HPSEARCH_CHECKPOINTS") or study.user_attrs.get(ATTR + "checkpoint_dir")
    return Path(root or DEFAULT_CHECKPOINTS) / study.study_name / f"trial-{number}"


def save_trial_checkpoint(study: optuna.Study, number: int, model: MLPClassifier,
                          extra: dict[str, Any]) -> Path:
    """Save a trial's best-epoch model; written beside and renamed, so never half there."""
    import shutil

    final = checkpoint_dir(study, number)
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    from .checkpoint import save_model

    save_model(model, tmp, extra)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def prune_checkpoints(study: optuna.Study, keep: int) -> list[int]:
    """Delete the checkpoints of finished trials outside the top ``keep`` complete trials.
    Safe with several workers: a running trial's checkpoint is never touched, and deleting is
    idempotent. Returns the trial numbers whose checkpoints were removed."""
    import shutil

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    top = {t.number for t in sorted(complete, key=lambda t: sign * float(t.value or 0))[:keep]}
    finished = {t.number for t in trials if t.state in FINISHED}
    removed: list[int] = []
    root = checkpoint_dir(study, 0).parent
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        if not d.name.startswith("trial-") or not d.name[6:].isdigit():
            continue
        n = int(d.name[6:])
        if n in finished and n not in top:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(n)
    return removed


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats on an RDB storage ($HPSEARCH_HEARTBEAT,
    default 30); a trial silent for three intervals is stale: failed and retried."""
    raw = os.environ.get("HPSEARCH_HEARTBEAT", "30")
    try:
        value = int(raw)
        if value < 1:
            raise ValueError
    except ValueError:
        raise StorageError(f"HPSEARCH_HEARTBEAT={raw!r}: expected a whole number of seconds "
                           f">= 1") from None
    return value


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (the default; ``journal:PATH`` or any path ending in .journal) or an RDB
    URL (``postgresql://...``, ``sqlite:///...``) with heartbeats and stale-trial retry."""
    try:
        if url.startswith("journal:") or url.endswith(".journal"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(SafeJournalBackend(str(path)))
        if "://" not in url:
            raise StorageError(f"storage {url!r}: not a URL (postgresql://..., sqlite:///...) "
                               f"nor a .journal file")
        engine: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            # A server that restarted leaves dead connections in the pool: test each before use.
            engine["pool_pre_ping"] = True
        if url.startswith("postgresql") and "connect_timeout" not in url:
            engine["connect_args"] = {"connect_timeout": 10}
        interval = heartbeat_interval()
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=interval,
                grace_period=3 * interval, heartbeat_stale_trial_callback=StaleTrialHandler())
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy / OS errors: unreachable, bad driver, read-only
        raise StorageError(f"storage {mask_uri(url)}: {first_line(exc)}") from None


def sampler_seed(seed: int | None, existing: int, worker: int) -> int | None:
    """The spec's sampler seed for a fresh study's first worker (so a one-worker sweep is
    reproducible); shifted for every other worker and every resume, which would otherwise draw
    the same random parameters again."""
    if seed is None:
        return None
    return (seed + 7919 * existing + 104729 * worker) % 2**32


def make_sampler(spec: SweepSpec, existing: int = 0,
                 worker: int = 0) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    seed = sampler_seed(s.seed, existing, worker)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        return optuna.samplers.GridSampler(grid(spec.space), seed=seed)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, **s.options)
    if s.name == "qmc":
        return optuna.samplers.QMCSampler(seed=s.seed, **s.options)
    return optuna.samplers.TPESampler(seed=seed, **s.options)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(**p.options)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=spec.training.max_epochs, **p.options)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**p.options)
    return optuna.pruners.NopPruner()


def fail_stale_trials(study: optuna.Study, tracker: Tracker) -> None:
    """On an RDB storage with heartbeats, fail the trials of dead workers now (their retries
    are enqueued and their runs closed), so that they are not counted as running."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return
    handler = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    if isinstance(handler, StaleTrialHandler):
        handler.attach(tracker.close_lost_trial)
    with warnings.catch_warnings():  # "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, by the budget rule: a trial lost to a fault
    and retried is not finished (``faults.budget_counts``)."""
    return budget_counts(study.get_trials(deepcopy=False))[:2]


# -- one worker's view of the sweep --------------------------------------------------------------
@dataclass
class Context:
    spec: SweepSpec
    study: optuna.Study
    experiment_id: str
    parent_id: str
    splits: datasets.Splits
    n_trials: int
    log: AsyncTrialLog  # writes this worker's trial runs (its .uri: the tracking URI)
    echo: Callable[[str], None] = print
    tags: dict[str, str] = field(default_factory=dict)
    last_trial: int = -1  # the trial this worker ran last
    interrupted: int | None = None  # the trial a stopping signal ended, to be retried
    prepared: dict[tuple[str, str], Prepared] = field(default_factory=dict)


@dataclass
class Prepared:
    """The splits transformed once per worker for one preprocessing (fitted on the training
    split), shared by every trial: a trial no longer converts and copies the data set."""
    offset: np.ndarray
    scale: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def prepared(ctx: Context, preprocessing: str, dtype: str) -> Prepared:
    from .estimator import apply_input_transform, input_transform

    key = (preprocessing, dtype)
    if key not in ctx.prepared:
        sp = ctx.splits
        offset, scale = input_transform(sp.train[0].astype(dtype, copy=False), preprocessing,
                                        np.dtype(dtype))
        ctx.prepared[key] = Prepared(offset, scale, *(
            apply_input_transform(x, offset, scale) for x in (sp.train[0], sp.val[0],
                                                              sp.test[0])))
    return ctx.prepared[key]


def _load_splits(spec: SweepSpec) -> datasets.Splits:
    d = spec.data
    ds = datasets.load(d.dataset, data_dir=d.data_dir, target=d.target)
    return datasets.split(ds, d.val_fraction, d.test_fraction, d.seed)


def join_storage_study(study_name: str, storage_url: str | None = None) -> optuna.Study:
    """Load an existing study; StorageError naming the storage when there is none."""
    check_study_name(study_name)
    storage_url = resolve_storage_url(storage_url)
    if (storage_url.startswith("journal:") or storage_url.endswith(".journal")) and \
            not Path(storage_url.removeprefix("journal:")).exists():
        raise StorageError(f"no study named {study_name!r}: {storage_url} does not exist "
                           f"(run `hpsearch sweep` first, from the same directory)")
    storage = open_storage(storage_url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise StorageError(f"no study named {study_name!r} in {mask_uri(storage_url)} "
                           f"(run `hpsearch sweep` first)") from None


def study_spec(study: optuna.Study) -> SweepSpec:
    """The sweep spec recorded in a study by `hpsearch sweep`; StorageError for other studies."""
    import yaml

    attrs = study.user_attrs
    if ATTR + "spec" not in attrs:
        raise StorageError(f"study {study.study_name!r} was not created by hpsearch (or its "
                           f"first `hpsearch sweep` stopped before recording the spec)")
    return parse_spec(yaml.safe_load(attrs[ATTR + "spec"]),
                      attrs.get(ATTR + "spec_path", "<study>"), attrs[ATTR + "spec"])


def join_study(study_name: str, storage_url: str | None = None, tracking_uri: str | None = None,
               echo: Callable[[str], None] = print, worker: int = 0,
               splits: datasets.Splits | None = None) -> Context:
    """Everything a worker needs, read back from the study the sweep command created.
    ``worker`` tells the workers of one machine apart (it shifts the sampler's seed)."""
    study = join_storage_study(study_name, storage_url)
    attrs = study.user_attrs
    spec = study_spec(study)
    study.sampler = make_sampler(spec, len(study.get_trials(deepcopy=False)), worker)
    study.pruner = make_pruner(spec)
    tracker = make_tracker(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                           or attrs.get(ATTR + "tracking_uri"))
    tracker.check_run(attrs[ATTR + "parent_run_id"])
    handler = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if isinstance(handler, StaleTrialHandler):  # close dead workers' runs as Optuna fails them
        handler.attach(tracker.close_lost_trial)
    log = AsyncTrialLog(tracker.uri)
    log.warm_up()
    splits = splits or _load_splits(spec)
    if ATTR + "data" not in attrs:  # for the report's sampling-noise check
        study.set_user_attr(ATTR + "data", {"n_train": len(splits.train[1]),
                                            "n_val": len(splits.val[1]),
                                            "n_test": len(splits.test[1]),
                                            "fingerprint": splits.fingerprint})
    tags = {"data.fingerprint": splits.fingerprint, "data.name": splits.name,
            "data.seed": str(spec.data.seed), "model.seed": str(spec.training.seed),
            "hpsearch.version": __import__("hpsearch").__version__,
            "mlflow.source.git.commit": attrs.get(ATTR + "git_commit", "unknown")}
    return Context(spec, study, attrs[ATTR + "experiment_id"],
                   attrs[ATTR + "parent_run_id"], splits, int(attrs[ATTR + "n_trials"]), log,
                   echo, tags)


class PruningCallback:
    """Reports the objective metric each epoch and stops training when the pruner says so,
    remembering why: the epoch, the value and the threshold the pruner compared it with."""

    def __init__(self, ctx: Context, trial: optuna.Trial) -> None:
        self.ctx, self.trial = ctx, trial
        self.metric = ctx.spec.objective.metric
        self.reason = ""

    def on_epoch_end(self, record: dict[str, float]) -> bool:
        epoch, value = int(record["epoch"]), float(record[self.metric])
        if not math.isfinite(value):
            return False
        self.trial.report(value, epoch)
        if not self.trial.should_prune():
            return False
        others = [t.intermediate_values[epoch] for t in self.ctx.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if epoch in t.intermediate_values]
        pruner = self.ctx.spec.pruner
        if others and pruner.name == "median":
            cut = f"the median {np.median(others):.4f} of {len(others)} earlier trials"
        elif others:
            rf = pruner.options.get("reduction_factor", 3)
            q = 1 - 1 / rf if self.ctx.spec.objective.direction == "maximize" else 1 / rf
            cut = (f"the top-1/{rf} cutoff {np.quantile(others, q):.4f} of {len(others)} "
                   f"trials at this epoch")
        else:
            cut = "the pruner's threshold"
        self.reason = (f"pruned at epoch {epoch}: {self.metric} {value:.4f} was not better than "
                       f"{cut} ({pruner.name} pruner)")
        return True


def objective(ctx: Context, trial: optuna.Trial) -> float:
    """Train one trial, log it as a child run, return the best validation score."""
    from .tracking import EpochLogger

    spec, log = ctx.spec, ctx.log
    ctx.last_trial = trial.number
    chosen = suggest(trial, spec.space)
    params = model_params(chosen, spec)
    params.setdefault("preprocessing", ctx.splits.preprocessing)
    if trial.number in endless_trials():  # fault tests only: a trial that cannot end first
        params["max_epochs"] = 10**9
    logged = {**MLPClassifier(**params).get_params(),
              **{k: v for k, v in chosen.items() if k not in params}}
    data = prepared(ctx, logged["preprocessing"], logged["dtype"])
    model = MLPClassifier(**{**params, "preprocessing": "none"})  # data is transformed already
    tags = dict(ctx.tags)
    retry_of = _retry_of(ctx.study, trial)
    if retry_of is not None:
        tags["hpsearch.retry_of"] = str(retry_of)
        trial.set_user_attr("retry_of", retry_of)
    log.start(ctx.experiment_id, ctx.parent_id, ctx.study.study_name, trial.number, logged, tags)
    if retry_of is not None:  # the lost trial's run links to its retry
        log.tag_trial(ctx.study.study_name, retry_of, {"hpsearch.retried_as": str(trial.number)})
    logger = EpochLogger(log, trial.number)
    pruning = PruningCallback(ctx, trial)
    started = time.perf_counter()

    def close(state: str, reason: str = "", storage_ok: bool = True) -> None:
        """Close the trial's run (queued first, so it happens even if the storage is gone),
        then record the summary in the trial (skipped when the storage is known lost)."""
        logger.flush()
        history = getattr(model, "history_", [])
        summary: dict[str, float] = {"epochs_run": len(history),
                                     "train_time_s": time.perf_counter() - started}
        best = getattr(model, "best_epoch_", 0)
        attrs: dict[str, Any] = {}
        if history and best:
            rec = history[best - 1]
            summary |= {"best_epoch": best, "best_val_accuracy": rec["val_accuracy"],
                        "best_val_loss": rec["val_loss"],
                        "test_accuracy_at_best": rec["test_accuracy"]}
            attrs["test_accuracy_at_best"] = rec["test_accuracy"]
        tags = {"hpsearch.status": getattr(model, "status_", "not trained")}
        if reason:
            tags["optuna.trial.reason"] = reason
        diagnosis = None
        if history:
            reference = (_study_best_train_accuracy(ctx.study, trial.number) if storage_ok
                         else None)
            diagnosis = diagnose(history, best or None, spec.training.max_epochs, reference,
                                 spec.diagnostics, getattr(model, "status_", None))
            ev = diagnosis.evidence
            tags |= {"fit.verdict": diagnosis.verdict, "fit.advice": diagnosis.advice,
                     "fit.summary": diagnosis.summary}
            summary |= {f"fit.{k}": float(ev[k]) for k in
                        ("gap_at_best", "val_drop_from_peak", "gap_at_last", "val_loss_rise")
                        if k in ev}
            attrs |= {"fit.verdict": diagnosis.verdict, "fit.summary": diagnosis.summary}
            attrs |= {f"fit.{k}": float(ev[k]) for k in ("gap_at_best", "val_drop_from_peak",
                      "train_accuracy_at_best", "val_accuracy_at_best") if k in ev}
        attrs |= {k: summary[k] for k in ("epochs_run", "train_time_s", "best_epoch")
                  if k in summary}
        attrs["status"] = tags["hpsearch.status"]
        if reason:
            attrs["reason"] = reason
        title = f"{ctx.study.study_name} trial {trial.number} ({state.lower()})"
        log.finish(trial.number, state, summary, tags, list(history), best, title,
                   diagnosis.to_dict() if diagnosis else None)
        if storage_ok:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)

    try:
        sp = ctx.splits
        model.fit(data.train, sp.train[1], eval_sets={"val": (data.val, sp.val[1]),
                                                      "test": (data.test, sp.test[1])},
                  callbacks=[pruning, logger, StopCallback()])
        model.set_input_transform(params["preprocessing"], data.offset, data.scale)
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

    if pruning.reason:
        close("PRUNED", pruning.reason)
        raise optuna.TrialPruned(pruning.reason)
    if not model.best_epoch_:
        close("FAIL", model.stop_reason_)
        raise TrialFailed(model.stop_reason_)
    value = float(model.history_[model.best_epoch_ - 1][spec.objective.metric])
    try:
        save_trial_checkpoint(ctx.study, trial.number, model, {"trial": {
            "study": ctx.study.study_name, "number": trial.number, "value": value,
            "metric": spec.objective.metric, "params": chosen,
            "data_fingerprint": ctx.splits.fingerprint}})
    except OSError as exc:  # a full or read-only disk must not lose the recorded trial
        trial.set_user_attr("checkpoint_error", str(exc))
    close("COMPLETE", model.stop_reason_ if model.status_ == "diverged" else "")
    return value


def _retry_of(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The trial this one retries: set by `hpsearch recover` or the storage-outage path
    (``retry_of``), or by Optuna's heartbeat retry (``failed_trial``)."""
    if "retry_of" in trial.user_attrs:
        return int(trial.user_attrs["retry_of"])
    frozen = study._storage.get_trial(trial._trial_id)
    return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def _study_best_train_accuracy(study: optuna.Study, exclude: int) -> float | None:
    """The best training accuracy (at the kept epoch) of the study's other finished trials."""
    values = [t.user_attrs["fit.train_accuracy_at_best"] for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.number != exclude and "fit.train_accuracy_at_best" in t.user_attrs]
    return max(values) if values else None


def verdicts(trials: list[FrozenTrial], spec: SweepSpec) -> dict[int, tuple[str, str]]:
    """Each diagnosed trial's (verdict, summary), with the underfitting rule judged against the
    study as it is now. A trial is diagnosed when it ends, against the trials finished before
    it; the first trials of a study had nothing to compare with, so a trial far below the
    study's final best training accuracy could keep ``good_fit``."""
    out: dict[int, tuple[str, str]] = {}
    # the two best training accuracies: every trial's reference is the best of the others
    top = sorted(((float(t.user_attrs["fit.train_accuracy_at_best"]), t.number) for t in trials
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                  and "fit.train_accuracy_at_best" in t.user_attrs), reverse=True)[:2]
    for t in trials:
        a = t.user_attrs
        if "fit.verdict" not in a:
            continue
        out[t.number] = (str(a["fit.verdict"]), str(a.get("fit.summary", "")))
        others = [acc for acc, number in top if number != t.number]
        if "fit.train_accuracy_at_best" in a and "fit.gap_at_best" in a:
            new = revisit(out[t.number][0], float(a["fit.train_accuracy_at_best"]),
                          float(a["fit.gap_at_best"]), others[0] if others else None,
                          spec.diagnostics)
            if new:
                out[t.number] = new
    return out


def refresh_verdicts(study: optuna.Study, spec: SweepSpec, tracker: Tracker) -> list[int]:
    """Tag the runs of the trials whose verdict the study's final best changed (`verdicts`) with
    the new verdict, summary and advice. Optuna keeps a finished trial's attributes as they
    were, so `status`, `report` and `export` call `verdicts` themselves; the study remembers
    which runs were tagged. Returns the trial numbers tagged now."""
    trials = study.get_trials(deepcopy=False)
    stored = {t.number: str(t.user_attrs.get("fit.verdict")) for t in trials}
    done = dict(study.user_attrs.get(ATTR + "revisited", {}))
    tagged = []
    for number, (verdict, summary) in verdicts(trials, spec).items():
        if verdict == stored[number] or done.get(str(number)) == verdict:
            continue
        run_id = tracker.trial_run_id(study.study_name, number)
        if run_id is None:  # no run (tracking off, or it failed): a later call may find one
            continue
        tracker.set_tags(run_id, {
            "fit.verdict": verdict, "fit.summary": summary, "fit.advice": ADVICE[verdict],
            "fit.revisited": f"{stored[number]} when the trial ended; {verdict} against the "
                             f"study's later trials"})
        done[str(number)] = verdict
        tagged.append(number)
    if tagged:
        study.set_user_attr(ATTR + "revisited", done)
    return tagged


def storage_retries() -> int:
    """Reconnection attempts after a storage outage ($HPSEARCH_STORAGE_RETRIES, default 6:
    waits of 1, 2, 4, 8, 16 and 32 s, about a minute in all)."""
    raw = os.environ.get("HPSEARCH_STORAGE_RETRIES", "6")
    try:
        return max(0, int(raw))
    except ValueError:
        raise StorageError(f"HPSEARCH_STORAGE_RETRIES={raw!r}: expected a whole number") from None


def run_trials(ctx: Context, quota: int | None, deadline: float | None) -> int:
    """Run trials until ``quota`` are done here (None: until the study holds n_trials finished
    trials) or the deadline passes. Returns how many ran here.

    When the storage connection drops, wait with exponential backoff; if it comes back, the
    trial that was running is failed and enqueued again and the sweep goes on; if not, stop
    with a StorageError that says what to do."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    done = 0
    previous_hook = threading.excepthook
    threading.excepthook = _quiet_heartbeat_errors(previous_hook)
    try:
        while True:
            try:
                check_stop()  # a stopping signal that came between two trials
                if quota is not None and done >= quota:
                    break
                if quota is None and sum(count_trials(ctx.study)) >= ctx.n_trials:
                    break
                if deadline is not None and time.time() >= deadline:
                    break
                ctx.study.optimize(lambda t: objective(ctx, t), n_trials=1,
                                   catch=(TrialFailed,))
                prune_checkpoints(ctx.study, ctx.spec.keep_checkpoints)
                done += 1
                _report_trial(ctx)
            except KeyboardInterrupt:
                _retry_interrupted(ctx)
                raise
            except Exception as exc:
                if not is_outage(exc):
                    raise
                _wait_for_storage(ctx, exc)
                _retry_lost_trial(ctx)
    finally:
        threading.excepthook = previous_hook
        pending = sys.exc_info()[1]
        try:
            ctx.log.close()  # every finished trial's run is closed before this returns
        except Exception as closing:
            if pending is None:
                raise
            # The error already on its way out (a lost storage, say) is the one the user must
            # act on first; the tracking store failing as well is reported beside it.
            ctx.echo("tracking also failed: " + (describe(closing) or first_line(closing)))
    return done


def _quiet_heartbeat_errors(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Optuna's heartbeat thread dies with a traceback when the storage drops; the main loop
    reports the outage in one line instead."""

    def quiet(args: Any) -> None:
        if args.exc_value is not None and is_outage(args.exc_value):
            return
        hook(args)

    return quiet


def _wait_for_storage(ctx: Context, exc: BaseException) -> None:
    """Back off 1, 2, 4, ... s until the storage answers again; StorageError after the last
    attempt."""
    retries = storage_retries()
    what = describe(exc) or first_line(exc)
    ctx.echo(f"storage lost ({what}); retrying up to {retries} times")
    waited = 0
    for attempt in range(retries):
        delay = 2 ** attempt
        time.sleep(delay)
        waited += delay
        try:
            count_trials(ctx.study)
        except Exception as again:
            if not is_outage(again):
                raise
            continue
        ctx.echo(f"storage back after {waited} s; going on")
        return
    running = ctx.last_trial
    raise StorageError(
        f"storage unreachable for {waited} s after {retries} retries ({what}); stopped. "
        f"Trial {running} may be left RUNNING: when the storage is back, `hpsearch recover "
        f"{ctx.study.study_name}` fails and retries it, and the same command resumes")


def _retry_lost_trial(ctx: Context) -> None:
    """After an outage: this worker's last trial, if the storage still shows it RUNNING, is
    failed and its parameters enqueued again; its MLflow run is already closed. A lost trial
    does not count towards the budget (nor this worker's quota): its retry does."""
    from .faults import fail_and_retry

    if ctx.last_trial < 0:
        return
    trials = ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    lost = next((t for t in trials if t.number == ctx.last_trial), None)
    if lost is None or fail_and_retry(ctx.study, lost) is None:
        return
    ctx.echo(f"trial {lost.number}: FAIL (storage lost while it ran), parameters enqueued "
             f"for a retry")


def _retry_interrupted(ctx: Context) -> None:
    """After a stopping signal: the trial it ended (Optuna has made it FAIL) is enqueued again
    with its parameters, so that resuming runs it and the budget is not spent on it."""
    number, ctx.interrupted = ctx.interrupted, None
    if number is None:
        return
    trial = next((t for t in ctx.study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.FAIL or not trial.params:
        return
    ctx.study.enqueue_trial(trial.params, user_attrs={"retry_of": number},
                            skip_if_exists=False)


def _report_trial(ctx: Context) -> None:
    """One line per finished trial: progress, state, value, best so far (and tell MLflow)."""
    study = ctx.study
    trials = study.get_trials(deepcopy=False)
    mine = next((t for t in trials if t.number == ctx.last_trial), None)
    if mine is None or mine.state not in FINISHED:
        return
    finished = budget_counts(trials)[0]
    width = 20
    filled = min(width, round(width * finished / max(1, ctx.n_trials)))
    bar = "#" * filled + "-" * (width - filled)
    value = f"{mine.value:.4f}" if mine.value is not None else "-"
    best_txt = "-"
    try:
        best = study.best_trial
        best_txt = f"{best.value:.4f} (trial {best.number})"
        if best.number == mine.number:
            ctx.log.best(study.study_name, ctx.parent_id, best.number, float(best.value or 0.0),
                         ctx.spec.objective.metric,
                         {k: float(v) for k, v in best.params.items()
                          if isinstance(v, int | float) and not isinstance(v, bool)})
    except ValueError:
        pass  # no complete trial yet
    epochs = mine.user_attrs.get("epochs_run", "-")
    secs = mine.user_attrs.get("train_time_s")
    ctx.echo(f"[{bar}] {finished:>3}/{ctx.n_trials}  trial {mine.number:<3} "
             f"{mine.state.name:<8} {ctx.spec.objective.metric} {value}  best {best_txt}  "
             f"{epochs} epochs" + (f" {secs:.1f}s" if secs is not None else ""))


def _worker_process(study_name: str, storage_url: str, tracking_uri: str, quota: int,
                    deadline: float | None, blas_threads: int, worker: int,
                    errors: Any) -> None:
    """Entry point of a worker process (spawned): one BLAS thread pool of its own size. A
    user-facing error goes to ``errors`` for the sweep process to report, in one line."""
    from threadpoolctl import threadpool_limits

    install_masking()  # a new process: its own streams and log records
    threadpool_limits(blas_threads)
    try:
        with stop_signals("worker"):
            ctx = join_study(study_name, storage_url, tracking_uri, worker=worker)
            run_trials(ctx, quota, deadline)
    except KeyboardInterrupt as exc:
        sys.exit(exit_status(exc))
    except Exception as exc:
        message = str(exc) if isinstance(exc, HpsearchError) else describe(exc)
        if message is None:
            raise
        errors.put(message)
        sys.exit(2)


@dataclass
class SweepResult:
    study_name: str
    n_trials: int
    ran: int
    best_number: int | None
    best_value: float | None
    best_run_id: str | None
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    signal: int | None = None  # the stopping signal that interrupted the sweep

    @property
    def interrupted(self) -> bool:
        return self.signal is not None


def prepare_study(spec: SweepSpec, storage_url: str, tracker: Tracker, study_name: str,
                  n_trials: int | None) -> tuple[optuna.Study, str, str, int]:
    exp_id = tracker.experiment(study_name)  # a bad tracking URI fails before anything is made
    storage = open_storage(storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=study_name, storage=storage,
                                    direction=spec.objective.direction,  # type: ignore[arg-type]
                                    load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study with the other direction
        raise SpecError(f"{spec.path}: objective: {exc}") from None
    if study.direction.name.lower() != spec.objective.direction:
        raise SpecError(f"{spec.path}: objective.direction {spec.objective.direction} differs "
                        f"from the existing study {study_name!r} ({study.direction.name.lower()})"
                        f"; use another --study name")
    attrs = study.user_attrs
    total = n_trials or int(attrs.get(ATTR + "n_trials", spec.budget.n_trials))
    if n_trials is None and ATTR + "n_trials" in attrs:
        total = max(total, spec.budget.n_trials)
    from .tracking import git_commit

    commit = git_commit()  # one `git rev-parse` per sweep, for the parent run and the workers
    parent = attrs.get(ATTR + "parent_run_id")
    if not parent or not tracker.run_exists(parent):
        settings = {"spec_path": spec.path, "storage": mask_uri(storage_url),
                    "dataset": spec.data.dataset, "objective": spec.objective.metric,
                    "sampler": spec.sampler.name, "pruner": spec.pruner.name}
        parent = tracker.create_parent(exp_id, study_name, spec.path, spec.text, settings,
                                       commit)
    else:
        tracker.set_status(parent, "RUNNING")
    checkpoints = attrs.get(ATTR + "checkpoint_dir") or str(checkpoint_root())
    for key, value in {"spec": spec.text, "spec_path": spec.path, "n_trials": total,
                       "checkpoint_dir": checkpoints,
                       "experiment_id": exp_id, "parent_run_id": parent,
                       "tracking_uri": mask_uri(tracker.uri), "git_commit": commit}.items():
        study.set_user_attr(ATTR + key, value)
    return study, exp_id, parent, total


def run_sweep(spec_path: str | Path, n_trials: int | None = None, timeout: float | None = None,
              workers: int | None = None, storage_url: str | None = None,
              tracking_uri: str | None = None, study_name: str | None = None,
              echo: Callable[[str], None] = print) -> SweepResult:
    spec = load_spec(spec_path)
    storage_url = resolve_storage_url(storage_url)
    tracker = make_tracker(tracking_uri)
    name = check_study_name(study_name) if study_name else spec.name
    splits = _load_splits(spec)  # bad data fails here, before anything is recorded
    study, exp_id, parent, total = prepare_study(spec, storage_url, tracker, name, n_trials)
    fail_stale_trials(study, tracker)  # a dead worker's trial is not running
    finished, running = count_trials(study)
    remaining = max(0, total - finished - running)
    workers = workers or spec.budget.workers or os.cpu_count() or 1  # auto: one per core
    timeout = timeout if timeout is not None else spec.budget.timeout
    deadline = time.time() + timeout if timeout else None
    echo(f"sweep {name}: {finished} of {total} trials done, {remaining} to run on "
         f"{min(workers, max(1, remaining))} worker(s); {spec.data.dataset}, "
         f"objective {spec.objective.metric}, tracking {mask_uri(tracker.uri)}")
    stopped: int | None = None
    try:
        # in-process trials stop at a safe point; a coordinator of processes at once
        with stop_signals("cooperative" if workers == 1 else "immediate"):
            if remaining and workers == 1:
                ctx = join_study(name, storage_url, tracker.uri, echo, splits=splits)
                run_trials(ctx, remaining, deadline)
            elif remaining:
                stopped = _run_processes(name, storage_url, tracker.uri, remaining,
                                         min(workers, remaining), deadline)
    except KeyboardInterrupt as exc:
        stopped = signal_of(exc)
    except Exception:
        try:  # a sweep stopped by a fault: its run must not stay RUNNING (resuming reopens it)
            tracker.set_status(parent, "FAILED")
        except Exception:
            pass
        raise
    best = _finish(study, tracker, parent, spec, stopped is not None)
    return SweepResult(name, total, count_trials(study)[0] - finished, *best, parent, exp_id,
                       tracker.uri, stopped)


def _run_processes(name: str, storage_url: str, tracking_uri: str, remaining: int,
                   workers: int, deadline: float | None) -> int | None:
    """Run the trials in worker processes; the stopping signal that interrupted them, if any
    (passed on to every worker, which closes its running trial and exits 128 + signal)."""
    quotas = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    blas = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    procs = [ctx.Process(target=_worker_process,
                         args=(name, storage_url, tracking_uri, q, deadline, blas, i + 1, errors),
                         name=f"hpsearch-worker-{i}") for i, q in enumerate(quotas)]
    for p in procs:
        p.start()
    stopped: int | None = None
    while any(p.is_alive() for p in procs):
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt as exc:
            # Ctrl-C in a terminal reaches the workers too; a signal sent to this process alone
            # (kill, timeout, systemd) does not: pass it on, then wait while they close their
            # running trials.
            stopped = signal_of(exc)
            for p in procs:
                if p.is_alive() and p.pid is not None:
                    os.kill(p.pid, stopped)
    by_signal = {128 + s: s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    if stopped is None:  # a worker stopped by a signal sent to it alone
        stopped = next((by_signal[p.exitcode] for p in procs if p.exitcode in by_signal), None)
    failed = [p for p in procs if p.exitcode != 0 and p.exitcode not in by_signal]
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    if stopped is not None:  # an error met while closing after a signal is still worth a line
        for message in messages:
            print(f"error: {message}", file=sys.stderr)
    if failed and stopped is None:
        if not messages:
            raise StorageError(f"{len(failed)} worker process(es) stopped with an error "
                               f"(see above)")
        others = len(failed) - 1
        raise StorageError(messages[0] + (f" (and {others} more worker(s) stopped)"
                                          if others else ""))
    return stopped


def _finish(study: optuna.Study, tracker: Tracker, parent: str, spec: SweepSpec,
            interrupted: bool) -> tuple[int | None, float | None, str | None]:
    result: tuple[int | None, float | None, str | None] = (None, None, None)
    try:
        best = study.best_trial
        result = best.number, best.value, tracker.trial_run_id(study.study_name, best.number)
    except ValueError:
        pass
    if not interrupted:
        _log_study_plots(study, tracker, parent)
    tracker.set_status(parent, "KILLED" if interrupted else "FINISHED")
    refresh_verdicts(study, spec, tracker)  # after closing the run: a failure here loses nothing
    return result


def _log_study_plots(study: optuna.Study, tracker: Tracker, parent: str) -> None:
    """Optimization history and parameter importances, as PNGs on the parent run."""
    if tracker.uri == "none":
        return
    from .plots import study_plots

    with tempfile.TemporaryDirectory() as tmp:
        for fname, _caption in study_plots(study, Path(tmp)):
            tracker.log_artifact(parent, Path(tmp) / fname, "study")
