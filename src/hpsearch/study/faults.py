"""A trial lost to the infrastructure (its worker killed, its storage gone) is failed in the
study and its parameters enqueued again, so that it does not count and another worker retries it.

- ``StaleTrialHandler``: Optuna's heartbeat retry, plus closing the dead trial's MLflow run.
- ``fail_and_retry``: the same for one trial, by `hpsearch recover` and the outage path.

(Stopping signals are search.signals'. The one-line message for a disk or storage failure, and
whether a failure is a lost storage connection, are errors.describe and errors.is_outage: every
layer needs them, tracking included.
A journal file that a full disk leaves whole is store.SafeJournalBackend; the budget rule that
lost trials do not count is store.budget_counts.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from .store import inherited_attrs


class StaleTrialHandler:
    """Called by Optuna for each trial it fails because its worker's heartbeat stopped: enqueue a
    retry (Optuna's RetryHeartbeatStaleTrialCallback, up to ``max_retry`` times) and, once a
    tracker is attached (``attach``), close the dead trial's MLflow run as KILLED."""

    def __init__(self, max_retry: int = 2) -> None:
        with warnings.catch_warnings():  # "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.close_run: Callable[[str, int, str], Any] | None = None

    def attach(self, close_run: Callable[[str, int, str], Any]) -> None:
        self.close_run = close_run

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.retry(study, trial)
        if self.close_run is not None:
            self.close_run(study.study_name, trial.number,
                           "worker stopped sending heartbeats (killed or lost); failed by "
                           "Optuna's stale-trial check and enqueued for a retry")


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool | None:
    """Mark a RUNNING trial FAIL and enqueue its parameters again (user attribute ``retry_of``).
    None when another process finished it first; else whether a retry was enqueued."""
    from optuna.trial import TrialState

    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, RuntimeError):
        return None
    if not trial.params:
        return False
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                  **inherited_attrs(trial)},
                        skip_if_exists=False)
    return True
