"""What MLflow tracking costs a sweep: the same sweep with tracking on (the embedded SQLite
store, every per-epoch metric, artifacts, parent run) and off (``--tracking-uri none``), same
seeds, alternating in one run. Prints the overhead as a share of the untracked wall time.

Default: bench/tracking_sweep.yaml (Fashion-MNIST, 8 trials of 6 epochs, no pruning). The
quickstart is the worst case (sub-second trials): ``--spec sweeps/quickstart.yaml --trials 20``.

    python bench/tracking_overhead.py [--spec bench/tracking_sweep.yaml] [--trials 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from hpsearch.search.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]


def one(spec: Path, trials: int, tracking: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            uri = "none" if tracking == "off" else "sqlite:///mlruns/mlflow.db"
            if tracking == "on":  # create the store first: a one-time cost, not per sweep
                from hpsearch.tracking.tracker import Tracker

                Tracker(uri).experiment("warm-up")
            t0 = time.perf_counter()
            result = run_sweep(spec, n_trials=trials, tracking_uri=uri, echo=lambda s: None)
            return time.perf_counter() - t0, result.ran
        finally:
            os.chdir(old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "bench" / "tracking_sweep.yaml")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"off": [], "on": []}
    one(args.spec.resolve(), 2, "on")  # warm imports and caches once
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            seconds, ran = one(args.spec.resolve(), args.trials, mode)
            assert ran == args.trials
            times[mode].append(seconds)
            print(f"tracking {mode:<3}: {seconds:6.2f} s for {ran} trials")
    off, on = min(times["off"]), min(times["on"])
    print(f"{args.spec.name}, {args.trials} trials: best of {args.rounds} rounds "
          f"off {off:.2f} s, on {on:.2f} s; tracking overhead {100 * (on - off) / off:+.1f} % "
          f"(target <= 5 %)")


if __name__ == "__main__":
    main()
