"""Where tracking's time goes: one sweep in this process (one worker, so every MLflow call runs in
this process's background writer), each MLflow client call and each file the writer makes timed
in CPU milliseconds of the thread that ran it (what it takes from training on a busy machine)
and wall milliseconds, per trial; then the fixed costs a sweep pays once (importing MLflow,
creating the store, the experiment and the parent run), each in a fresh process.

    python bench/tracking_profile.py [--spec bench/tracking_sweep.yaml] [--trials 8]
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMES: dict[str, list[tuple[float, float]]] = defaultdict(list)
_lock = threading.Lock()


def timed(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            with _lock:
                TIMES[label].append((time.thread_time() - c0, time.perf_counter() - w0))
    setattr(owner, name, wrapper)


def instrument() -> None:
    from mlflow.tracking import MlflowClient

    from hpsearch.model import pyfunc
    from hpsearch.search import callbacks
    from hpsearch.tracking import trial_log
    from hpsearch.tracking.tracker import Tracker

    for name in ("create_run", "log_batch", "log_inputs", "set_terminated", "log_artifact",
                 "log_artifacts", "create_logged_model", "log_model_artifacts",
                 "finalize_logged_model", "log_outputs", "search_runs", "delete_logged_model",
                 "search_logged_models", "get_experiment_by_name", "set_tag", "update_run"):
        if hasattr(MlflowClient, name):
            timed(MlflowClient, name, f"client.{name}")
    for name in ("start_trial", "log_metrics", "finish_trial", "log_trial_model",
                 "delete_trial_models", "log_best", "set_tags", "trial_run_id"):
        timed(Tracker, name, f"Tracker.{name}")
    timed(trial_log, "learning_curves", "file: learning_curve.png")
    timed(trial_log, "write_history_csv", "file: history.csv")
    timed(pyfunc, "save_pyfunc", "file: the logged model's directory (save_pyfunc)")
    timed(trial_log.AsyncTrialLog, "_send", "main thread: queueing a message")
    timed(callbacks.EpochLogger, "on_epoch_end", "main thread: EpochLogger per epoch")


def sweep(spec: Path, trials: int, tracking: bool) -> float:
    from hpsearch.search.sweep import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        old = os.getcwd()
        os.chdir(tmp)
        try:
            uri = "sqlite:///mlruns/mlflow.db" if tracking else "none"
            t0 = time.perf_counter()
            run_sweep(spec, n_trials=trials, workers=1, tracking_uri=uri, echo=lambda s: None)
            return time.perf_counter() - t0
        finally:
            os.chdir(old)


def fresh(code: str) -> float:
    """Seconds of ``code`` in a fresh interpreter (timed inside it)."""
    out = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter()\n" + code
                          + "\nprint(time.perf_counter() - t)"], capture_output=True, text=True,
                         check=True, cwd=tempfile.mkdtemp())
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "bench" / "tracking_sweep.yaml")
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    spec = args.spec.resolve()
    off = sweep(spec, args.trials, False)  # warms the imports too
    off = min(off, sweep(spec, args.trials, False))
    instrument()
    on = sweep(spec, args.trials, True)
    n = args.trials
    print(f"{spec.name}, {n} trials, 1 worker in this process: untracked {off:.2f} s, "
          f"tracked {on:.2f} s ({100 * (on - off) / off:+.1f} %), store created in the run")
    print(f"{'call':<55} {'calls':>6} {'CPU ms/trial':>13} {'wall ms/trial':>14}")
    for label, rows in sorted(TIMES.items(), key=lambda kv: -sum(c for c, _ in kv[1])):
        cpu, wall = sum(c for c, _ in rows), sum(w for _, w in rows)
        print(f"{label:<55} {len(rows):>6} {1000 * cpu / n:>13.1f} {1000 * wall / n:>14.1f}")
    print("fixed costs, each in a fresh interpreter (seconds):")
    print(f"  import hpsearch: {fresh('import hpsearch'):.2f}; import mlflow: "
          f"{fresh('import mlflow'):.2f}")
    print("  the store created and an experiment and parent run: " + "{:.2f}".format(fresh(
        "from hpsearch.tracking.tracker import Tracker\n"
        "t0 = time.perf_counter(); tr = Tracker('sqlite:///mlruns/mlflow.db')\n"
        "e = tr.experiment('x'); tr.create_parent(e, 'x', 'x.yaml', 'name: x', {}, 'c')")))


if __name__ == "__main__":
    main()
