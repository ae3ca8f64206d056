"""Warm start: a follow-up study's first trials are its parent's best trials that fit its space.

They are enqueued with their parameters and trained again, never copied as finished trials with
their values: a trial of this study must have its own checkpoint and MLflow run (the winner is
exported from them), and a follow-up usually changes the training settings (``hpsearch next``
raises ``max_epochs`` for undertrained studies), which makes the parent's values incomparable.
With training settings and split unchanged the parent's best trials train to the same scores
(the model seed is the spec's), so the follow-up starts from its parent's best, and its pruner
compares new trials against them from the first epochs.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..errors import HpsearchError, SpecError
from ..spec.schema import SweepSpec
from ..spec.space import active, chosen_of
from .store import StudyKey, TrialKey, join_storage_study, ranked, study_spec


def fitting(trial_params: dict[str, Any], spec: SweepSpec) -> dict[str, Any] | None:
    """The values of ``trial_params`` (everything the parent trial trained with, its fixed
    entries included: space.chosen_of) that the sampler would set in ``spec``'s space, or None
    if one of them lies outside it (a value outside a range, a dropped choice, another fixed
    value). An entry the parent did not have is left to the sampler."""
    chosen: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for p in spec.space:
        if not active(p, chosen):
            continue
        if p.type == "fixed":
            if p.name in trial_params and trial_params[p.name] != p.value:
                return None
            chosen[p.name] = p.value
            continue
        if p.name not in trial_params:
            continue  # new in this space: the sampler chooses
        v = trial_params[p.name]
        if p.type == "categorical":
            if not any(repr(v) == repr(c) for c in p.choices):
                return None
        else:
            assert p.low is not None and p.high is not None
            if not p.low <= v <= p.high:
                return None
        chosen[p.name] = out[p.name] = v
    return out


def candidates(parent: optuna.Study, spec: SweepSpec, n: int) -> list[tuple[FrozenTrial,
                                                                            dict[str, Any]]]:
    """The parent's best ``n`` complete trials that fit ``spec``, with the values to enqueue."""
    out: list[tuple[FrozenTrial, dict[str, Any]]] = []
    if n <= 0:
        return out
    parent_space = study_spec(parent).space
    for t in ranked(parent):
        params = fitting(chosen_of(t.params, parent_space), spec)
        if params is not None and params not in [p for _, p in out]:
            out.append((t, params))
        if len(out) == n:
            break
    return out


def parent_study(spec: SweepSpec, study_name: str, storage_url: str) -> optuna.Study | None:
    """The study ``spec`` warm-starts from (None without ``warm_start``); SpecError naming the
    key when it is missing, so that a sweep fails before it records anything."""
    w = spec.warm_start
    if w is None:
        return None
    if w.study == study_name:
        raise SpecError(f"{spec.path}: warm_start.study names the study itself ({w.study!r})")
    try:
        return join_storage_study(w.study, storage_url)
    except HpsearchError as exc:
        raise SpecError(f"{spec.path}: warm_start.study: {exc}") from None


def warm_start(study: optuna.Study, spec: SweepSpec, parent: optuna.Study | None) -> list[int]:
    """Enqueue the warm-start trials in a new study (once: the study records it); returns the
    parent trial numbers enqueued now."""
    if parent is None or spec.warm_start is None or StudyKey.WARM_START in study.user_attrs \
            or study.get_trials(deepcopy=False):
        return []
    chosen = candidates(parent, spec, spec.warm_start.trials)
    for t, params in chosen:
        study.enqueue_trial(params, user_attrs={
            TrialKey.WARM_START_OF: f"{parent.study_name}#{t.number}"})
    study.set_user_attr(StudyKey.WARM_START, {"study": parent.study_name,
                                              "trials": [t.number for t, _ in chosen]})
    return [t.number for t, _ in chosen]
