"""Over- and underfitting diagnosis of one trial, from its per-epoch history.

``diagnose(history, ...)`` is a pure function. It measures a few numbers (the evidence) and turns
them into one verdict, checked in this order:

1. ``diverged``: a non-finite training loss, or a final training loss above ``diverge_ratio``
   times the first epoch's (the loss grows): the learning rate is too high.
2. ``stalled``: the training loss fell by less than ``stall_drop`` (relative) over the whole
   run and training accuracy stays below ``low_train_accuracy``: the learning rate is too low.
3. ``overfitting``: after the validation peak, validation got worse (accuracy down by more than
   ``val_drop`` or loss up by more than ``val_loss_rise``, relative) while training kept
   improving; or the train-validation accuracy gap at the best epoch exceeds ``gap``.
4. ``undertrained``: the run ended on its epoch budget while validation was still improving
   (the best epoch within the last ``window`` epochs and a recent slope above ``slope``).
5. ``underfitting``: training accuracy stays low (below ``low_train_accuracy``, or more than
   ``underfit_margin`` below the best training accuracy of the study's other trials) and the
   train-validation gap is not large (at most ``gap``: rule 3 took the larger ones), so
   validation is held back by the fit to the training data itself. (Up to 2026-11-27 the gap
   had to be below ``gap / 2``; a trial in between was called ``good_fit``.)
6. ``good_fit`` otherwise.

Thresholds are settable in a sweep spec under ``diagnostics:``; the defaults are below.

A trial is diagnosed when it ends, against the trials finished before it; ``revisit`` applies
rule 5 again with the study's final best (``study.verdicts``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

THRESHOLDS: dict[str, float] = {
    "gap": 0.06,  # train - val accuracy at the best epoch that counts as a large gap
    "val_drop": 0.015,  # val accuracy lost since its peak (absolute)
    "val_loss_rise": 0.15,  # val loss risen since its minimum (relative)
    "slope": 0.002,  # val accuracy gained per epoch, recently, that counts as still improving
    "window": 5,  # epochs for "recent" and for "near the end"
    "stall_drop": 0.05,  # relative fall of the training loss below which training stalled
    "diverge_ratio": 1.5,  # final / first training loss above which the loss grows
    "low_train_accuracy": 0.80,  # training accuracy that is low on its own
    "underfit_margin": 0.05,  # this far below the study's best training accuracy is low
}
VERDICTS = ("good_fit", "overfitting", "underfitting", "undertrained", "diverged", "stalled")
ADVICE = {
    "good_fit": "Fits well: keep these settings; compare neighbours for robustness.",
    "overfitting": ("Overfits: add regularisation (raise dropout or L2), use fewer units or "
                    "layers, stop earlier (lower patience), or get more training data."),
    "underfitting": ("Underfits: use more units or another layer, lower dropout and L2, train "
                     "longer or with a higher learning rate."),
    "undertrained": ("Still improving when training stopped: raise max_epochs (or the "
                     "early-stopping patience), or use a larger learning rate or a schedule "
                     "that anneals later."),
    "diverged": ("Diverged: lower the learning rate, add warm-up, or use an annealed schedule "
                 "or an adaptive optimizer (adam, rmsprop)."),
    "stalled": ("Barely learns: raise the learning rate, or switch to an adaptive optimizer "
                "(adam, rmsprop) or momentum."),
}


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    advice: str
    summary: str  # one sentence with the numbers that decided
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _slope(values: list[float]) -> float:
    """Least-squares slope per step of the last values (0 for fewer than 2)."""
    n = len(values)
    if n < 2:
        return 0.0
    xbar, ybar = (n - 1) / 2, sum(values) / n
    num = sum((i - xbar) * (v - ybar) for i, v in enumerate(values))
    den = sum((i - xbar) ** 2 for i in range(n))
    return num / den


def diagnose(history: list[dict[str, float]], best_epoch: int | None = None,
             max_epochs: int | None = None, study_best_train_accuracy: float | None = None,
             thresholds: dict[str, float] | None = None, status: str | None = None) -> Diagnosis:
    """Verdict, advice and evidence for one trial's history (see the module docstring).

    ``best_epoch``: the epoch whose weights were kept (default: the best validation accuracy);
    ``max_epochs``: the epoch budget (to tell a budget stop from early stopping);
    ``study_best_train_accuracy``: the best training accuracy among the study's other trials;
    ``status``: the trainer's status (``diverged`` when it stopped a blow-up).
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    window = max(2, int(t["window"]))
    if not history:
        return Diagnosis("stalled", ADVICE["stalled"], "no epoch finished", {})
    train_loss = [r.get("train_loss", math.nan) for r in history]
    train_acc = [r.get("train_accuracy", math.nan) for r in history]
    val_loss = [r.get("val_loss", math.nan) for r in history]
    val_acc = [r.get("val_accuracy", math.nan) for r in history]
    n = len(history)
    ev: dict[str, float] = {"epochs": n}

    # 1. diverged
    finite_train = _finite(train_loss)
    if len(finite_train) < n or not finite_train:
        ev["first_bad_epoch"] = next(i + 1 for i, v in enumerate(train_loss)
                                     if not (isinstance(v, float | int) and math.isfinite(v)))
        return Diagnosis("diverged", ADVICE["diverged"],
                         f"training loss became non-finite at epoch {ev['first_bad_epoch']:.0f}",
                         ev)
    growth = train_loss[-1] / max(train_loss[0], 1e-12)
    ev["train_loss_growth"] = growth
    if status == "diverged":
        return Diagnosis("diverged", ADVICE["diverged"],
                         f"training loss blew up to {train_loss[-1]:.3g} at epoch {n}", ev)
    if growth > t["diverge_ratio"]:
        return Diagnosis("diverged", ADVICE["diverged"],
                         f"training loss grew {growth:.2f}x from epoch 1 to {n}", ev)

    if best_epoch is None or not 1 <= best_epoch <= n:
        accs = [(v if math.isfinite(v) else -1.0) for v in val_acc]
        best_epoch = accs.index(max(accs)) + 1
    b = best_epoch - 1
    gap_best = train_acc[b] - val_acc[b]
    gap_last = train_acc[-1] - val_acc[-1]
    peak = max(range(n), key=lambda i: val_acc[i] if math.isfinite(val_acc[i]) else -1)
    loss_min = min(range(n), key=lambda i: val_loss[i] if math.isfinite(val_loss[i]) else 1e30)
    drop = val_acc[peak] - val_acc[-1]
    rise = (val_loss[-1] - val_loss[loss_min]) / max(val_loss[loss_min], 1e-12)
    recent = val_acc[-window:]
    ev |= {"best_epoch": best_epoch, "gap_at_best": gap_best, "gap_at_last": gap_last,
           "train_accuracy_at_best": train_acc[b], "val_accuracy_at_best": val_acc[b],
           "epochs_since_peak": n - (peak + 1), "val_drop_from_peak": drop,
           "val_loss_rise": rise, "recent_val_slope": _slope(recent),
           "recent_train_loss_slope": _slope(train_loss[-window:])}
    loss_fall = (train_loss[0] - min(finite_train)) / max(train_loss[0], 1e-12)
    ev["train_loss_fall"] = loss_fall
    if study_best_train_accuracy is not None:
        ev["train_accuracy_vs_study_best"] = train_acc[b] - study_best_train_accuracy

    # 2. stalled
    if loss_fall < t["stall_drop"] and max(_finite(train_acc) or [0]) < t["low_train_accuracy"]:
        return Diagnosis("stalled", ADVICE["stalled"],
                         f"training loss fell only {100 * loss_fall:.1f}% in {n} epochs "
                         f"(training accuracy {train_acc[-1]:.3f})", ev)

    # 3. overfitting: validation worse after its peak while training kept improving
    train_better_after = (train_loss[-1] < train_loss[loss_min] or
                          train_acc[-1] > train_acc[peak])
    if train_better_after and (drop > t["val_drop"] or rise > t["val_loss_rise"]):
        return Diagnosis("overfitting", ADVICE["overfitting"],
                         f"validation worsened after epoch {peak + 1} (accuracy -{drop:.3f}, "
                         f"loss +{100 * rise:.0f}%) while training improved; train-val gap "
                         f"{gap_last:.3f} at the end", ev)
    if gap_best > t["gap"]:
        return Diagnosis("overfitting", ADVICE["overfitting"],
                         f"train-val accuracy gap {gap_best:.3f} at the best epoch "
                         f"{best_epoch} (threshold {t['gap']:.3f})", ev)

    # 4. undertrained: stopped by the budget while still improving
    on_budget = max_epochs is None or n >= max_epochs
    if on_budget and best_epoch > n - window and ev["recent_val_slope"] > t["slope"]:
        return Diagnosis("undertrained", ADVICE["undertrained"],
                         f"validation accuracy still rising {ev['recent_val_slope']:+.4f} per "
                         f"epoch over the last {len(recent)} epochs; best epoch {best_epoch} "
                         f"of {n}", ev)

    # 5. underfitting: training itself is poor, and validation not far behind it
    why = _underfit(train_acc[b], gap_best, study_best_train_accuracy, t)
    if why:
        return Diagnosis("underfitting", ADVICE["underfitting"], why, ev)

    return Diagnosis("good_fit", ADVICE["good_fit"],
                     f"train-val gap {gap_best:.3f} at best epoch {best_epoch}, validation "
                     f"steady after its peak (drop {drop:.3f})", ev)


def _underfit(train_acc: float, gap: float, study_best: float | None,
              t: dict[str, float]) -> str | None:
    """Rule 5's summary when it applies (``None`` otherwise)."""
    low = train_acc < t["low_train_accuracy"]
    behind = study_best is not None and train_acc < study_best - t["underfit_margin"]
    if not (gap <= t["gap"] and (low or behind)):
        return None
    ref = f", {study_best - train_acc:.3f} below the study's best" if (
        behind and study_best is not None) else ""
    return f"training accuracy only {train_acc:.3f}{ref} (train-val gap {gap:+.3f})"


def revisit(verdict: str, train_accuracy_at_best: float, gap_at_best: float,
            study_best_train_accuracy: float | None,
            thresholds: dict[str, float] | None = None) -> tuple[str, str] | None:
    """Rule 5 again, for a trial judged ``good_fit`` before the study had its final best: the
    new (verdict, summary) when the trial is more than ``underfit_margin`` below the best
    training accuracy of the study's other trials now, else ``None``.

    Only ``good_fit`` can change: rules 1-4 do not depend on other trials, and the study's best
    only rises, so an earlier ``underfitting`` stands."""
    if verdict != "good_fit":
        return None
    why = _underfit(train_accuracy_at_best, gap_at_best, study_best_train_accuracy,
                    {**THRESHOLDS, **(thresholds or {})})
    return ("underfitting", why) if why else None
