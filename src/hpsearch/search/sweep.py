"""A sweep: an Optuna study plus an MLflow experiment. ``run_sweep`` creates (or resumes) both,
records the spec in the study so that ``hpsearch worker NAME`` can join from anywhere, creates the
one parent run, runs trials in this process or in K worker processes (worker.py) until the study
holds ``n_trials`` trials that count (store.budget_counts), and closes the run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna

from ..errors import mask_uri
from ..spec.config import check_study_name, load_spec, sweep_workers
from ..spec.schema import SweepSpec
from ..study.noise import noise_floor
from ..study.store import StudyKey, count_trials, ranked, resolve_storage_url, say_running
from ..study.verdicts import refresh_verdicts
from ..tracking.backend import resolve_tracking_uri
from ..tracking.tracker import Tracker
from ..tracking.writer import MachineWriter
from .prepare import open_sweep
from .retention import outside_top
from .signals import signal_of, spawn_context, stop_signals
from .worker import join_study, run_processes, run_trials


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
    noise_floor: float | None = None  # the objective's standard error at the best value
    stopped: str | None = None  # why budget.stop ended the sweep
    export_in_budget: bool = False  # the spec's export.in_budget: the export comes next

    @property
    def interrupted(self) -> bool:
        return self.signal is not None


def run_sweep(spec_path: str | Path, n_trials: int | None = None, timeout: float | None = None,
              workers: int | None = None, storage_url: str | None = None,
              tracking_uri: str | None = None, study_name: str | None = None,
              echo: Callable[[str], None] = print,
              writer: MachineWriter | None = None) -> SweepResult:
    """``writer``: the machine's MLflow writer, started by the caller (the sweep command starts
    it before its own imports), else here for worker processes; it is stopped before this
    returns. (Trials in this process without one, as `hpsearch.sweep(X, y)` runs them, are
    written by a thread of this process: a script without ``if __name__ == "__main__":`` can
    start no process.)"""
    spec = load_spec(spec_path)
    workers = sweep_workers(spec, workers)
    uri = resolve_tracking_uri(tracking_uri)
    if writer is None and uri != "none" and workers > 1:
        writer = MachineWriter(uri, workers, spawn_context())
    try:
        result = _run(spec, n_trials, timeout, workers, storage_url, uri, study_name, echo,
                      writer)
    except BaseException:
        if writer is not None:
            try:
                writer.stop()
            except BaseException:  # the error on its way out is the one to report
                pass
        raise
    if writer is not None:  # the last trial runs and models written before this returns
        try:
            writer.stop()
        except KeyboardInterrupt as exc:  # a second Ctrl-C while the last runs were written
            result.signal = result.signal or signal_of(exc)
    return result


def _run(spec: SweepSpec, n_trials: int | None, timeout: float | None, workers: int,
         storage_url: str | None, tracking_uri: str, study_name: str | None,
         echo: Callable[[str], None], writer: MachineWriter | None) -> SweepResult:
    storage_url = resolve_storage_url(storage_url)
    name = check_study_name(study_name) if study_name else spec.name
    o = open_sweep(spec, storage_url, tracking_uri, name, n_trials, echo,
                   # the proxy answers Tracker's calls, made in the writer's process
                   tracker=cast(Tracker, writer.tracker()) if writer is not None else None)
    study, tracker, splits, parent, total = o.study, o.tracker, o.splits, o.parent, o.total
    finished, remaining, again, exp_id = o.finished, o.remaining, o.again, o.experiment_id
    timeout = timeout if timeout is not None else spec.budget.timeout
    deadline = time.time() + timeout if timeout else None
    held = (f"{finished} of {total} trials done" if finished <= total else
            f"{finished} trials done, more than the {total} asked")
    echo(f"sweep {name}: {held}, {remaining} to run on "
         f"{min(workers, max(1, remaining))} worker(s); {spec.data.dataset}, "
         f"objective {spec.objective.metric}, tracking {mask_uri(tracker.uri)}")
    say_running(study, echo)  # trials a killed sweep may have left RUNNING
    stopped: int | None = None
    try:
        # in-process trials stop at a safe point; a coordinator of processes at once
        with stop_signals("cooperative" if workers == 1 else "immediate"):
            if (remaining or again) and workers == 1:
                ctx = join_study(name, storage_url, tracker.uri, echo, splits=splits,
                                 checked=True, log=writer.log() if writer else None)
                with beside_writer(writer):
                    run_trials(ctx, remaining, deadline)
            elif remaining or again:
                stopped = run_processes(name, storage_url, tracker.uri, remaining,
                                        min(workers, max(remaining, again)), deadline, writer)
    except KeyboardInterrupt as exc:
        stopped = signal_of(exc)
    except Exception:
        try:  # a sweep stopped by a fault: its run must not stay RUNNING (resuming reopens it)
            tracker.set_status(parent, "FAILED")
        except Exception:
            pass
        raise
    best = _finish(study, tracker, parent, spec, stopped is not None)
    floor = study.user_attrs.get(StudyKey.NOISE_FLOOR, {}).get("value")
    return SweepResult(name, total, count_trials(study)[0] - finished, *best, parent, exp_id,
                       tracker.uri, stopped, floor, study.user_attrs.get(StudyKey.STOPPED),
                       spec.export_in_budget)


def beside_writer(writer: MachineWriter | None) -> AbstractContextManager[Any]:
    """Trials in this process leave a core to the machine's writer: BLAS threads one fewer than
    the cores. (Two OpenBLAS threads beside a busy writer process on two cores made the
    quickstart's trials 2.5x slower: each matrix product waits for the thread that shares its
    core.)"""
    if writer is None or (os.cpu_count() or 1) < 2:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits((os.cpu_count() or 2) - 1)


def close_if_complete(study: optuna.Study, spec: SweepSpec, tracker: Tracker) -> bool:
    """A worker that ends closes the sweep's parent run when the study is complete (its budget
    met or its stop rule reached, no trial running), as `hpsearch sweep` does at its end: a
    launched sweep (launch.py) has no sweep process waiting for its workers. Idempotent: the
    last workers to end may both close it."""
    attrs = study.user_attrs
    finished, running = count_trials(study)
    parent = attrs.get(StudyKey.PARENT_RUN_ID)
    total = int(attrs.get(StudyKey.N_TRIALS, 0))
    if not parent or running or (finished < total and not attrs.get(StudyKey.STOPPED)):
        return False
    _finish(study, tracker, parent, spec, False)
    return True


def _finish(study: optuna.Study, tracker: Tracker, parent: str, spec: SweepSpec,
            interrupted: bool) -> tuple[int | None, float | None, str | None]:
    result: tuple[int | None, float | None, str | None] = (None, None, None)
    try:
        best = study.best_trial
        result = best.number, best.value, tracker.trial_run_id(study.study_name, best.number)
        floor = noise_floor(best, spec.objective.metric,
                            study.user_attrs.get(StudyKey.DATA, {}).get("n_val"))
        if floor is not None:
            study.set_user_attr(StudyKey.NOISE_FLOOR, {"value": floor[0], "how": floor[1]})
            tracker.log_values(parent, {"noise_floor": floor[0]})
    except ValueError:
        pass
    if study.user_attrs.get(StudyKey.STOPPED):
        tracker.set_tags(parent, {"hpsearch.stopped": study.user_attrs[StudyKey.STOPPED]})
    # every worker has closed its log: a logged model written after another worker's retention
    # pass (a race of two workers) is deleted now, so that exactly the top k stay
    trials = study.get_trials(deepcopy=False)  # one snapshot; another worker may still run
    keep = {t.number for t in ranked(study, trials)[:spec.keep_checkpoints]}
    tracker.delete_trial_models(study.study_name, outside_top(trials, keep))
    tracker.set_status(parent, "KILLED" if interrupted else "FINISHED")
    refresh_verdicts(study, spec, tracker)  # after closing the run: a failure here loses nothing
    return result
