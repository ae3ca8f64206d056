"""The noise floor of a sweep's objective, and the rule that stops a sweep that is done.

The validation score of a trial is an estimate from a finite validation split: two trials
closer than its standard error are not told apart by it. That standard error is the noise floor:

- ``val_accuracy``: the binomial standard error ``sqrt(p (1 - p) / n)`` at the best value ``p``
  on ``n`` validation samples (0.0027 at 0.90 on 12,000 images);
- ``val_loss``: the standard deviation of the mean loss over 200 bootstrap resamples of the best
  trial's per-sample validation losses (each complete trial records its own, ``noise``).

Stop when done (``budget: {stop: converged, patience_trials: N}``): the sweep ends when the last
N trials that count towards the budget, in the order they finished, have not improved the best
value found before them by more than the noise floor. The trials still running finish and
count. The rule reads validation scores only.
"""

from __future__ import annotations

import math

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .store import TrialKey

BOOTSTRAP = 200


def accuracy_se(p: float, n: int) -> float:
    """The binomial standard error of an accuracy ``p`` measured on ``n`` samples."""
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def bootstrap_se(per_sample: np.ndarray, seed: int = 0) -> float:
    """The standard error of the mean of ``per_sample`` by ``BOOTSTRAP`` resamples."""
    rng = np.random.default_rng(seed)
    n = len(per_sample)
    means = [float(per_sample[rng.integers(0, n, n)].mean()) for _ in range(BOOTSTRAP)]
    return float(np.std(means, ddof=1))


def trial_noise(metric: str, value: float, proba: np.ndarray | None, y_idx: np.ndarray) -> float:
    """A complete trial's standard error of its objective value on the validation split;
    ``proba``: its validation probabilities at the kept epoch (only the loss needs them)."""
    if metric == "val_accuracy" or proba is None:
        return accuracy_se(value, len(y_idx))
    losses = -np.log(np.clip(proba[np.arange(len(y_idx)), y_idx], 1e-30, None))
    return bootstrap_se(losses.astype(np.float64))


def noise_floor(best: FrozenTrial, metric: str, n_val: int | None) -> tuple[float, str] | None:
    """(standard error, how it was measured) of the best trial's value; None if unknown."""
    if best.value is None:
        return None
    if metric == "val_accuracy" and n_val:
        return (accuracy_se(best.value, n_val),
                f"binomial standard error of val_accuracy {best.value:.4f} on {n_val} "
                f"validation samples")
    if TrialKey.NOISE in best.user_attrs:
        return (float(best.user_attrs[TrialKey.NOISE]),
                f"bootstrap ({BOOTSTRAP} resamples) of trial {best.number}'s per-sample "
                f"validation losses" if metric == "val_loss" else
                f"standard error of trial {best.number}'s {metric}")
    return None


def converged(trials: list[FrozenTrial], counted: set[int], patience: int, maximize: bool,
              floor: float) -> str | None:
    """The reason to stop, when the last ``patience`` counted trials (in the order they
    finished) did not improve the best before them by more than ``floor``; else None."""
    done = sorted((t for t in trials if t.number in counted and t.datetime_complete),
                  key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]
    if len(done) <= patience:
        return None
    sign = 1.0 if maximize else -1.0

    def best_of(ts: list[FrozenTrial]) -> float | None:
        values = [sign * t.value for t in ts if t.state == TrialState.COMPLETE
                  and t.value is not None]
        return max(values) if values else None

    before, recent = best_of(done[:-patience]), best_of(done[-patience:])
    if before is None:
        return None
    gain = (recent if recent is not None else -math.inf) - before
    if gain > floor:
        return None
    shown = "none complete" if recent is None else f"best {sign * recent:.4f}"
    return (f"converged: the last {patience} trials ({shown}) did not beat the best before "
            f"them ({sign * before:.4f}) by more than the noise floor {floor:.4f}")
