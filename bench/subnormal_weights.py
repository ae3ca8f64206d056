"""What subnormal weights cost, and what flushing them buys: one Fashion-MNIST trial of the
shipped spec whose first-layer weights shrink into the subnormal range after its learning-rate
step (trial 1 of `bench/anytime.py`'s 20-minute shipped sweep, seed 0: Adam at lr 0.079, coupled
L2 6.3e-5, 499 hidden units; it took 170 s for 7 epochs in the sweep, 3 s an epoch before the
step), trained with the parameters' flush every P steps and without it (the baseline), in one
run; and a trial without subnormals (momentum) for the flush's own cost.

    python bench/subnormal_weights.py [--every 16 4 1] [--epochs 7]

Prints, per run, the CPU seconds of each epoch, the total and its ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hpsearch.model.estimator import MLPClassifier
from hpsearch.nn import optimizers
from hpsearch.spec import datasets

SUBNORMAL = {"optimizer": "adam", "learning_rate": 0.0788, "schedule": "step", "step_size": 5,
             "gamma": 0.4231, "hidden_sizes": (499,), "l2": 6.27e-5, "dropout": 0.2181}
NORMAL = {"optimizer": "momentum", "learning_rate": 0.0853, "momentum": 0.8179,
          "schedule": "cosine", "hidden_sizes": (564, 128), "dropout": 0.0603}


def run(params: dict, every: int, epochs: int, splits: datasets.Splits) -> list[float]:
    optimizers.PARAM_FLUSH_EVERY = every
    times: list[float] = []
    last = [time.process_time()]

    def clock(_record: dict) -> None:
        now = time.process_time()
        times.append(now - last[0])
        last[0] = now

    MLPClassifier(**params, max_epochs=epochs, batch_size=128, ema_decay=0.999,
                  random_state=0, preprocessing="scale").fit(
        *splits.train, eval_sets={"val": splits.val}, callbacks=[clock])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, nargs="+", default=[16, 4, 1])
    ap.add_argument("--epochs", type=int, default=7)
    args = ap.parse_args()
    splits = datasets.split(datasets.load("fashion-mnist"), val_fraction=0.2, seed=0)
    off = 10**12
    for label, params in (("subnormal-prone (Adam, L2)", SUBNORMAL), ("normal (momentum)", NORMAL)):
        base = run(params, off, args.epochs, splits)
        print(f"{label}: no parameter flush (baseline): {sum(base):.1f} CPU s "
              f"({', '.join(f'{t:.1f}' for t in base)})", flush=True)
        for every in args.every:
            t = run(params, every, args.epochs, splits)
            print(f"{label}: flush every {every} steps: {sum(t):.1f} CPU s "
                  f"({', '.join(f'{x:.1f}' for x in t)}); ratio to the baseline "
                  f"{sum(t) / sum(base):.3f}", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
