"""Trials lost to the infrastructure, from the worker's side: after a storage outage, a tracking
outage or a stopping signal, the trial that was running is failed and its parameters enqueued
again (its retry counts, it does not), and the worker waits for the store to answer (1, 2, 4 ...
s) before it goes on, or stops with one line."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from optuna.trial import TrialState

from ..errors import StorageError, describe, first_line, is_outage, storage_retries
from ..study.faults import fail_and_retry
from ..study.store import TrialKey, count_trials, inherited_attrs
from .trial import Context, TrackingLost


def quiet_heartbeat_errors(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Optuna's heartbeat thread dies with a traceback when the storage drops; the main loop
    reports the outage in one line instead."""

    def quiet(args: Any) -> None:
        if args.exc_value is not None and is_outage(args.exc_value):
            return
        hook(args)

    return quiet


def wait_for_storage(ctx: Context, exc: BaseException) -> None:
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


def wait_for_tracking(ctx: Context, lost: TrackingLost) -> None:
    """A trial ended while the tracking store did not answer: it is failed and retried (above);
    wait while the trial log retries (1, 2, 4 ... s) and go on once the store answers."""
    ctx.echo(f"trial {ctx.last_trial}: FAIL ({lost}), parameters enqueued for a retry; "
             f"waiting for the tracking store")
    back = ctx.log.wait_back()
    if back is None:
        ctx.log.check()  # the writer gave up: its error stops this worker in one line
        raise StorageError(f"tracking store unreachable ({lost}); stopped")
    ctx.echo(f"tracking store back after {back:.0f} s; going on")


def retry_lost_trial(ctx: Context) -> None:
    """After an outage: this worker's last trial, if the storage still shows it RUNNING, is
    failed and its parameters enqueued again; its MLflow run is already closed. A lost trial
    does not count towards the budget (nor this worker's quota): its retry does."""
    if ctx.last_trial < 0:
        return
    trials = ctx.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    lost = next((t for t in trials if t.number == ctx.last_trial), None)
    if lost is None or fail_and_retry(ctx.study, lost) is None:
        return
    ctx.echo(f"trial {lost.number}: FAIL (storage lost while it ran), parameters enqueued "
             f"for a retry")


def retry_interrupted(ctx: Context, number: int | None = None) -> None:
    """After a stopping signal (or a tracking outage: ``number``): the trial it ended (Optuna
    has made it FAIL) is enqueued again with its parameters, so that resuming runs it and the
    budget is not spent on it."""
    if number is None:
        number, ctx.interrupted = ctx.interrupted, None
    if number is None:
        return
    trial = next((t for t in ctx.study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.FAIL or not trial.params:
        return
    ctx.study.enqueue_trial(trial.params, user_attrs={TrialKey.RETRY_OF: number,
                                                      **inherited_attrs(trial)},
                            skip_if_exists=False)
