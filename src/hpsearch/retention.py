"""Where a trial's best-epoch checkpoint goes, how it is saved, and top-k retention: only the
``checkpoints.keep`` best complete trials keep theirs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import optuna

from .checkpoint import save_model
from .estimator import MLPClassifier
from .store import FINISHED, StudyKey, ranked

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


def prune_checkpoints(study: optuna.Study, keep: int) -> list[int]:
    """Delete the checkpoints of finished trials outside the top ``keep`` complete trials.
    Safe with several workers: a running trial's checkpoint is never touched, and deleting is
    idempotent. Returns the trial numbers whose checkpoints were removed."""
    trials = study.get_trials(deepcopy=False)
    top = {t.number for t in ranked(study)[:keep]}
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
