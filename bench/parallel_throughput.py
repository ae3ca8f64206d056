"""Parallel throughput on this machine: the same trials run by 1 worker process with all BLAS
threads (2 here) against 2 worker processes with 1 BLAS thread each.

The trials are fixed (a grid over hidden size and optimizer on Fashion-MNIST, a few epochs, no
pruning), so both layouts do exactly the same work; tracking is on, as in a real sweep. The two
layouts alternate for ``--rounds`` rounds; each figure is its best round.

    python bench/parallel_throughput.py [--rounds 2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SPEC = """\
name: throughput
data: {{dataset: fashion-mnist, val_fraction: 0.2, seed: 0, preprocessing: scale}}
training: {{max_epochs: {epochs}, batch_size: 128, early_stopping_patience: null, seed: 0}}
budget: {{n_trials: {n}}}
sampler: grid
pruner: none
space:
  hidden_size: {{type: categorical, choices: [128, 256, 512]}}
  optimizer: {{type: categorical, choices: [sgd, adam]}}
  learning_rate: 0.001
"""


def one(workers: int, epochs: int) -> tuple[float, int]:
    from hpsearch.sweep import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            Path("t.yaml").write_text(SPEC.format(epochs=epochs, n=6))
            t0 = time.perf_counter()
            result = run_sweep("t.yaml", workers=workers, echo=lambda s: None)
            return time.perf_counter() - t0, result.ran
        finally:
            os.chdir(old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    best: dict[int, float] = {}
    for r in range(args.rounds):
        for workers in (1, cores):
            seconds, ran = one(workers, args.epochs)
            assert ran == 6, ran
            best[workers] = min(best.get(workers, float("inf")), seconds)
            print(f"round {r + 1}: {workers} worker(s) x {cores // workers} BLAS thread(s): "
                  f"6 trials in {seconds:.1f} s ({6 / seconds * 3600:.0f} trials/h)", flush=True)
    ratio = best[1] / best[cores]
    print(f"{cores} workers x 1 thread vs 1 worker x {cores} threads: {ratio:.2f}x the "
          f"trials per hour (best rounds: {best[cores]:.1f} s vs {best[1]:.1f} s)")


if __name__ == "__main__":
    main()
