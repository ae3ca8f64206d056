"""Where a trial's time goes: run a few Fashion-MNIST trials of a real sweep (tracking on) under
py-spy, then sort the samples of the main thread into matrix multiplies, element-wise work of
the optimizer and activations, minibatch gathers, evaluation, callbacks (tracking, storage) and
the rest. The tracking thread's samples are counted apart (it runs beside training).

    python bench/profile_trial.py [--trials 3] [--epochs 4]      # needs `pip install py-spy`

py-spy samples the in-process worker 50 times a second with native frames (BLAS shows as
*gemm*).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SPEC = """\
name: profile
data: {{dataset: fashion-mnist, val_fraction: 0.2, seed: 0, preprocessing: scale}}
training: {{max_epochs: {epochs}, batch_size: 128, early_stopping_patience: null, seed: 0}}
budget: {{n_trials: {trials}}}
sampler: {{name: random, seed: 0}}
pruner: {{name: median, n_startup_trials: 1, n_warmup_steps: 1}}
space:
  hidden_size: {{type: int, low: 128, high: 512, log: true}}
  optimizer: {{type: categorical, choices: [adam, momentum]}}
  learning_rate: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
  dropout: {{type: float, low: 0.0, high: 0.3}}
"""
# (category, substring of a frame "function (file:line)"), first match from the leaf upwards wins.
RULES = [
    ("matmul (BLAS sgemm)", "gemm"),
    ("matmul (BLAS sgemm)", "blas_thread"),
    ("optimizer update", "optimizers.py"),
    ("minibatch gather", "_gather"),
    ("evaluation (train/val/test metrics)", "evaluate"),
    ("forward/backward element-wise", "network.py"),
    ("forward/backward element-wise", "functional.py"),
    ("data: load, convert, scale", "spec/datasets.py"),
    ("data: load, convert, scale", "spec/idx.py"),
    ("data: load, convert, scale", "validate_data"),
    ("data: load, convert, scale", "input_transform"),
    ("data: load, convert, scale", "_transform"),
    ("data: load, convert, scale", "prepared"),
    ("plots (study plots at the end)", "matplotlib"),
    ("plots (study plots at the end)", "plots.py"),
    ("MLflow calls in the main thread", "mlflow"),
    ("MLflow calls in the main thread", "tracking/"),
    ("Optuna (sampler, pruner, journal storage)", "optuna/"),
    ("checkpoint save", "checkpoint.py"),
    ("diagnosis", "diagnostics.py"),
    ("callbacks (other)", "on_epoch_end"),
    ("training loop (other)", "training.py"),
    ("sweep bookkeeping (other)", "sweep.py"),
]


def categorise(stack: str) -> str:
    frames = stack.split(";")
    if "training.py" not in stack and "sweep.py" not in stack:
        return "start-up: imports"
    for frame in reversed(frames):
        for name, needle in RULES:
            if needle in frame:
                return name
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    raw = (args.out / "profile.txt").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "p.yaml").write_text(SPEC.format(trials=args.trials, epochs=args.epochs))
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        subprocess.run([spy, "record", "--rate", "50", "--format", "raw", "--threads",
                        "--native", "--output", str(raw), "--", sys.executable, "-m",
                        "hpsearch.cli", "sweep", "p.yaml", "--workers", "1"], cwd=tmp, env=env,
                       check=True,
                       stdout=subprocess.DEVNULL)
    main_thread: collections.Counter[str] = collections.Counter()
    other_threads: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread = stack.split(";", 1)[0]
        if "MainThread" in thread or "main" in thread.split()[0:1]:
            main_thread[categorise(stack)] += int(count)
        else:
            other_threads["tracking thread" if "tracking" in stack or "mlflow" in stack
                          else "other threads"] += int(count)
    total = sum(main_thread.values())
    trial_total = total - main_thread["start-up: imports"]
    print(f"main thread: {total} samples; of the trial path ({trial_total} samples):")
    for name, n in main_thread.most_common():
        if name.startswith("start-up"):
            continue
        print(f"  {name:<58} {n / trial_total:6.1%}")
    startup = main_thread["start-up: imports"]
    print(f"start-up (once per sweep): {startup / total:.1%} of the main thread")
    for name, n in other_threads.items():
        print(f"{name}: {n} samples ({n / total:.1%} of the main thread's count, in parallel)")
    print(f"raw stacks: {raw}")


if __name__ == "__main__":
    main()
