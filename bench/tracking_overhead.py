"""What MLflow tracking costs a sweep, as a user meets it: whole `hpsearch sweep` processes, each
in a fresh directory (imports, the store's creation and the workers' start-up included), with
tracking on (the embedded SQLite store: every per-epoch metric, the artifacts, the kept trials'
logged models, the parent run) and off (``--tracking-uri none``), alternating in one run. Prints
the overhead as a share of the untracked wall time, best and median of the rounds.

Default: the two sweeps of issue 35, bench/tracking_sweep.yaml (Fashion-MNIST, 8 trials of 6
epochs, no pruning, two workers) and the quickstart (digits, 20 trials, one worker).

    python bench/tracking_overhead.py [--spec bench/tracking_sweep.yaml:8 ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [f"{ROOT / 'bench' / 'tracking_sweep.yaml'}:8",
           f"{ROOT / 'sweeps' / 'quickstart.yaml'}:20"]


def one(spec: Path, trials: int, tracking: bool) -> float:
    """Wall seconds of one `hpsearch sweep` in a fresh directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "HPSEARCH_STORAGE")}
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as tmp:
        argv = [sys.executable, "-m", "hpsearch", "sweep", str(spec), "--trials", str(trials)]
        if not tracking:
            argv += ["--tracking-uri", "none"]
        t0 = time.perf_counter()
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        return seconds


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
        for _ in range(args.rounds):
            for tracking in (False, True):
                times[tracking].append(one(spec, trials, tracking))
                print(f"  {spec.name} tracking {'on ' if tracking else 'off'} "
                      f"{times[tracking][-1]:6.2f} s", flush=True)
        best = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{spec.name}, {trials} trials, whole processes in fresh directories, "
              f"{args.rounds} rounds: off {best[False]:.2f} s / on {best[True]:.2f} s best "
              f"({100 * (best[True] - best[False]) / best[False]:+.1f} %), median "
              f"{med[False]:.2f} / {med[True]:.2f} s "
              f"({100 * (med[True] - med[False]) / med[False]:+.1f} %)", flush=True)


if __name__ == "__main__":
    main()
