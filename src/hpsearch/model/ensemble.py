"""An ensemble of kept checkpoints: the average of their class probabilities, with weights
chosen by greedy forward selection with replacement on the validation split (ensemble selection
from a library of models, Caruana et al. 2004).

``select`` starts from the best single model and adds, one at a time, the model (already chosen
ones included) whose addition gives the best validation score of the averaged probabilities;
it stops when no addition improves the score or after ``k`` picks. A model picked twice weighs
twice. The score is the objective (accuracy, then loss to break ties; or loss).

On disk an ensemble is a directory with ``ensemble.json`` (members, weights, classes) and one
ordinary checkpoint directory per member: loading it never unpickles either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from . import checkpoint
from .estimator import MLPClassifier

ENSEMBLE = "ensemble.json"


def _score(proba: np.ndarray, y_idx: np.ndarray, metric: str) -> tuple[float, float]:
    """Larger is better: (accuracy, -loss) for val_accuracy, (-loss, accuracy) for val_loss."""
    acc = float(np.mean(proba.argmax(axis=1) == y_idx))
    loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_idx)), y_idx], 1e-30, None))))
    return (acc, -loss) if metric == "val_accuracy" else (-loss, acc)


def select(probas: list[np.ndarray], y_idx: np.ndarray, k: int,
           metric: str = "val_accuracy") -> tuple[list[int], list[tuple[float, float]]]:
    """Greedy forward selection with replacement: the indices picked, in order (repeats
    allowed), and the validation score after each pick."""
    scores = [_score(p, y_idx, metric) for p in probas]
    first = max(range(len(probas)), key=lambda i: scores[i])
    picks, total = [first], probas[first].astype(np.float64)
    trail = [scores[first]]
    while len(picks) < k:
        tried = [(_score((total + p) / (len(picks) + 1), y_idx, metric), i)
                 for i, p in enumerate(probas)]
        best, i = max(tried, key=lambda s: s[0])
        if best <= trail[-1]:
            break
        picks.append(i)
        total += probas[i]
        trail.append(best)
    return picks, trail


class EnsembleClassifier:
    """Weighted average of the class probabilities of fitted MLPClassifiers with the same
    classes and inputs; ``members``: (model, weight, trial number)."""

    def __init__(self, members: list[tuple[MLPClassifier, float, int]]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        classes = members[0][0].classes_
        for m, _, _ in members[1:]:
            if list(m.classes_) != list(classes) or m.n_features_in_ != \
                    members[0][0].n_features_in_:
                raise CheckpointError("ensemble members disagree on classes or features")
        total = sum(w for _, w, _ in members)
        self.members = [(m, w / total, n) for m, w, n in members]
        self.classes_ = classes
        self.n_features_in_ = members[0][0].n_features_in_
        names = getattr(members[0][0], "feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = names

    def predict_proba(self, X: Any) -> np.ndarray:
        out = None
        for m, w, _ in self.members:
            p = m.predict_proba(X) * w
            out = p if out is None else out + p
        assert out is not None
        return out

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        listed = []
        for i, (m, w, n) in enumerate(self.members):
            m.save(out / f"member{i}")
            listed.append({"dir": f"member{i}", "weight": w, "trial": n})
        (out / ENSEMBLE).write_text(json.dumps({"format": "hpsearch-ensemble",
                                                "members": listed, **(extra or {})}, indent=1))
        return out

    @classmethod
    def load(cls, path: str | Path) -> EnsembleClassifier:
        root = Path(path)
        try:
            meta = json.loads((root / ENSEMBLE).read_text())
            listed = [(str(e["dir"]), float(e["weight"]), int(e["trial"]))
                      for e in meta["members"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{root / ENSEMBLE}: malformed ({exc})") from None
        for d, _, _ in listed:
            if "/" in d or d.startswith("."):
                raise CheckpointError(f"{root / ENSEMBLE}: member path {d!r} leaves the model")
        return cls([(MLPClassifier.load(root / d), w, n) for d, w, n in listed])


checkpoint.register_model(EnsembleClassifier.load, marker=ENSEMBLE)
