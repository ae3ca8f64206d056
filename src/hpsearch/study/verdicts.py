"""Study-level re-judging of the trials' verdicts, and the refresh of their runs' tags.

A trial is diagnosed when it ends, against the trials finished before it; the first trials of a
study had nothing to compare with, so a trial far below the study's final best training accuracy
could keep ``good_fit``. ``verdicts`` judges the underfitting rule again against the study as it
is now (status, report and export call it); ``refresh_verdicts`` re-tags the runs it changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..diagnosis.diagnostics import ADVICE, revisit
from ..spec.schema import SweepSpec
from .store import StudyKey, TrialKey

if TYPE_CHECKING:  # status reads verdicts without importing MLflow
    from ..tracking.tracker import Tracker


def verdicts(trials: list[FrozenTrial], spec: SweepSpec) -> dict[int, tuple[str, str]]:
    """Each diagnosed trial's (verdict, summary), with the underfitting rule judged against the
    study as it is now."""
    out: dict[int, tuple[str, str]] = {}
    acc_key, gap_key = TrialKey.TRAIN_ACCURACY_AT_BEST, TrialKey.GAP_AT_BEST
    # the two best training accuracies: every trial's reference is the best of the others
    top = sorted(((float(t.user_attrs[acc_key]), t.number) for t in trials
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                  and acc_key in t.user_attrs), reverse=True)[:2]
    for t in trials:
        a = t.user_attrs
        if TrialKey.VERDICT not in a:
            continue
        out[t.number] = (str(a[TrialKey.VERDICT]), str(a.get(TrialKey.SUMMARY, "")))
        others = [acc for acc, number in top if number != t.number]
        if acc_key in a and gap_key in a:
            new = revisit(out[t.number][0], float(a[acc_key]), float(a[gap_key]),
                          others[0] if others else None, spec.diagnostics)
            if new:
                out[t.number] = new
    return out


def refresh_verdicts(study: optuna.Study, spec: SweepSpec, tracker: Tracker) -> list[int]:
    """Tag the runs of the trials whose verdict the study's final best changed (`verdicts`) with
    the new verdict, summary and advice. Optuna keeps a finished trial's attributes as they
    were; the study remembers which runs were tagged. Returns the trial numbers tagged now."""
    trials = study.get_trials(deepcopy=False)
    stored = {t.number: str(t.user_attrs.get(TrialKey.VERDICT)) for t in trials}
    done = dict(study.user_attrs.get(StudyKey.REVISITED, {}))
    tagged = []
    for number, (verdict, summary) in verdicts(trials, spec).items():
        if verdict == stored[number] or done.get(str(number)) == verdict:
            continue
        run_id = tracker.trial_run_id(study.study_name, number)
        if run_id is None:  # no run (tracking off, or it failed): a later call may find one
            continue
        tracker.set_tags(run_id, {
            "fit.verdict": verdict, "fit.summary": summary, "fit.advice": ADVICE[verdict],
            "fit.revisited": f"{stored[number]} when the trial ended; {verdict} against the "
                             f"study's later trials"})
        done[str(number)] = verdict
        tagged.append(number)
    if tagged:
        study.set_user_attr(StudyKey.REVISITED, done)
    return tagged
