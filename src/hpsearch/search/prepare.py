"""A study made ready for workers to join: what `hpsearch sweep` and the cluster launchers
(launch.py) do before any worker starts. ``open_sweep`` checks the data, creates or resumes the
study with its spec and budget (``budget_total``), the experiment and the one parent run
(``prepare_study``), and enqueues warm-start and waiting reseed trials."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from .._version import __version__
from ..errors import mask_uri
from ..spec.datasets import Splits, load_splits
from ..spec.schema import SweepSpec
from ..study import warmstart
from ..study.faults import StaleTrialHandler
from ..study.store import (
    StudyKey,
    count_trials,
    create_study,
    fail_stale_trials,
    open_storage,
    record_spec,
    stale_trial_callback,
)
from ..tracking.backend import git_commit
from ..tracking.tracker import Tracker, make_tracker
from .reseed import resume as resume_reseed
from .retention import checkpoint_root


def budget_total(attrs: dict[str, Any], spec: SweepSpec, n_trials: int | None) -> int:
    """The trials the study is to hold: ``--trials``, else what it was given before (a spec
    whose n_trials grew since raises it), else the spec's n_trials."""
    total = n_trials or int(attrs.get(StudyKey.N_TRIALS, spec.budget.n_trials))
    if n_trials is None and StudyKey.N_TRIALS in attrs:
        total = max(total, spec.budget.n_trials)
    return total


def prepare_study(spec: SweepSpec, storage_url: str, tracker: Tracker, study_name: str,
                  n_trials: int | None) -> tuple[optuna.Study, str, str, int]:
    about = {"mlflow.note.content": (
                 f"hpsearch sweep `{study_name}` of `{Path(spec.path).name}`: an MLP classifier "
                 f"on `{spec.data.dataset}`, {spec.objective.direction} "
                 f"`{spec.objective.metric}`; one child run per trial, its curves, verdict and "
                 f"best-epoch model."),
             "hpsearch.dataset": spec.data.dataset, "hpsearch.objective": spec.objective.metric,
             "hpsearch.version": __version__, "hpsearch.spec": Path(spec.path).name}
    # a bad tracking URI fails here, before anything is made
    exp_id = tracker.experiment(study_name, about)
    study = create_study(open_storage(storage_url, StaleTrialHandler()), study_name, spec)
    attrs = study.user_attrs
    total = budget_total(attrs, spec, n_trials)
    commit = git_commit()  # one `git rev-parse` per sweep, for the parent run and the workers
    parent = attrs.get(StudyKey.PARENT_RUN_ID)
    if not parent or not tracker.run_exists(parent):
        settings = {"spec_path": spec.path, "storage": mask_uri(storage_url),
                    "dataset": spec.data.dataset, "objective": spec.objective.metric,
                    "sampler": spec.sampler.name, "pruner": spec.pruner.name}
        parent = tracker.create_parent(exp_id, study_name, spec.path, spec.text, settings,
                                       commit)
    else:
        tracker.set_status(parent, "RUNNING")
    checkpoints = attrs.get(StudyKey.CHECKPOINT_DIR) or str(checkpoint_root())
    record_spec(study, spec.text)
    for key, value in {StudyKey.SPEC_PATH: spec.path,
                       StudyKey.N_TRIALS: total, StudyKey.CHECKPOINT_DIR: checkpoints,
                       StudyKey.EXPERIMENT_ID: exp_id, StudyKey.PARENT_RUN_ID: parent,
                       StudyKey.TRACKING_URI: mask_uri(tracker.uri),
                       StudyKey.GIT_COMMIT: commit, StudyKey.STOPPED: None}.items():
        study.set_user_attr(key, value)  # (a resumed sweep judges the stop rule anew)
    handler = stale_trial_callback(study)
    if isinstance(handler, StaleTrialHandler):  # a dead worker's trial is failed and retried
        handler.attach(tracker.close_lost_trial)
    fail_stale_trials(study)  # now, so that it is not counted as running
    return study, exp_id, parent, total


@dataclass
class OpenSweep:
    """A study and its parent run, ready for workers to join."""

    study: optuna.Study
    tracker: Tracker
    splits: Splits
    experiment_id: str
    parent: str
    total: int
    finished: int
    running: int
    remaining: int
    again: int  # reseed trials left waiting by a stopped sweep, enqueued again


def open_sweep(spec: SweepSpec, storage_url: str, tracking_uri: str | None, name: str,
               n_trials: int | None, echo: Callable[[str], None],
               splits: Splits | None = None, tracker: Tracker | None = None) -> OpenSweep:
    """What `hpsearch sweep` and the cluster launchers do before any worker starts: the data
    checked (bad data fails before anything is recorded), the study created or resumed with its
    spec, the experiment and the parent run, warm-start trials enqueued. ``tracker``: the
    machine writer's (writer.TrackerProxy: the store opened in its process), else opened
    here."""
    if tracker is None:
        with ThreadPoolExecutor(1) as pool:  # the tracking store opens while the data loads
            opening = pool.submit(make_tracker, tracking_uri)
            splits = splits or load_splits(spec.data)
        tracker = opening.result()
    splits = splits or load_splits(spec.data)
    parent_study = warmstart.parent_study(spec, name, storage_url)  # and a missing warm-start study
    study, exp_id, parent, total = prepare_study(spec, storage_url, tracker, name, n_trials)
    warm = warmstart.warm_start(study, spec, parent_study)
    if spec.warm_start and warm:
        echo(f"warm start: trials {', '.join(map(str, warm))} of study {spec.warm_start.study} "
             f"run first, with their parameters")
    finished, running = count_trials(study)
    remaining = max(0, total - finished - running)
    again = resume_reseed(study, remaining)
    return OpenSweep(study, tracker, splits, exp_id, parent, total, finished, running, remaining,
                     again)
