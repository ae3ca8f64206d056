"""Where a trial's best-epoch checkpoint goes, how it is saved, and top-k retention: only the
``checkpoints.keep`` best complete trials keep theirs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import optuna

from ..model.checkpoint import META, save_model
from ..model.estimator import MLPClassifier
from ..spec.datasets import Splits
from ..study.store import FINISHED, StudyKey, ranked
from ..tracking.messages import TrialLogFront
from ..tracking.tracker import split_inputs

DEFAULT_CHECKPOINTS = "mlruns/checkpoints"


def checkpoint_root() -> Path:
    """Where trials' best-epoch checkpoints go: $HPSEARCH_CHECKPOINTS or mlruns/checkpoints."""
    return Path(os.environ.get("HPSEARCH_CHECKPOINTS") or DEFAULT_CHECKPOINTS).resolve()


def checkpoint_dir(study: optuna.Study, number: int) -> Path:
    root = os.environ.get("HPSEARCH_CHECKPOINTS") or study.user_attrs.get(StudyKey.CHECKPOINT_DIR)
    return Path(root or DEFAULT_CHECKPOINTS) / study.study_name / f"trial-{number}"


def save_trial_checkpoint(study: optuna.Study, number: int, model: MLPClassifier,
                          extra: dict[str, Any]) -> Path:
    """Save a trial's best-epoch model; written beside and renamed, so never half there."""
    final = checkpoint_dir(study, number)
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, extra)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def retain(study: optuna.Study, keep: int, number: int, log: TrialLogFront,
           experiment_id: str, splits: Splits) -> None:
    """After trial ``number`` ended: keep the top ``keep`` checkpoints, in the local cache
    (``prune_checkpoints``) and as logged models in the tracking store: the trial's own is
    logged when it is among them (written by the background log, from a copy), and the logged
    models of finished trials outside them are deleted (any worker's). The top and the finished
    trials come from one snapshot: read apart, a trial that completed in between would be
    finished and outside a top read before it, and its new model deleted."""
    prune_checkpoints(study, keep)
    trials = study.get_trials(deepcopy=False)
    top = {t.number for t in ranked(study, trials)[:keep]}
    ckpt = checkpoint_dir(study, number)
    staged: Path | None = None
    if number in top and (ckpt / META).is_file():
        staged = Path(tempfile.mkdtemp(prefix="hpsearch-keep-")) / "checkpoint"
        try:
            shutil.copytree(ckpt, staged)
        except (FileNotFoundError, shutil.Error):  # another worker's retention removed it
            shutil.rmtree(staged.parent, ignore_errors=True)
            staged = None
    if staged is not None:
        log.log_model(number, experiment_id, study.study_name, staged, splits.val[0][:3],
                      splits.feature_names, split_inputs(splits))
    if number in top:  # it entered the top k: the one it pushed out (if any) has a model
        log.drop_models(study.study_name, outside_top(trials, top))


def outside_top(trials: list[optuna.trial.FrozenTrial], top: set[int]) -> list[int]:
    """The finished trials of one snapshot that are not in its top: they never will be again
    (a study's top k only gets better), so their checkpoints can go. A running trial is never
    among them: it may enter the top when it completes."""
    return [t.number for t in trials if t.state in FINISHED and t.number not in top]


def prune_checkpoints(study: optuna.Study, keep: int) -> list[int]:
    """Delete the checkpoints of finished trials outside the top ``keep`` complete trials.
    Safe with several workers: a running trial's checkpoint is never touched, and deleting is
    idempotent. Returns the trial numbers whose checkpoints were removed."""
    trials = study.get_trials(deepcopy=False)
    top = {t.number for t in ranked(study, trials)[:keep]}
    finished = set(outside_top(trials, top))
    removed: list[int] = []
    root = checkpoint_dir(study, 0).parent
    if not root.is_dir():
        return removed
    for d in root.iterdir():
        if not d.name.startswith("trial-") or not d.name[6:].isdigit():
            continue
        n = int(d.name[6:])
        if n in finished:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(n)
    return removed
