"""Model quality against wall-clock time, over sweep seeds: three ways to spend the same budget.

Arms, each with the same budget, one after the other, each getting the whole machine:
  shipped  `hpsearch sweep sweeps/fashion-mnist.yaml` as shipped (TPE, median pruning), its
           sampler seed set per run;
  random   the same engine and space, random search and no pruning;
  peer     the hand-written Optuna TPE + scikit-learn MLPClassifier loop (bench/peer_sweep.py),
           the baseline named in the figures.
For every run: the best validation accuracy against time (trial completion times), and the test
accuracy of what it would export: with the spec's `export: {in_budget: true}` (shipped), the
model the sweep itself exported as its last step, and the minutes from the sweep's start to it
(the sweep's budget covers the export); then, outside the budget and without a refit, for
comparison: for hpsearch the single best trial (`--ensemble 1`), the
reseeded winner (the spec's `export.reseed` runs inside the sweep's budget and the export reads
it; a spec without it is reseeded after the sweep with `--reseed 2`, outside the budget, time
reported) and the ensemble of the kept checkpoints (`--ensemble K`); for the loop its best
trial. With `--refit`, also the reseeded winner refit on train + validation (`--refit`): its
minutes come after the sweep's, so the time to that model is the sweep's budget plus the refit's
(printed; give the sweep `--minutes` less to keep the total). Every choice reads validation only;
the test split is read by the exports.

Each run is kept in DIR/<arm>-s<seed>/result.json when it ends; `--reuse` keeps finished runs,
so a comparison can be spread over several sittings. Prints the table (mean and spread over the
seeds) and writes DIR/anytime.png (mean best validation against time, the seeds' range shaded).

    python bench/anytime.py [--minutes 20] [--seeds 0 1] [--arms shipped random peer]
                            [--dir bench-anytime] [--reuse] [--reseed-arms shipped random]
                            [--refit]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from hpcli import hpsearch as cli  # noqa: E402

SPEC = ROOT / "sweeps" / "fashion-mnist.yaml"
MARKS = (120, 300, 600, 900, 1200)


def exported_test(out: str) -> tuple[int, float]:
    found = re.search(r"exported (?:an ensemble led by )?trial (\d+) .*test accuracy ([0-9.]+)",
                      out)
    assert found, out
    return int(found[1]), float(found[2])


def run_hpsearch(arm: str, seed: int, seconds: float, where: Path, reseed: bool) -> dict:
    import optuna

    from hpsearch.study.store import open_storage

    spec = yaml.safe_load(SPEC.read_text())
    spec["name"] = f"{arm}-s{seed}"
    if arm == "random":
        spec["sampler"], spec["pruner"] = {"name": "random", "seed": seed}, "none"
    else:
        spec["sampler"]["seed"] = seed
    where.mkdir(parents=True, exist_ok=True)
    (where / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    t0 = time.time()
    out = cli(where, "sweep", "spec.yaml", "--trials", "100000", "--timeout", str(seconds))
    elapsed = time.time() - t0  # with export.in_budget, the export's time too
    (where / "sweep.log").write_text(out)  # the sweep's own lines, its export's included
    study = optuna.load_study(study_name=spec["name"], storage=open_storage(
        f"journal:{where / 'mlruns' / 'optuna.journal'}"))
    start = min(t.datetime_start.timestamp() for t in study.trials if t.datetime_start)
    trials = [{"number": t.number, "state": t.state.name, "val_accuracy": t.value,
               "finished_s": t.datetime_complete.timestamp() - start,
               "reseed_of": t.user_attrs.get("reseed_of")}
              for t in study.trials if t.datetime_complete]
    keep = int(spec.get("checkpoints", {}).get("keep", 3))
    exports = {}
    if spec.get("export", {}).get("in_budget"):  # what the sweep itself exported, in budget
        exports["in_budget"] = exported_test(out)
    # the same study's models without a refit, for comparison (outside the budget)
    exports["single"] = exported_test(cli(where, "export", spec["name"], "--no-register",
                                          "--ensemble", "1", "--no-refit", "--out",
                                          "exports/single"))
    t1 = time.time()
    exports["ensemble"] = exported_test(cli(where, "export", spec["name"], "--no-register",
                                            "--ensemble", str(keep), "--no-refit", "--out",
                                            "exports/ensemble"))
    exports["ensemble_seconds"] = (time.time() - t1, 0.0)  # an export's work, no training
    in_sweep = int(spec.get("export", {}).get("reseed", 0))  # reseeded in the sweep's budget
    if reseed or in_sweep:
        t1 = time.time()
        out = cli(where, "export", spec["name"], "--no-register", "--reseed",
                  str(in_sweep or 2), "--ensemble", "1", "--no-refit", "--out",
                  "exports/reseed")
        exports["reseed"] = exported_test(out)
        exports["reseed_seconds"] = (time.time() - t1, 0.0)
    return {"arm": arm, "seed": seed, "budget_s": seconds, "elapsed_s": elapsed,
            "trials": trials, "exports": exports}


def refit_export(result: dict, where: Path) -> None:
    """The reseeded winner (or the best trial, when the run has no reseed) refit on train +
    validation, and how long the export took, into ``result``."""
    spec = yaml.safe_load((where / "spec.yaml").read_text())
    reseed = int(spec.get("export", {}).get("reseed", 0)) or None
    t1 = time.time()
    out = cli(where, "export", spec["name"], "--no-register", "--ensemble", "1", "--refit",
              *(["--reseed", str(reseed)] if reseed else []), "--out", "exports/refit")
    result["exports"]["refit"] = exported_test(out)
    result["exports"]["refit_seconds"] = (time.time() - t1, 0.0)


def run_peer(seed: int, seconds: float) -> dict:
    from peer_sweep import run

    r = run(seconds, seed)
    trials = [{"number": t["number"], "state": "COMPLETE", "val_accuracy": t["val_accuracy"],
               "finished_s": t["finished_s"]} for t in r["trials"]]
    return {"arm": "peer", "seed": seed, "budget_s": seconds, "elapsed_s": r["elapsed_s"],
            "trials": trials, "exports": {"single": (r["best_trial"],
                                                     r["best_test_accuracy"])}}


def best_at(result: dict, seconds: float) -> float | None:
    values = [t["val_accuracy"] for t in result["trials"] if t["state"] == "COMPLETE"
              and t["val_accuracy"] is not None and t["finished_s"] <= seconds]
    return max(values) if values else None


def lead(results: list[dict], arm: str, other: str, horizon: float) -> str:
    """How often, after the first two minutes, arm's mean best validation score is ahead of
    other's, on a 5-second grid (the target: ahead at every point)."""
    def mean_at(name: str, s: float) -> float | None:
        values = [best_at(r, s) for r in results if r["arm"] == name]
        return None if not values or None in values else sum(values) / len(values)

    ahead = tied = behind = 0
    worst = 0.0
    for s in range(120, int(horizon) + 1, 5):
        a, b = mean_at(arm, s), mean_at(other, s)
        if a is None or b is None:
            continue
        if abs(a - b) < 1e-9:
            tied += 1
        elif a > b:
            ahead += 1
        else:
            behind += 1
            worst = max(worst, b - a)
    n = ahead + tied + behind
    if not n:
        return f"{arm} vs {other}: no common points after 2 minutes"
    return (f"{arm} vs {other} after 2 minutes (mean over seeds, {n} points 5 s apart): ahead at "
            f"{ahead / n:.0%}, tied at {tied / n:.0%}, behind at {behind / n:.0%}"
            + (f" (by up to {worst:.4f})" if behind else ""))


def plot(results: list[dict], arms: list[str], horizon: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(60, horizon, 120)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm in arms:
        runs = [r for r in results if r["arm"] == arm]
        curves = np.array([[best_at(r, s) or np.nan for s in grid] for r in runs], dtype=float)
        if not len(curves):
            continue
        # the mean only where every seed has a complete trial (a mean of the seeds that have
        # one would jump down when a slower seed's first, weaker trial arrives)
        mean = np.where(np.isnan(curves).any(axis=0), np.nan, np.nanmean(curves, axis=0))
        line, = ax.plot(grid / 60, mean, label=f"{arm} (mean of {len(runs)} seeds)")
        ax.fill_between(grid / 60, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                        color=line.get_color(), alpha=0.2)
    ax.set_xlabel("minutes")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_ylim(0.86, 0.915)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=["shipped", "random", "peer"],
                    choices=["shipped", "random", "peer"])
    ap.add_argument("--dir", type=Path, default=Path("bench-anytime"))
    ap.add_argument("--reuse", action="store_true", help="keep the runs that have finished")
    ap.add_argument("--reseed-arms", nargs="*", default=["shipped", "random"],
                    help="the hpsearch arms whose reseeded export is measured (it retrains 6 "
                         "models: minutes on Fashion-MNIST)")
    ap.add_argument("--refit", action="store_true",
                    help="also export the reseed arms' winner refit on train + validation")
    args = ap.parse_args()
    seconds = args.minutes * 60
    results = []
    for seed in args.seeds:
        for arm in args.arms:
            where = (args.dir / f"{arm}-s{seed}").resolve()
            record = where / "result.json"
            refit = args.refit and arm in args.reseed_arms and arm != "peer"
            if args.reuse and record.exists():
                r = json.loads(record.read_text())
                print(f"{arm} seed {seed}: reused", flush=True)
            else:
                print(f"{arm} seed {seed}: {args.minutes:g} minutes", flush=True)
                r = run_peer(seed, seconds) if arm == "peer" else \
                    run_hpsearch(arm, seed, seconds, where, arm in args.reseed_arms)
            if refit and "refit" not in r["exports"]:
                refit_export(r, where)
            where.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(r, indent=1))
            results.append(r)
    marks = [m for m in MARKS if m <= seconds] or [seconds]
    print(f"\nbest validation accuracy at {', '.join(f'{m / 60:g}' for m in marks)} min, and "
          f"the exported models' test accuracy; mean (min-max) over seeds {args.seeds}")
    print("| arm | trials (search+reseed) per seed | " +
          " | ".join(f"val {m / 60:g} min" for m in marks) +
          " | test: single | test: reseeded | test: ensemble | test: refit | "
          "test: in-budget export | minutes to it |")
    print("|---|---|" + "---|" * (len(marks) + 6))

    def cell(values: list[float | None]) -> str:
        vs = [v for v in values if v is not None]
        if not vs:
            return "-"
        return f"{sum(vs) / len(vs):.4f} ({min(vs):.4f}-{max(vs):.4f})" if len(vs) > 1 \
            else f"{vs[0]:.4f}"

    for arm in args.arms:
        runs = [r for r in results if r["arm"] == arm]
        row = [arm, ", ".join(f"{sum(t.get('reseed_of') is None for t in r['trials'])}"
                              + (f"+{n}" if (n := sum(t.get("reseed_of") is not None
                                                      for t in r["trials"])) else "")
                              for r in runs)]
        row += [cell([best_at(r, m) for r in runs]) for m in marks]
        row += [cell([r["exports"].get(k, (None, None))[1] for r in runs])
                for k in ("single", "reseed", "ensemble", "refit", "in_budget")]
        timed = [r["elapsed_s"] / 60 for r in runs if "in_budget" in r["exports"]]
        row.append(", ".join(f"{m:.1f}" for m in timed) or "-")
        print("| " + " | ".join(row) + " |")
    for r in results:
        if "refit" in r["exports"]:
            print(f"{r['arm']} seed {r['seed']}: the sweep {r['elapsed_s'] / 60:.1f} min + the "
                  f"refit export {r['exports']['refit_seconds'][0] / 60:.1f} min = "
                  f"{(r['elapsed_s'] + r['exports']['refit_seconds'][0]) / 60:.1f} min to the "
                  f"refit model (test {r['exports']['refit'][1]:.4f}; trial "
                  f"{r['exports']['refit'][0]})")
    if {"shipped", "random"} <= set(args.arms):
        print(lead(results, "shipped", "random", seconds))
    args.dir.mkdir(parents=True, exist_ok=True)
    plot(results, args.arms, seconds, args.dir / "anytime.png")
    print(f"\nplot: {args.dir / 'anytime.png'}")


if __name__ == "__main__":
    main()
