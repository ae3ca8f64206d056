"""A worker: joins the study, runs the trial loop (with storage-outage retry and the progress
line), and, for a sweep with several workers on one machine, the worker processes and the
signals passed on to them."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from .._version import __version__
from ..errors import (
    HpsearchError,
    StorageError,
    describe,
    first_line,
    install_masking,
    is_outage,
)
from ..spec import datasets
from ..spec.registries import make_pruner, make_sampler
from ..spec.space import grid
from ..study.faults import StaleTrialHandler
from ..study.noise import converged, noise_floor
from ..study.store import (
    FINISHED,
    StudyKey,
    TrialKey,
    budget_counts,
    counted_trials,
    join_storage_study,
    ranked,
    stale_trial_callback,
    study_spec,
)
from ..tracking.backend import resolve_tracking_uri
from ..tracking.messages import TrialLogFront
from ..tracking.remote import Link, RemoteTrialLog
from ..tracking.tracker import make_tracker
from ..tracking.trial_log import AsyncTrialLog
from ..tracking.writer import MachineWriter, die_with_parent
from .losses import (
    quiet_heartbeat_errors,
    retry_interrupted,
    retry_lost_trial,
    wait_for_storage,
    wait_for_tracking,
)
from .refit import refits_in_budget, reserve_seconds
from .reseed import reseed_due, reseeding, trial_seconds
from .retention import retain
from .signals import check_stop, exit_status, signal_of, spawn_context, stop_signals
from .trial import Context, TrackingLost, TrialFailed, objective

STOP_EXIT = {128 + s: s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def join_study(study_name: str, storage_url: str | None = None, tracking_uri: str | None = None,
               echo: Callable[[str], None] = print, worker: int = 0,
               splits: datasets.Splits | None = None, checked: bool = False,
               log: TrialLogFront | None = None) -> Context:
    """Everything a worker needs, read back from the study the sweep command created.
    ``worker`` tells the workers of one machine apart (it shifts the sampler's seed);
    ``checked``: the sweep command has just opened the tracking store and made the parent run,
    so this worker opens it in the background only (~1 s of a worker's start); ``log``: the
    machine's writer's (writer.py), else this worker writes its runs itself."""
    study = join_storage_study(study_name, storage_url, StaleTrialHandler())
    attrs = study.user_attrs
    spec = study_spec(study)
    s = spec.sampler
    study.sampler = make_sampler(s.name, s.options, s.seed, grid(spec.space),
                                 len(study.get_trials(deepcopy=False)), worker)
    study.pruner = make_pruner(spec.pruner.name, spec.pruner.options, spec.training.max_epochs)
    uri = resolve_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                               or attrs.get(StudyKey.TRACKING_URI))
    if not checked:  # a store that is down or refuses us fails here, before any trial
        make_tracker(uri).check_run(attrs[StudyKey.PARENT_RUN_ID])
    handler = stale_trial_callback(study)
    if isinstance(handler, StaleTrialHandler):  # close dead workers' runs as Optuna fails them
        handler.attach(lambda *args: make_tracker(uri).close_lost_trial(*args))
    if log is None:
        log = AsyncTrialLog(uri, echo)
        log.warm_up()
    splits = splits or datasets.load_splits(spec.data)
    if StudyKey.DATA not in attrs:  # for the report's sampling-noise check
        study.set_user_attr(StudyKey.DATA, {"n_train": len(splits.train[1]),
                                            "n_val": len(splits.val[1]),
                                            "n_test": len(splits.test[1]),
                                            "fingerprint": splits.fingerprint})
    tags = {"data.fingerprint": splits.fingerprint, "data.name": splits.name,
            "data.seed": str(spec.data.seed), "model.seed": str(spec.training.seed),
            "hpsearch.version": __version__,
            "mlflow.source.git.commit": attrs.get(StudyKey.GIT_COMMIT, "unknown"),
            **where_it_runs()}
    return Context(spec, study, attrs[StudyKey.EXPERIMENT_ID], attrs[StudyKey.PARENT_RUN_ID],
                   splits, int(attrs[StudyKey.N_TRIALS]), log, echo, tags)


def where_it_runs() -> dict[str, str]:
    """Tags naming the process that runs a trial (host:pid) and, under Slurm, its job (array)
    task, so that an operator finds the task behind a run (and `scancel`s or reads its log)."""
    import socket

    tags = {"hpsearch.worker": f"{socket.gethostname()}:{os.getpid()}"}
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        tags["slurm.job"] = (f"{os.environ['SLURM_ARRAY_JOB_ID']}_"
                             f"{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}")
    elif os.environ.get("SLURM_JOB_ID"):
        tags["slurm.job"] = os.environ["SLURM_JOB_ID"]
    return tags


def run_trials(ctx: Context, quota: int | None, deadline: float | None) -> int:
    """Run trials until ``quota`` are done here (None: until the study holds n_trials finished
    trials) or the deadline passes, then the reseed trials (reseed.py) if the spec asks for
    them. Returns how many ran here.

    When the storage connection drops, wait with exponential backoff; if it comes back, the
    trial that was running is failed and enqueued again and the sweep goes on; if not, stop
    with a StorageError that says what to do."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    done = 0
    previous_hook = threading.excepthook
    threading.excepthook = quiet_heartbeat_errors(previous_hook)
    try:
        while True:
            try:
                check_stop()  # a stopping signal that came between two trials
                # one read of the study's trials for the plan below; none (None) when a quota
                # and no deadline decide: nothing below needs them then
                trials = None if quota is not None and deadline is None else \
                    ctx.study.get_trials(deepcopy=False)
                end = _trials_deadline(ctx, deadline, trials)
                if _search_over(ctx, quota, done, end, trials) and not reseeding(
                        ctx.study, ctx.spec, ctx.echo, end):
                    _say_reserve(ctx, deadline, end, trials)
                    break  # the search is over and no reseed trial waits
                ctx.study.optimize(lambda t: objective(ctx, t), n_trials=1,
                                   catch=(TrialFailed,))
                retain(ctx.study, ctx.spec.keep_checkpoints, ctx.last_trial, ctx.log,
                       ctx.experiment_id, ctx.splits)
                done += 1
                _report_trial(ctx)
                stop_reason(ctx)  # recorded in the study: the next _search_over sees it
            except KeyboardInterrupt:
                retry_interrupted(ctx)
                raise
            except TrackingLost as lost:
                retry_interrupted(ctx, ctx.last_trial)
                wait_for_tracking(ctx, lost)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                wait_for_storage(ctx, exc)
                retry_lost_trial(ctx)
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


def _trials_deadline(ctx: Context, deadline: float | None,
                     trials: list[FrozenTrial] | None) -> float | None:
    """When the sweep's trials must end: its deadline, less the time its in-budget export
    needs (``export: {in_budget: true}``; refit.reserve_seconds, estimated anew each time from
    the study's ``trials``)."""
    if deadline is None or not refits_in_budget(ctx.spec):
        return deadline
    return deadline - reserve_seconds(ctx.study, ctx.spec, _read(ctx, trials))


def _say_reserve(ctx: Context, deadline: float | None, end: float | None,
                 trials: list[FrozenTrial] | None) -> None:
    """When the in-budget export's reserve (``deadline - end``) is what ended the search (with
    time left, no reseed phase, no quota or n_trials reached first), say so, once per sweep."""
    study = ctx.study
    if deadline is None or end is None or end >= deadline or \
            study.user_attrs.get(StudyKey.RESEED_PHASE) or \
            study.user_attrs.get(StudyKey.RESERVE_SAID) == deadline:
        return
    now, trials = time.time(), _read(ctx, trials)
    last = trial_seconds(trials)
    if now >= deadline or now + last < end or \
            sum(budget_counts(trials)[:2]) >= ctx.n_trials:
        return
    study.set_user_attr(StudyKey.RESERVE_SAID, deadline)
    ctx.echo(f"the search ends with {deadline - now:.0f} s left: the export inside the budget "
             f"needs about {deadline - end:.0f} s (refit, scoring, writing), and a new trial "
             f"of about {last:.0f} s would not end before it")


def _read(ctx: Context, trials: list[FrozenTrial] | None) -> list[FrozenTrial]:
    """The study's trials: those already read, else read now."""
    return ctx.study.get_trials(deepcopy=False) if trials is None else trials


def _search_over(ctx: Context, quota: int | None, done: int, deadline: float | None,
                 trials: list[FrozenTrial] | None) -> bool:
    """Whether this worker starts no more search trials: its quota or the study's n_trials is
    reached, the deadline passed (with the export in the budget: a trial begun now would end
    after it), ``budget.stop`` fired, or the time left is the reseed's. ``trials``: the
    study's trials, read once for all of these (None: read here if needed)."""
    if quota is not None and done >= quota:
        return True
    if quota is None and sum(budget_counts(_read(ctx, trials))[:2]) >= ctx.n_trials:
        return True
    if deadline is not None:
        # with the export in the budget a trial must also end before it: one that is not pruned
        # takes trial_seconds (without, budget.timeout means no new trial after it)
        last = trial_seconds(_read(ctx, trials)) if ctx.spec.export_in_budget else 0.0
        if time.time() + last >= deadline:
            return True
    return bool(ctx.study.user_attrs.get(StudyKey.STOPPED)) or reseed_due(
        ctx.study, ctx.spec, deadline, trials)


def stop_reason(ctx: Context) -> str | None:
    """``budget.stop: converged``: the reason to stop (recorded in the study, so that every
    worker stops), or None to go on."""
    budget, study = ctx.spec.budget, ctx.study
    if budget.stop != "converged":
        return None
    recorded = study.user_attrs.get(StudyKey.STOPPED)
    if recorded:
        return str(recorded)
    trials = study.get_trials(deepcopy=False)
    best = ranked(study)
    floor = noise_floor(best[0], ctx.spec.objective.metric,
                        study.user_attrs.get(StudyKey.DATA, {}).get("n_val")) if best else None
    if floor is None:
        return None
    reason = converged(trials, counted_trials(trials), budget.patience_trials,
                       ctx.spec.objective.direction == "maximize", floor[0])
    if reason:
        study.set_user_attr(StudyKey.STOPPED, reason)
        ctx.echo(f"stopping: {reason}")
    return reason


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
    epochs = mine.user_attrs.get(TrialKey.EPOCHS_RUN, "-")
    secs = mine.user_attrs.get(TrialKey.TRAIN_TIME_S)
    of = mine.user_attrs.get(TrialKey.RESEED_OF)
    ctx.echo(f"[{bar}] {finished:>3}/{ctx.n_trials}  trial {mine.number:<3} "
             f"{mine.state.name:<8} {ctx.spec.objective.metric} {value}  best {best_txt}  "
             f"{epochs} epochs" + (f" {secs:.1f}s" if secs is not None else "") +
             (f"  (reseed of trial {of}, seed {mine.user_attrs.get(TrialKey.MODEL_SEED)})"
              if of is not None else ""))


def worker_process(study_name: str, storage_url: str, tracking_uri: str, quota: int,
                    deadline: float | None, blas_threads: int, worker: int,
                    errors: Any, link: Link | None = None) -> None:
    """Entry point of a worker process (spawned): one BLAS thread pool of its own size; its
    trial runs written by the sweep process (``link``), which it does not outlive. A
    user-facing error goes to ``errors`` for the sweep process to report, in one line."""
    from threadpoolctl import threadpool_limits

    install_masking()  # a new process: its own streams and log records
    threadpool_limits(blas_threads)
    if link is not None:
        die_with_parent()
    try:
        with stop_signals("worker"):
            ctx = join_study(study_name, storage_url, tracking_uri, worker=worker, checked=True,
                             log=RemoteTrialLog(link) if link is not None else None)
            run_trials(ctx, quota, deadline)
    except KeyboardInterrupt as exc:
        sys.exit(exit_status(exc))
    except Exception as exc:
        message = str(exc) if isinstance(exc, HpsearchError) else describe(exc)
        if message is None:
            raise
        errors.put(message)
        sys.exit(2)
    quick_exit(0)


def quick_exit(status: int) -> None:
    """End a process whose work is all written (the journal appends are fsynced, the trial log
    closed), without the interpreter's teardown of MLflow's, SQLAlchemy's and matplotlib's
    modules: ~0.8 s of every worker's end, measured."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run_processes(name: str, storage_url: str, tracking_uri: str, remaining: int,
                   workers: int, deadline: float | None,
                   writer: MachineWriter | None = None) -> int | None:
    """Run the trials in worker processes; the stopping signal that interrupted them, if any
    (passed on to every worker, which closes its running trial and exits 128 + signal).
    ``writer``: the machine's writer (a thread of this process) that writes their runs."""
    quotas = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    blas = max(1, (os.cpu_count() or 1) // workers)
    ctx = spawn_context()
    errors = ctx.SimpleQueue()
    procs = [ctx.Process(target=worker_process,
                         args=(name, storage_url, tracking_uri, q, deadline, blas, i + 1, errors,
                               writer.link(i) if writer is not None else None),
                         name=f"hpsearch-worker-{i}") for i, q in enumerate(quotas)]
    for p in procs:
        p.start()
    stopped: int | None = None
    while any(p.is_alive() for p in procs):
        try:
            for p in procs:
                while p.is_alive():
                    p.join(0.5)
                    if writer is not None:
                        writer.alive()  # a dead writer: its workers' links say so
        except KeyboardInterrupt as exc:
            # Ctrl-C in a terminal reaches the workers too; a signal sent to this process alone
            # (kill, timeout, systemd) does not: pass it on, then wait while they close their
            # running trials.
            stopped = signal_of(exc)
            for p in procs:
                if p.is_alive() and p.pid is not None:
                    os.kill(p.pid, stopped)
    if stopped is None:  # a worker stopped by a signal sent to it alone
        stopped = next((STOP_EXIT[p.exitcode] for p in procs if p.exitcode in STOP_EXIT), None)
    failed = [p for p in procs if p.exitcode != 0 and p.exitcode not in STOP_EXIT]
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
