"""Parallel throughput on this machine: the same trials run by 1 worker process with all BLAS
threads (2 here) against 2 worker processes with 1 BLAS thread each.

The trials are identical (Fashion-MNIST, 784-256-10, Adam, a few epochs, no pruning), so both
layouts do exactly the same work; tracking is on, as in a real sweep. Two figures per layout:
the wall time of the whole sweep (worker start-up included) and the steady rate (workers divided
by the median duration of a trial, start to finish: what a long sweep converges to). The two layouts
alternate for ``--rounds`` rounds; each figure is its best round.

    python bench/parallel_throughput.py [--rounds 2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

SPEC = """\
name: throughput
data: {{dataset: fashion-mnist, val_fraction: 0.2, seed: 0, preprocessing: scale}}
training: {{max_epochs: {epochs}, batch_size: 128, early_stopping_patience: null, seed: 0}}
budget: {{n_trials: {n}}}
sampler: {{name: random, seed: 0}}
pruner: none
space:
  hidden_size: 256
  optimizer: adam
  learning_rate: 0.001
"""


def one(workers: int, epochs: int, n: int) -> tuple[float, float]:
    """(wall seconds of the sweep, steady trials per hour)."""
    import optuna

    from hpsearch.search.sweep import run_sweep
    from hpsearch.study.store import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            Path("t.yaml").write_text(SPEC.format(epochs=epochs, n=n))
            t0 = time.perf_counter()
            result = run_sweep("t.yaml", workers=workers, echo=lambda s: None)
            wall = time.perf_counter() - t0
            assert result.ran == n, result.ran
            study = optuna.load_study(study_name="throughput", storage=open_storage(
                "journal:" + str(Path(tmp) / "mlruns" / "optuna.journal")))
            durations = [(t.datetime_complete - t.datetime_start).total_seconds()
                         for t in study.get_trials()
                         if t.datetime_complete is not None and t.datetime_start is not None]
            return wall, workers * 3600 / statistics.median(durations)
        finally:
            os.chdir(old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    wall: dict[int, float] = {}
    rate: dict[int, float] = {}
    for r in range(args.rounds):
        for workers in (1, cores):
            seconds, steady = one(workers, args.epochs, args.trials)
            wall[workers] = min(wall.get(workers, float("inf")), seconds)
            rate[workers] = max(rate.get(workers, 0.0), steady)
            print(f"round {r + 1}: {workers} worker(s) x {cores // workers} BLAS thread(s): "
                  f"{args.trials} trials in {seconds:.1f} s "
                  f"({args.trials / seconds * 3600:.0f} trials/h), steady {steady:.0f} "
                  f"trials/h", flush=True)
    print(f"{cores} workers x 1 thread vs 1 worker x {cores} threads: whole sweep "
          f"{wall[1] / wall[cores]:.2f}x the trials per hour ({wall[cores]:.1f} s vs "
          f"{wall[1]:.1f} s); steady rate {rate[cores] / rate[1]:.2f}x")


if __name__ == "__main__":
    main()
