"""What `budget: {stop: converged, patience_trials: N}` would have done to finished sweeps.

Replays the stop rule (hpsearch.study.noise.converged, the function the workers call) on a study's
trials in the order they finished: the first point at which it fires, the time and trials that
would have been saved, and what the sweep would have lost (its best validation score then
against its final best, and whether the final best trial would have been run at all).
Baseline: the same study run to its end (its timeout or trial count), which is what the sweep
did without the rule.

    python bench/stop_rule.py STORAGE STUDY [STUDY ...] [--patience 10 20 30]
"""

from __future__ import annotations

import argparse

import optuna

from hpsearch.study.noise import converged, noise_floor
from hpsearch.study.store import StudyKey, counted_trials, open_storage


def replay(study: optuna.Study, patience: int) -> dict:
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    trials.sort(key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]
    counted = counted_trials(trials)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    n_val = study.user_attrs.get(StudyKey.DATA, {}).get("n_val")
    start = min(t.datetime_start for t in trials if t.datetime_start).timestamp()
    end = trials[-1].datetime_complete.timestamp() - start  # type: ignore[union-attr]
    final = study.best_trial
    for i in range(1, len(trials) + 1):
        seen = trials[:i]
        done = [t for t in seen if t.state.name == "COMPLETE" and t.value is not None]
        if not done:
            continue
        best = max(done, key=lambda t: t.value if maximize else -t.value)  # type: ignore
        floor = noise_floor(best, "val_accuracy" if maximize else "val_loss", n_val)
        if floor and converged(seen, counted, patience, maximize, floor[0]):
            at = seen[-1].datetime_complete.timestamp() - start  # type: ignore[union-attr]
            return {"fires_after": i, "of": len(trials), "at_s": at, "end_s": end,
                    "best_then": best.value, "final_best": final.value,
                    "final_best_run": final.number in {t.number for t in seen},
                    "floor": floor[0]}
    return {"fires_after": None, "of": len(trials), "end_s": end, "final_best": final.value}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("storage")
    ap.add_argument("studies", nargs="+")
    ap.add_argument("--patience", type=int, nargs="+", default=[10, 20, 30])
    args = ap.parse_args()
    storage = open_storage(args.storage)
    print("| study | patience | fires after (trials) | at / end (s) | best then / final best | "
          "lost |")
    print("|---|---|---|---|---|---|")
    for name in args.studies:
        study = optuna.load_study(study_name=name, storage=storage)
        for n in args.patience:
            r = replay(study, n)
            if r["fires_after"] is None:
                print(f"| {name} | {n} | never ({r['of']} trials) | - / {r['end_s']:.0f} | "
                      f"- / {r['final_best']:.4f} | nothing |")
                continue
            lost = r["final_best"] - r["best_then"]
            print(f"| {name} | {n} | {r['fires_after']} of {r['of']} | {r['at_s']:.0f} / "
                  f"{r['end_s']:.0f} | {r['best_then']:.4f} / {r['final_best']:.4f} | "
                  f"{lost:+.4f} (floor {r['floor']:.4f})" + ("" if r["final_best_run"] else
                                                            ", final best not yet run") + " |")


if __name__ == "__main__":
    main()
