"""What the optimizer's update costs inside a training pass: the same 784-256-10 pass with each
optimizer, alternating, in one run; plain SGD (one pass over the parameters) is the baseline.

    python bench/optimizer_cost.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hpsearch import MLPClassifier
from hpsearch.nn import OPTIMIZERS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((48_000, 784), dtype=np.float32)  # Fashion-MNIST's shape; content is moot
    y = rng.integers(0, 10, 48_000)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in sorted(OPTIMIZERS):
            times: list[float] = []
            last = [0.0]

            def clock(_record: dict, times=times, last=last) -> None:
                now = time.perf_counter()
                times.append(now - last[0])
                last[0] = now

            m = MLPClassifier(hidden_sizes=(256,), optimizer=name, max_epochs=4,
                              train_eval_size=1, preprocessing="none", random_state=0)
            last[0] = time.perf_counter()
            m.fit(x, y, callbacks=[clock])
            best[name] = min(best.get(name, np.inf), *times[1:])
    for name, t in sorted(best.items(), key=lambda kv: kv[1]):
        print(f"{name:<9} {t:.3f} s/epoch  {t / best['sgd']:.2f}x sgd")


if __name__ == "__main__":
    main()
