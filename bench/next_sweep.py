"""Two sweeps with `hpsearch next` between them against one sweep of twice the length.

Baseline: `hpsearch sweep sweeps/fashion-mnist.yaml --timeout 2M` (study `<prefix>20`), exactly as
shipped. Follow-up: the same spec for M minutes (study `<prefix>10`), `hpsearch next` on it, and
the written spec for another M minutes (study `<prefix>10-next`), warm-started from the first.
Each leg's best trial is exported (`hpsearch export --no-register`), whose test accuracy is
computed once by the export; the choice reads validation only. Legs run one after the other and
get the whole machine; `--reuse` keeps a leg whose study exists and has finished (a long
comparison can be spread over several sittings: each leg is recorded when it ends).

    python bench/next_sweep.py [--minutes 10] [--dir bench-next] [--prefix fm] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from hpcli import hpsearch  # noqa: E402

SPEC = ROOT / "sweeps" / "fashion-mnist.yaml"


def finished(where: Path, name: str) -> bool:
    import optuna

    from hpsearch.study.store import StudyKey, open_storage

    journal = where / "mlruns" / "optuna.journal"
    if not journal.exists():
        return False
    storage = open_storage(f"journal:{journal}")
    if name not in optuna.get_all_study_names(storage):
        return False
    study = optuna.load_study(study_name=name, storage=storage)
    running = [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    return not running and StudyKey.PARENT_RUN_ID in study.user_attrs and bool(study.trials)


def sweep(where: Path, spec: Path, name: str, seconds: float, reuse: bool) -> None:
    if reuse and finished(where, name):
        print(f"{name}: reused", flush=True)
        return
    print(f"{name}: sweeping {spec.name} for {seconds:.0f} s", flush=True)
    hpsearch(where, "sweep", str(spec), "--study", name, "--trials", "100000", "--timeout",
             str(seconds))


def summary(where: Path, name: str, marks: list[float]) -> dict:
    import optuna

    from hpsearch.study.store import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(
        f"journal:{where / 'mlruns' / 'optuna.journal'}"))
    trials = [t for t in study.trials if t.datetime_complete is not None]
    t0 = min(t.datetime_start for t in trials if t.datetime_start is not None).timestamp()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best_at = {}
    for m in marks:
        values = [t.value for t in complete if t.datetime_complete.timestamp() - t0 <= m]
        best_at[m] = max(values) if values else None
    out = hpsearch(where, "export", name, "--no-register", "--out", f"exports/{name}")
    found = re.search(r"exported trial (\d+) .* validation ([0-9.]+), test accuracy ([0-9.]+)",
                      out)
    assert found, out
    return {"study": name, "trials": len(trials), "complete": len(complete),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "best_val_at": best_at, "exported_trial": int(found[1]),
            "exported_val": float(found[2]), "exported_test": float(found[3]),
            "warm": study.user_attrs.get("hpsearch.warm_start")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--dir", type=Path, default=Path("bench-next"))
    ap.add_argument("--prefix", default="fm")
    ap.add_argument("--reuse", action="store_true", help="keep legs that have finished")
    args = ap.parse_args()
    where = args.dir.resolve()
    (where / "mlruns").mkdir(parents=True, exist_ok=True)
    m = args.minutes * 60
    long, first = f"{args.prefix}20", f"{args.prefix}10"
    sweep(where, SPEC, long, 2 * m, args.reuse)
    sweep(where, SPEC, first, m, args.reuse)
    nxt = where / "sweeps" / f"{first}-next.yaml"
    if not (args.reuse and nxt.exists()):
        print(hpsearch(where, "next", first, "--out", str(nxt), "--force"), flush=True)
    sweep(where, nxt, f"{first}-next", m, args.reuse)
    rows = [summary(where, long, [m, 2 * m]), summary(where, first, [m]),
            summary(where, f"{first}-next", [m])]
    base = rows[0]
    print(f"\n| sweep | trials (complete / pruned) | best val at {args.minutes:g} min | "
          f"best val at end | exported test | test vs {long} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        marks = sorted(r["best_val_at"])
        print(f"| {r['study']} | {r['trials']} ({r['complete']} / {r['pruned']}) | "
              f"{r['best_val_at'][marks[0]]:.4f} | {r['best_val_at'][marks[-1]]:.4f} | "
              f"{r['exported_test']:.4f} | "
              f"{r['exported_test'] - base['exported_test']:+.4f} |")
    follow = rows[2]["best_val_at"][m]
    print(f"\n10 + 10 ({first} then {first}-next): best val {follow:.4f}, exported test "
          f"{rows[2]['exported_test']:.4f}; one {2 * args.minutes:g}-minute sweep ({long}): "
          f"best val {base['best_val_at'][2 * m]:.4f}, exported test "
          f"{base['exported_test']:.4f}; difference in test accuracy "
          f"{rows[2]['exported_test'] - base['exported_test']:+.4f} "
          f"(one standard error of a test accuracy near 0.90 on 10,000 images: 0.0030)")
    (where / "next_sweep.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
