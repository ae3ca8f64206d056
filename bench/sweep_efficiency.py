"""Sweep efficiency: hpsearch's Fashion-MNIST sweep against a hand-written Optuna + scikit-learn
loop (bench/peer_sweep.py), the same wall-clock budget each, one after the other in one run.

Baseline: TPE over scikit-learn's MLPClassifier, each trial fitted to the end (early_stopping),
scored on the validation split; its best trial's test accuracy is reported.
hpsearch: `hpsearch sweep sweeps/fashion-mnist.yaml --timeout BUDGET` exactly as a user runs it
(tracking to an embedded MLflow store, checkpoints, pruning), then `hpsearch export` of the best
trial, whose test accuracy is computed once by the export.

Both get the whole machine; a trial running when the budget ends is allowed to finish on both
sides, and trials per hour divide by the elapsed time including it. Writes a JSON record and a
plot of the best validation accuracy over time.

    python bench/sweep_efficiency.py [--budget 1200] [--workers N] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def run_hpsearch(budget: float, workers: int | None, spec: Path) -> dict:
    import optuna

    from hpsearch.study.store import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE", "HPSEARCH_CHECKPOINTS")}
        cmd = [sys.executable, "-m", "hpsearch.cli", "sweep", str(spec), "--trials", "100000",
               "--timeout", str(budget)]
        if workers:
            cmd += ["--workers", str(workers)]
        t0 = time.time()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        elapsed = time.time() - t0
        if done.returncode != 0:
            raise SystemExit(f"hpsearch sweep failed:\n{done.stderr}")
        name = spec.stem
        study = optuna.load_study(study_name=name, storage=open_storage(
            "journal:" + str(Path(tmp) / "mlruns" / "optuna.journal")))
        trials = []
        for t in study.get_trials():
            if t.datetime_complete is None:
                continue
            trials.append({"number": t.number, "state": t.state.name,
                           "finished_s": t.datetime_complete.timestamp() - t0,
                           "epochs": int(t.user_attrs.get("epochs_run", 0)),
                           "val_accuracy": t.value, "params": t.params,
                           # what `hpsearch export` of this trial would report as its test
                           # accuracy: the same checkpoint (best epoch) on the same split
                           "test_accuracy": t.user_attrs.get("test_accuracy_at_best")})
        t1 = time.time()
        exported = subprocess.run([sys.executable, "-m", "hpsearch.cli", "export", name,
                                   "--no-register", "--out", "export"], cwd=tmp, env=env,
                                  capture_output=True, text=True)
        export_s = time.time() - t1
        if exported.returncode != 0:
            raise SystemExit(f"hpsearch export failed:\n{exported.stderr}")
        test = json.loads((Path(tmp) / "export" / "test_metrics.json").read_text())
        best = study.best_trial
    return {"engine": "hpsearch", "budget_s": budget, "elapsed_s": elapsed, "trials": trials,
            "n_trials": len(trials), "trials_per_hour": len(trials) / elapsed * 3600,
            "states": {s: sum(t["state"] == s for t in trials)
                       for s in ("COMPLETE", "PRUNED", "FAIL")},
            "epochs_total": sum(t["epochs"] for t in trials),
            "best_val_accuracy": best.value, "best_trial": best.number,
            "best_params": best.params, "export_s": export_s,
            "exported_test_accuracy": test.get("test_accuracy", test.get("accuracy"))}


def best_within(trials: list[dict], seconds: float) -> dict | None:
    """The trial a user stopping the sweep at ``seconds`` would pick: the best complete trial
    finished by then (the first to reach the best score)."""
    done = [t for t in sorted(trials, key=lambda t: t["finished_s"])
            if t.get("state", "COMPLETE") == "COMPLETE" and t["val_accuracy"] is not None
            and t["finished_s"] <= seconds]
    return max(done, key=lambda t: t["val_accuracy"]) if done else None


def best_over_time(trials: list[dict]) -> list[tuple[float, float]]:
    points, best = [], 0.0
    for t in sorted(trials, key=lambda t: t["finished_s"]):
        if t.get("state", "COMPLETE") == "COMPLETE" and t["val_accuracy"] is not None:
            best = max(best, t["val_accuracy"])
            points.append((t["finished_s"], best))
    return points


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        pts = best_over_time(r["trials"])
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.step([x / 60 for x in xs], ys, where="post", marker="o", markersize=3,
                     label=f"{r['engine']} ({r['n_trials']} trials)")
    ax.set_xlabel("minutes since the sweep started")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_ylim(0.84, 0.92)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Fashion-MNIST, same wall-clock budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=1200.0, help="seconds per side")
    ap.add_argument("--workers", type=int, default=None,
                    help="hpsearch worker processes (default: the spec's budget.workers)")
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "fashion-mnist.yaml")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--first", choices=("baseline", "hpsearch"), default="baseline",
                    help="which side runs first (the other runs right after)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import peer_sweep

    def baseline() -> dict:
        peer = peer_sweep.run(args.budget)
        print(f"baseline (Optuna TPE + scikit-learn): {peer['n_trials']} trials in "
              f"{peer['elapsed_s']:.0f} s, best val {peer['best_val_accuracy']:.4f}, its test "
              f"accuracy {peer['best_test_accuracy']:.4f}", flush=True)
        return peer

    def hpsearch() -> dict:
        ours = run_hpsearch(args.budget, args.workers, args.spec.resolve())
        print(f"hpsearch: {ours['n_trials']} trials in {ours['elapsed_s']:.0f} s "
              f"{ours['states']}, best val {ours['best_val_accuracy']:.4f}, exported test "
              f"accuracy {ours['exported_test_accuracy']:.4f} (export {ours['export_s']:.0f} s)",
              flush=True)
        return ours

    if args.first == "baseline":
        peer = baseline()
        ours = hpsearch()
    else:
        ours = hpsearch()
        peer = baseline()
    ratio = ours["trials_per_hour"] / peer["trials_per_hour"]
    print(f"trials per hour: hpsearch {ours['trials_per_hour']:.0f}, baseline "
          f"{peer['trials_per_hour']:.0f}: {ratio:.2f}x (target >= 3x)")
    print(f"epochs trained: hpsearch {ours['epochs_total']}, baseline {peer['epochs_total']}")
    for minutes in (5, 10, 15, 20):
        row = []
        for r in (peer, ours):
            pts = [b for s, b in best_over_time(r["trials"]) if s <= minutes * 60]
            row.append(f"{pts[-1]:.4f}" if pts else "-")
        print(f"best val after {minutes:>2} min: baseline {row[0]}, hpsearch {row[1]}")
    beat = ours["exported_test_accuracy"] > peer["best_test_accuracy"]
    print(f"test accuracy: hpsearch export {ours['exported_test_accuracy']:.4f} vs baseline best "
          f"trial {peer['best_test_accuracy']:.4f}: {'higher' if beat else 'NOT higher'}; "
          f">= 0.90: {'yes' if ours['exported_test_accuracy'] >= 0.90 else 'no'}")
    for r in (peer, ours):  # the sweeps' timeouts let running trials finish past the budget
        at = best_within(r["trials"], args.budget)
        print(f"{r['engine']}: ended after {r['elapsed_s']:.0f} s; best trial finished within "
              f"{args.budget:.0f} s: " + (f"trial {at['number']}, val {at['val_accuracy']:.4f}, "
                                         f"test {at['test_accuracy']:.4f}" if at else "none"))
    (args.out / "sweep_efficiency.json").write_text(json.dumps(
        {"baseline": peer, "hpsearch": ours, "trials_per_hour_ratio": ratio}, indent=1,
        default=str))
    plot([peer, ours], args.out / "sweep_efficiency.png")
    print(f"wrote {args.out / 'sweep_efficiency.json'} and sweep_efficiency.png")


if __name__ == "__main__":
    main()
