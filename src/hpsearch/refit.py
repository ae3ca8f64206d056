"""``hpsearch export --refit``: the chosen model trained again on train + validation.

The validation split chooses twice: the configuration (the sweep's best trial, the reseed table
or the ensemble selection) and the number of epochs (the chosen checkpoint's best epoch). Once
both are chosen, its samples are more training data: the refit model has the checkpoint's
hyperparameters and model seed and trains on train + validation with the chosen run's own
learning-rate schedule (the same ``max_epochs``, so a cosine is the same curve), stopped after
the best epoch, with no early stopping and no best-epoch restore: no held-out split is left to
choose with. The one schedule it cannot replay is ``plateau``, which decayed on the validation
score: in the refit it decays on the training loss. A refit that diverges is an error, not an
export. The test split never reaches training; the export scores it once, as for any model. A
refit model has no validation score of its own (it trained on those samples): the card and the
metrics give the chosen checkpoint's, which chose it, and say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .datasets import Splits
from .ensemble import EnsembleClassifier
from .errors import CheckpointError
from .estimator import MLPClassifier

# what a refit changes in the chosen checkpoint's parameters (the card lists them)
OVERRIDES = {"early_stopping_patience": None, "restore_best_weights": False,
             "monitor": "train_loss"}


class StopAfter:
    """A fit callback: stop once epoch ``epochs`` has been trained."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, record: dict[str, Any]) -> bool:
        return int(record["epoch"]) >= self.epochs


def refit_params(model: MLPClassifier) -> dict[str, Any]:
    """The checkpoint's hyperparameters and seed, with ``OVERRIDES``."""
    return {**model.get_params(), **OVERRIDES}


def refit_epochs(model: MLPClassifier) -> int:
    """How many epochs a refit trains: the epoch validation chose."""
    return int(model.best_epoch_ or model.n_epochs_)


def refit_model(model: MLPClassifier, splits: Splits, label: str,
                echo: Callable[[str], None] = print) -> tuple[MLPClassifier, dict[str, Any]]:
    """``model``'s configuration trained on train + validation; and what the card says of it."""
    params, epochs = refit_params(model), refit_epochs(model)
    x = np.concatenate([splits.train[0], splits.val[0]])
    y = np.concatenate([splits.train[1], splits.val[1]])
    echo(f"refit: {label} on train + validation ({len(y)} samples, {epochs} of "
         f"{params['max_epochs']} epochs, seed {params['random_state']})...")
    started = time.perf_counter()
    refit = MLPClassifier(**params).fit(x, y, callbacks=[StopAfter(epochs)])
    seconds = time.perf_counter() - started
    if refit.status_ == "stopped":  # by StopAfter: the epochs it was meant to train
        refit.status_, refit.stop_reason_ = "completed", f"refit: the chosen {epochs} epochs"
    last = refit.history_[-1] if refit.history_ else {}
    if refit.status_ == "diverged" or not np.isfinite(last.get("train_loss", np.nan)):
        raise CheckpointError(f"refit of {label} diverged on train + validation "
                              f"({refit.stop_reason_}): nothing exported; export without "
                              f"--refit")
    echo(f"refit: {label} done in {seconds:.0f} s (train accuracy "
         f"{last['train_accuracy']:.4f})")
    return refit, {"samples": int(len(y)), "epochs": epochs, "seconds": round(seconds, 1),
                   "schedule": params["schedule"]}


def refit_ensemble(ens: EnsembleClassifier, splits: Splits,
                   echo: Callable[[str], None] = print
                   ) -> tuple[EnsembleClassifier, dict[str, Any]]:
    """Every member refit, each keeping its weight."""
    members, notes = [], []
    for i, (m, w, n) in enumerate(ens.members, 1):
        refit, note = refit_model(m, splits, f"member {i}/{len(ens.members)} (trial {n})", echo)
        members.append((refit, w, n))
        notes.append(note)
    return EnsembleClassifier(members), {
        "samples": notes[0]["samples"], "epochs": [n["epochs"] for n in notes],
        "seconds": round(sum(n["seconds"] for n in notes), 1)}
