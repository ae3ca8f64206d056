"""``hpsearch status``: a table of a study's trials."""

from __future__ import annotations

from ..study.noise import noise_floor
from ..study.store import StudyKey, TrialKey, join_storage_study, lost_trials, study_spec
from ..study.verdicts import verdicts

KEY_PARAMS = ("optimizer", "learning_rate", "schedule", "n_layers", "hidden_size", "dropout", "l2")


def status_table(name: str, storage_url: str | None = None) -> str:
    import pandas as pd

    study = join_storage_study(name, storage_url)
    rows = []
    trials = study.get_trials(deepcopy=False)
    spec = study_spec(study)
    fits = verdicts(trials, spec)
    lost = lost_trials(trials)
    for t in trials:
        row: dict[str, object] = {"trial": t.number, "state": t.state.name,
                                  "value": t.value if t.value is not None else float("nan")}
        for k in KEY_PARAMS:
            v = t.params.get(k, "")
            row[k] = f"{v:.3g}" if isinstance(v, float) else v
        row["epochs"] = t.user_attrs.get(TrialKey.EPOCHS_RUN, "")
        row["verdict"] = fits.get(t.number, ("", ""))[0]
        dur = t.duration.total_seconds() if t.duration else None
        row["seconds"] = f"{dur:.1f}" if dur is not None else ""
        row["retried as"] = lost.get(t.number, "")
        rows.append(row)
    if not rows:  # prepared (by a launch, say) and no worker started yet
        total = study.user_attrs.get(StudyKey.N_TRIALS)
        return (f"study {name}: no trial started yet" + (f", 0 of {total}" if total else "")
                + f"; workers join it with `hpsearch worker {name}`")
    frame = pd.DataFrame(rows).set_index("trial")
    # the key parameters this study does not search: no empty columns
    frame = frame.drop(columns=[k for k in KEY_PARAMS if (frame[k] == "").all()])
    if not lost:
        frame = frame.drop(columns="retried as")
    lines = [frame.to_string(float_format=lambda v: f"{v:.4f}")]
    if lost:
        pairs = ", ".join(f"{n} -> {r}" for n, r in sorted(lost.items()))
        lines.append(f"lost to faults: {len(lost)} trial(s) ({pairs}), retried with the same "
                     f"parameters; they do not count towards n_trials")
    warm = {t.number: t.user_attrs[TrialKey.WARM_START_OF] for t in trials
            if TrialKey.WARM_START_OF in t.user_attrs}
    if warm:
        lines.append(f"warm start: trial(s) {', '.join(f'{n} (= {w})' for n, w in warm.items())}"
                     f" ran first with a parent study's parameters")
    try:
        best = study.best_trial
        lines.append(f"best: trial {best.number}, value {best.value:.4f} "
                     f"({study.direction.name.lower()})")
        floor = noise_floor(best, spec.objective.metric,
                            study.user_attrs.get(StudyKey.DATA, {}).get("n_val"))
        if floor is not None:
            lines.append(f"noise floor: ±{floor[0]:.4f} ({floor[1]}): trials closer to the best "
                         f"than this are not told apart by the validation split")
    except ValueError:
        lines.append("best: no trial completed yet")
    if study.user_attrs.get(StudyKey.STOPPED):
        lines.append(f"stopped early: {study.user_attrs[StudyKey.STOPPED]}")
    phase = study.user_attrs.get(StudyKey.RESEED_PHASE)
    if phase:
        # this phase's (configuration, seed) pairs: a resumed sweep's earlier phase may have
        # reseeded another top, and a retried or twin trial repeats a pair
        done = len({(t.user_attrs[TrialKey.RESEED_OF], t.user_attrs[TrialKey.MODEL_SEED])
                    for t in trials if t.state.name == "COMPLETE"
                    and t.user_attrs.get(TrialKey.RESEED_OF) in phase["top"]
                    and t.user_attrs.get(TrialKey.MODEL_SEED) in phase["seeds"]})
        lines.append(f"reseed: the search is over; trials {', '.join(map(str, phase['top']))} "
                     f"train again with model seeds {phase['seeds']}: {done} of "
                     f"{len(phase['top']) * len(phase['seeds'])} complete (not counted in "
                     f"n_trials)")
    return "\n".join(lines)
