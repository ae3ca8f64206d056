"""What pruning saves: the same sweep (same sampler seed, same trial budget) with no pruner and
with each pruner; for each seed and pruner, the epochs both runs spent until a complete trial
first reached the same validation score: the lower of the two runs' best scores, so that both
reach it. (Up to 2026-11-27 the target was the lowest best of all the runs of a seed; it is
printed too, as "common target".)

Default: the quickstart sweep (digits, 40 epochs at most, TPE) with 30 trials and seeds 0-2;
``--spec sweeps/fashion-mnist.yaml --trials 16`` for Fashion-MNIST (slower).

    python bench/pruning.py [--spec sweeps/quickstart.yaml] [--trials 30] [--seeds 3] [--jobs 2]
                            [--pruners none,median,hyperband] [--out results.json]
                            [--extra-trials 24] [--reuse earlier.json] [--run-seeds 0,1]

Pruner settings are in PRUNERS below, except that the spec's own pruner (if it is one of
them) is measured with the spec's settings. ``--out`` writes every trial's (epochs, state,
value) of every sweep as JSON.

``--jobs N`` runs the (seed, pruner) sweeps in N processes with one BLAS thread each: the epoch
counts do not depend on timing (one worker per sweep, seeded), only the wall time does.
"""

from __future__ import annotations

import argparse
import json
import math
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
    "median-eager": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    "hyperband": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
    "successive_halving": {"name": "successive_halving", "min_resource": 1,
                           "reduction_factor": 3},
}
DEFAULT_PRUNERS = "none,median,hyperband"
Run = list[tuple[int, str, float | None]]  # (epochs run, state, value) of each trial, in order


def one(spec: dict, pruner: object, seed: int, trials: int) -> Run:
    """(epochs run, state, value) of each trial, in trial order (one worker)."""
    import optuna

    from hpsearch.search.sweep import run_sweep
    from hpsearch.study.store import open_storage

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


def _one_job(job: tuple[dict, object, int, int]) -> Run:
    import numpy  # noqa: F401  (load the BLAS first: a limit set before it loads is lost)
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(1):
        threads = {info["num_threads"] for info in threadpool_info()}
        assert threads == {1}, f"BLAS threads not limited: {threadpool_info()}"
        return one(*job)


def _keyed_job(item: tuple[tuple[int, str], tuple[dict, object, int, int]]
               ) -> tuple[tuple[int, str], Run]:
    return item[0], _one_job(item[1])


def epochs_to_reach(trials: Run, target: float) -> int | None:
    """Epochs spent until a complete trial first scored ``target`` or more; None: never."""
    spent = 0
    for epochs, state, value in trials:
        spent += epochs
        if state == "COMPLETE" and value is not None and value >= target:
            return spent
    return None


def reached(trials: Run, target: float) -> int:
    """`epochs_to_reach` of a target that the run is known to reach (its best or lower)."""
    spent = epochs_to_reach(trials, target)
    assert spent is not None, f"target {target} not reached"
    return spent


def epochs(trials: Run) -> int:
    return sum(e for e, _, _ in trials)


def best(trials: Run) -> float:
    return max(v for _, s, v in trials if s == "COMPLETE" and v is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "quickstart.yaml")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1,
                    help="sweeps run at once, one BLAS thread each (default: one at a time)")
    ap.add_argument("--pruners", default=DEFAULT_PRUNERS,
                    help=f"comma-separated, 'none' first; of: {', '.join(PRUNERS)}")
    ap.add_argument("--extra-trials", type=int, default=0,
                    help="pruned sweeps run this many trials more, to measure the epochs they "
                         "need to reach no pruning's best score (the first --trials are the "
                         "same trials as a sweep of --trials)")
    ap.add_argument("--reuse", type=Path, action="append", default=[],
                    help="take the sweeps that a previous --out file holds (same spec, seed "
                         "and pruner settings, enough trials) instead of running them again "
                         "(repeatable)")
    ap.add_argument("--run-seeds", help="run only these seeds (comma-separated; the others "
                                        "must come from --reuse)")
    ap.add_argument("--out", type=Path, help="write every sweep's trials here (JSON)")
    args = ap.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    names = args.pruners.split(",")
    if names[0] != "none" or len(names) < 2 or not set(names) <= set(PRUNERS):
        ap.error(f"--pruners: 'none' then one or more of {', '.join(PRUNERS)}")
    pruners = {name: PRUNERS[name] for name in names}
    shipped = spec.get("pruner")
    if isinstance(shipped, dict) and shipped.get("name") in pruners:
        pruners[shipped["name"]] = shipped  # measure the spec's own settings of its pruner
    print("pruners: " + "; ".join(f"{k}: {v}" for k, v in pruners.items()), flush=True)
    wanted = {(seed, name): args.trials + (args.extra_trials if name != "none" else 0)
              for seed in range(args.seeds) for name in pruners}
    done: dict[tuple[int, str], Run] = {}
    for path in args.reuse:
        old = json.loads(path.read_text())
        for run in old["runs"] if old["spec"] == str(args.spec) else []:
            key = (run["seed"], run["pruner"])
            if (key in wanted and key not in done and len(run["trials"]) >= wanted[key]
                    and old["pruners"].get(run["pruner"]) == pruners[run["pruner"]]):
                done[key] = [tuple(t) for t in run["trials"][:wanted[key]]]  # type: ignore
    if args.reuse:
        print(f"reused: {', '.join(f'seed {k[0]} {k[1]}' for k in done) or 'nothing'}",
              flush=True)
    run_seeds = ({int(x) for x in args.run_seeds.split(",")} if args.run_seeds
                 else set(range(args.seeds)))
    keys = [key for key in wanted if key not in done and key[0] in run_seeds]
    jobs = [(spec, pruners[name], seed, wanted[seed, name]) for seed, name in keys]

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(
                {"spec": str(args.spec), "trials": args.trials, "pruners": pruners,
                 "runs": [{"seed": s, "pruner": n, "trials": t} for (s, n), t in done.items()]},
                indent=1))

    def finished(key: tuple[int, str], trials: Run) -> None:
        """Record one sweep; print its seed's lines as soon as the seed's sweeps are all in
        (a long run that is stopped keeps the seeds it finished)."""
        done[key] = trials
        print(f"  seed {key[0]} {key[1]}: {len(trials)} trials, {epochs(trials)} epochs, "
              f"best {best(trials):.4f}", flush=True)
        if all((key[0], name) in done for name in pruners):
            runs = {name: done[key[0], name] for name in pruners}
            for line in seed_lines(key[0], runs, args.trials):
                print(line, flush=True)
        save()

    save()
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for key, trials in pool.imap_unordered(_keyed_job, zip(keys, jobs, strict=True)):
                finished(key, trials)
    else:
        for key, job in zip(keys, jobs, strict=True):
            finished(key, one(*job))
    seeds = [seed for seed in range(args.seeds) if all((seed, p) in done for p in pruners)]
    if not seeds:
        return
    n = args.trials
    for name in names[1:]:
        rs = [pair_ratio(done[seed, "none"], done[seed, name][:n]) for seed in seeds]
        total = sum(epochs(done[seed, name][:n]) for seed in seeds)
        none = sum(epochs(done[seed, "none"]) for seed in seeds)
        print(f"{name}: epochs to the same score / no pruning = "
              f"{statistics.median(rs):.2f} (median of {len(rs)} seeds: "
              f"{', '.join(f'{r:.2f}' for r in rs)}); all epochs of the {n} trials: "
              f"{total / none:.2f} (target <= 0.5)")
        if args.extra_trials:
            full = [to_none_best(done[seed, "none"], done[seed, name]) for seed in seeds]
            print(f"{name}: epochs to no pruning's best (up to {n + args.extra_trials} "
                  f"trials) / no pruning's = {statistics.median(full):.2f} (median of "
                  f"{len(full)} seeds: {', '.join(f'{r:.2f}' for r in full)}; inf: not "
                  f"reached)")


def to_none_best(none: Run, pruned: Run) -> float:
    """Epochs the pruned run (with its extra trials) spent until it reached the best score of
    the run without pruning, relative to that run's epochs to it; inf if it never did."""
    target = best(none)
    spent = epochs_to_reach(pruned, target)
    return math.inf if spent is None else spent / reached(none, target)


def pair_ratio(none: Run, pruned: Run) -> float:
    """Epochs the pruned run spent to reach the lower of the two runs' best scores, relative to
    the run without pruning."""
    target = min(best(none), best(pruned))
    return reached(pruned, target) / reached(none, target)


def seed_lines(seed: int, runs: dict[str, Run], n: int) -> list[str]:
    """Each pruner against no pruning, on the first ``n`` trials (and to no pruning's best with
    the extra trials, if any)."""
    head = {name: r[:n] for name, r in runs.items()}
    common = min(best(r) for r in head.values())
    none = head["none"]
    lines = []
    for name, r in head.items():
        if name == "none":
            continue
        target = min(best(none), best(r))
        line = (f"seed {seed} {name}: to val {target:.4f}: {reached(r, target)} epochs "
                f"vs {reached(none, target)} (ratio {pair_ratio(none, r):.2f}); "
                f"best {best(r):.4f} vs {best(none):.4f}; "
                f"{epochs(r)} vs {epochs(none)} epochs in all; "
                f"common target {common:.4f}: {reached(r, common)} vs {reached(none, common)}")
        if len(runs[name]) > n:
            full = runs[name]
            line += (f"; with {len(full)} trials: to no pruning's best {best(none):.4f}: "
                     f"ratio {to_none_best(none, full):.2f}, best {best(full):.4f}, "
                     f"{epochs(full)} epochs in all")
        lines.append(line)
    return lines


if __name__ == "__main__":
    main()
