"""``hpsearch export --refit``: the chosen model trained again on train + validation.

The validation split chooses twice: the configuration (the sweep's best trial, the reseed table
or the ensemble selection) and the number of epochs (the chosen checkpoint's best epoch). Once
both are chosen, its samples are more training data: the refit model has the checkpoint's
hyperparameters and model seed and trains on train + validation for that many epochs (its
schedule spread over them), with no early stopping and no best-epoch restore, since no held-out
split is left to choose with. The test split never reaches training; the export scores it once,
as for any model. A refit model has no validation score of its own (it trained on those
samples): the card and the metrics give the chosen checkpoint's, which chose it, and say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .datasets import Splits
from .ensemble import EnsembleClassifier
from .estimator import MLPClassifier


def refit_params(model: MLPClassifier) -> dict[str, Any]:
    """The checkpoint's hyperparameters and seed, trained for its best epoch count, to the end."""
    params = model.get_params()
    params.update(max_epochs=int(model.best_epoch_ or model.n_epochs_),
                  early_stopping_patience=None, restore_best_weights=False, monitor="train_loss")
    return params


def refit_model(model: MLPClassifier, splits: Splits, label: str,
                echo: Callable[[str], None] = print) -> tuple[MLPClassifier, dict[str, Any]]:
    """``model``'s configuration trained on train + validation; and what the card says of it."""
    params = refit_params(model)
    x = np.concatenate([splits.train[0], splits.val[0]])
    y = np.concatenate([splits.train[1], splits.val[1]])
    echo(f"refit: {label} on train + validation ({len(y)} samples, {params['max_epochs']} "
         f"epochs, seed {params['random_state']})...")
    started = time.perf_counter()
    refit = MLPClassifier(**params).fit(x, y)
    seconds = time.perf_counter() - started
    echo(f"refit: {label} done in {seconds:.0f} s (train accuracy "
         f"{refit.history_[-1]['train_accuracy']:.4f})")
    return refit, {"samples": int(len(y)), "epochs": params["max_epochs"],
                   "seconds": round(seconds, 1)}


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
