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

from .sweep import ATTR, join_storage_study
from .tracking import Tracker, make_tracker

REASON = "worker died while running this trial; recovered by `hpsearch recover`"


@dataclass
class Recovered:
    number: int
    run_id: str | None
    retry: bool


def recover(name: str, storage_url: str | None = None,
            tracking_uri: str | None = None) -> list[Recovered]:
    study = join_storage_study(name, storage_url)
    tracker = make_tracker(tracking_uri or study.user_attrs.get(ATTR + "tracking_uri"))
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    done: list[Recovered] = []
    if _has_heartbeat(study):
        # Optuna's own stale-trial check (heartbeat older than the grace period); its retry
        # callback enqueues the retries.
        before = {t.number for t in running}
        optuna.storages.fail_stale_trials(study)
        after = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in sorted(before):
            if after[n].state == TrialState.FAIL:
                done.append(Recovered(n, _close_run(tracker, name, n), True))
        return done
    for t in running:
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # another process finished it in the meantime
        retry = bool(t.params)
        if retry:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number},
                                skip_if_exists=False)
        done.append(Recovered(t.number, _close_run(tracker, name, t.number), retry))
    return done


def _has_heartbeat(study: optuna.Study) -> bool:
    storage = getattr(study, "_storage", None)
    return (isinstance(storage, optuna.storages.RDBStorage)
            and storage.get_heartbeat_interval() is not None)


def _close_run(tracker: Tracker, study: str, number: int) -> str | None:
    run_id = tracker.trial_run_id(study, number)
    if run_id:
        tracker.client.set_tag(run_id, "optuna.trial.state", "FAIL")
        tracker.client.set_tag(run_id, "optuna.trial.reason", REASON)
        tracker.set_status(run_id, "KILLED")
    return run_id
