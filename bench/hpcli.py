"""`hpsearch` run as a user runs it, in a working directory of its own (its storage, tracking
store and checkpoints under DIR/mlruns): the benchmarks' one way to call the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def hpsearch(where: Path, *args: str) -> str:
    """Run ``hpsearch ARGS`` in ``where``; its stdout, or SystemExit with its output's tail."""
    env = {**os.environ, "HPSEARCH_STORAGE": str(where / "mlruns" / "optuna.journal"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'mlruns' / 'mlflow.db'}"}
    env.pop("HPSEARCH_CHECKPOINTS", None)
    done = subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=where, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hpsearch {' '.join(args)}: exit {done.returncode}\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout
