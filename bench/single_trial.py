"""One configuration trained on Fashion-MNIST outside any sweep, printing every epoch's
validation and test accuracy: what a single well-chosen trial reaches, as a yardstick for what
a sweep finds within its budget.

    python bench/single_trial.py '{"hidden_sizes": [1024], "optimizer": "adam",
        "learning_rate": 0.001, "schedule": "cosine", "dropout": 0.3, "max_epochs": 40}'
"""

from __future__ import annotations

import json
import sys
import time

from hpsearch import MLPClassifier
from hpsearch.spec import datasets


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    config = {"early_stopping_patience": None, "monitor": "val_accuracy",
              **json.loads(sys.argv[1])}
    sp = datasets.split(datasets.load("fashion-mnist"), val_fraction=0.2, seed=0)
    (xtr, ytr), (xv, yv), (xte, yte) = sp.train, sp.val, sp.test
    model = MLPClassifier(preprocessing="scale", random_state=0, **config)
    t0 = time.perf_counter()

    def show(r: dict) -> None:
        print(f"epoch {r['epoch']:3d}  {time.perf_counter() - t0:6.1f} s  lr "
              f"{r['learning_rate']:.2e}  train {r['train_accuracy']:.4f}  val "
              f"{r['val_accuracy']:.4f}  test {r['test_accuracy']:.4f}", flush=True)

    model.fit(xtr, ytr, eval_sets={"val": (xv, yv), "test": (xte, yte)}, callbacks=[show])
    last = model.history_[-1]
    best = model.history_[model.best_epoch_ - 1]
    print(f"best epoch by val accuracy: {model.best_epoch_} (val {best['val_accuracy']:.4f}, "
          f"test {best['test_accuracy']:.4f}); last epoch: val {last['val_accuracy']:.4f}, "
          f"test {last['test_accuracy']:.4f}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
