"""``hpsearch recover NAME``: close the trials of workers that died (kill -9, a lost machine).

A killed worker leaves its trial RUNNING in Optuna and its run RUNNING in MLflow. On an RDB
storage with heartbeats, only trials whose heartbeat stopped count as stale; on a journal file
(no heartbeats), every RUNNING trial does, so run it only when no worker is running. Each stale
trial becomes FAIL (reason recorded), its run is closed as KILLED, and its parameters are
enqueued again so that the next worker retries them (user attribute ``retry_of``).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from ..tracking.tracker import Tracker, make_tracker
from .faults import StaleTrialHandler, fail_and_retry
from .store import StudyKey, fail_stale_trials, heartbeat_enabled, join_storage_study

REASON = "worker died while running this trial; recovered by `hpsearch recover`"


@dataclass
class Recovered:
    number: int
    run_id: str | None
    retry: bool
    stale: bool = True  # False: only an open run of a finished trial was closed
    state: str = "FAIL"


def recover(name: str, storage_url: str | None = None,
            tracking_uri: str | None = None) -> list[Recovered]:
    study = join_storage_study(name, storage_url, StaleTrialHandler())
    tracker = make_tracker(tracking_uri or study.user_attrs.get(StudyKey.TRACKING_URI))
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    done: list[Recovered] = []
    done += _close_orphan_runs(study, tracker)
    if heartbeat_enabled(study):
        # Optuna's own stale-trial check (heartbeat older than the grace period); its retry
        # callback enqueues the retries.
        before = {t.number for t in running}
        fail_stale_trials(study)
        after = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in sorted(before):
            if after[n].state == TrialState.FAIL:
                done.append(Recovered(n, tracker.close_lost_trial(name, n, REASON), True))
        return done
    for t in running:
        retry = fail_and_retry(study, t)
        if retry is None:
            continue  # another process finished it in the meantime
        done.append(Recovered(t.number, tracker.close_lost_trial(name, t.number, REASON), retry))
    return done


def _close_orphan_runs(study: optuna.Study, tracker: Tracker) -> list[Recovered]:
    """Runs left RUNNING for trials that Optuna has finished (the worker stopped between the
    two stores, e.g. on a full disk): closed with the state Optuna recorded."""
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    return [Recovered(number, run_id, False, False, state)
            for number, run_id, state in tracker.close_orphan_runs(study.study_name, states)]
