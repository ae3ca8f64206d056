"""What MLflow tracking costs a sweep, as a user meets it: whole `hpsearch sweep` processes, each
in a fresh directory (imports, the store's creation and the workers' start-up included), with
tracking on (the embedded SQLite store: every per-epoch metric, the artifacts, the kept trials'
logged models, the parent run) and off (``--tracking-uri none``), alternating in one run. Prints
the overhead as a share of the untracked wall time: of the best and of the median of each side,
and the median of the rounds' ratios (on / off, run one after the other); and the CPU time of
all the sweep's processes.

Default: the two sweeps of issue 35, bench/tracking_sweep.yaml (Fashion-MNIST, 8 trials of 6
epochs, no pruning, two workers) and the quickstart (digits, 20 trials, one worker).

    python bench/tracking_overhead.py [--spec bench/tracking_sweep.yaml:8 ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [f"{ROOT / 'bench' / 'tracking_sweep.yaml'}:8",
           f"{ROOT / 'sweeps' / 'quickstart.yaml'}:20"]


def one(spec: Path, trials: int, tracking: bool) -> tuple[float, float]:
    """Wall seconds of one `hpsearch sweep` in a fresh directory, and the CPU seconds (user +
    system) of all its processes (the sweep, its workers, its MLflow writer)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "HPSEARCH_STORAGE")}
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as tmp:
        argv = [sys.executable, "-m", "hpsearch", "sweep", str(spec), "--trials", str(trials)]
        if not tracking:
            argv += ["--tracking-uri", "none"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", nargs="*", default=DEFAULT, help="SPEC:TRIALS, one or more")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for item in args.spec:
        path, _, n = item.rpartition(":")
        spec, trials = Path(path).resolve(), int(n)
        one(spec, 2, True)  # the first process of a kind warms the OS's file cache
        times: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for tracking in (False, True):
                wall, cpu = one(spec, trials, tracking)
                times[tracking].append(wall)
                cpus[tracking].append(cpu)
                print(f"  {spec.name} tracking {'on ' if tracking else 'off'} "
                      f"{wall:6.2f} s, {cpu:6.2f} s of CPU", flush=True)
        best = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        # each round's two sweeps ran one after the other: their ratio cancels the slow drifts
        # of a shared machine that the best and the median of each side keep
        paired = statistics.median(on / off for off, on in
                                   zip(times[False], times[True], strict=True))
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"{spec.name}, {trials} trials, whole processes in fresh directories, "
              f"{args.rounds} rounds: off {best[False]:.2f} s / on {best[True]:.2f} s best "
              f"({100 * (best[True] - best[False]) / best[False]:+.1f} %), median "
              f"{med[False]:.2f} / {med[True]:.2f} s "
              f"({100 * (med[True] - med[False]) / med[False]:+.1f} %), median of the rounds' "
              f"ratios {100 * (paired - 1):+.1f} %; CPU median {cpu[False]:.1f} / "
              f"{cpu[True]:.1f} s ({100 * (cpu[True] - cpu[False]) / cpu[False]:+.1f} %)",
              flush=True)


if __name__ == "__main__":
    main()
