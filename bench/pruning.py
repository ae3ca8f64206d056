"""What pruning saves: the same sweep (same sampler seed, same trial budget) with no pruner, the
median pruner and Hyperband; for each seed, the epochs each spent until it first reached the
same validation score: the lowest of the three runs' best scores, so that every run reaches it.

Default: the quickstart sweep (digits, 40 epochs at most, TPE) with 30 trials and seeds 0-2;
``--spec sweeps/fashion-mnist.yaml --trials 20`` for Fashion-MNIST (slower).

    python bench/pruning.py [--spec sweeps/quickstart.yaml] [--trials 30] [--seeds 3] [--jobs 2]

Median and Hyperband use the settings below, except that the spec's own pruner (if it is one
of them) is measured with the spec's settings.

``--jobs N`` runs the (seed, pruner) sweeps in N processes with one BLAS thread each: the epoch
counts do not depend on timing (one worker per sweep, seeded), only the wall time does.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRUNERS = {
    "none": "none",
    "median": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 3},
    "hyperband": {"name": "hyperband", "min_resource": 2, "reduction_factor": 3},
}


def one(spec: dict, pruner: object, seed: int, trials: int) -> list[tuple[int, str, float | None]]:
    """(epochs run, state, value) of each trial, in trial order (one worker)."""
    import optuna

    from hpsearch.sweep import open_storage, run_sweep

    spec = {**spec, "pruner": pruner, "sampler": {**spec["sampler"], "seed": seed},
            "budget": {"n_trials": trials, "workers": 1}}
    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            Path("s.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            run_sweep("s.yaml", tracking_uri="none", echo=lambda s: None)
            study = optuna.load_study(study_name=spec["name"], storage=open_storage(
                "journal:" + str(Path(tmp) / "mlruns" / "optuna.journal")))
            return [(int(t.user_attrs.get("epochs_run", 0)), t.state.name, t.value)
                    for t in study.get_trials()]
        finally:
            os.chdir(old)


def _one_job(job: tuple[dict, object, int, int]) -> list[tuple[int, str, float | None]]:
    import numpy  # noqa: F401  (load the BLAS first: a limit set before it loads is lost)
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(1):
        threads = {info["num_threads"] for info in threadpool_info()}
        assert threads == {1}, f"BLAS threads not limited: {threadpool_info()}"
        return one(*job)


def _keyed_job(item: tuple[tuple[int, str], tuple[dict, object, int, int]]
               ) -> tuple[tuple[int, str], list[tuple[int, str, float | None]]]:
    return item[0], _one_job(item[1])


def epochs_to_reach(trials: list[tuple[int, str, float | None]], target: float) -> int:
    spent = 0
    for epochs, state, value in trials:
        spent += epochs
        if state == "COMPLETE" and value is not None and value >= target:
            return spent
    raise AssertionError("target not reached")


def best(trials: list[tuple[int, str, float | None]]) -> float:
    return max(v for _, s, v in trials if s == "COMPLETE" and v is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "quickstart.yaml")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1,
                    help="sweeps run at once, one BLAS thread each (default: one at a time)")
    args = ap.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    pruners = dict(PRUNERS)
    shipped = spec.get("pruner")
    if isinstance(shipped, dict) and shipped.get("name") in pruners:
        pruners[shipped["name"]] = shipped  # measure the spec's own settings of its pruner
    print("pruners: " + "; ".join(f"{k}: {v}" for k, v in pruners.items()), flush=True)
    keys = [(seed, name) for seed in range(args.seeds) for name in pruners]
    jobs = [(spec, pruners[name], seed, args.trials) for seed, name in keys]
    done: dict[tuple[int, str], list[tuple[int, str, float | None]]] = {}
    ratios: dict[str, list[float]] = {"median": [], "hyperband": []}
    totals: dict[str, int] = {p: 0 for p in PRUNERS}

    def finished(key: tuple[int, str], trials: list[tuple[int, str, float | None]]) -> None:
        """Record one sweep; print its seed's line as soon as the seed's three sweeps are in
        (a long run that is stopped keeps the seeds it finished)."""
        done[key] = trials
        print(f"  seed {key[0]} {key[1]}: {len(trials)} trials, "
              f"{sum(e for e, _, _ in trials)} epochs, best {best(trials):.4f}", flush=True)
        seed = key[0]
        if not all((seed, name) in done for name in PRUNERS):
            return
        runs = {name: done[seed, name] for name in PRUNERS}
        target = min(best(r) for r in runs.values())
        spent = {name: epochs_to_reach(r, target) for name, r in runs.items()}
        for name, r in runs.items():
            totals[name] += sum(e for e, _, _ in r)
        line = ", ".join(f"{n} {spent[n]} (best {best(runs[n]):.4f}, "
                         f"{sum(e for e, _, _ in runs[n])} in all)" for n in PRUNERS)
        print(f"seed {seed}: epochs to reach val {target:.4f}: {line}", flush=True)
        for name in ratios:
            ratios[name].append(spent[name] / spent["none"])

    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for key, trials in pool.imap_unordered(_keyed_job, zip(keys, jobs, strict=True)):
                finished(key, trials)
    else:
        for key, job in zip(keys, jobs, strict=True):
            finished(key, one(*job))
    for name, rs in ratios.items():
        print(f"{name}: epochs to the same score / no pruning = "
              f"{statistics.median(rs):.2f} (median of {len(rs)} seeds: "
              f"{', '.join(f'{r:.2f}' for r in rs)}); all epochs of the {args.trials} trials: "
              f"{totals[name] / totals['none']:.2f} (target <= 0.5)")


if __name__ == "__main__":
    main()
