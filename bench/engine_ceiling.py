"""Where one model's test accuracy stops: the 20-minute sweep's winning configuration on
Fashion-MNIST (trial 25 of `bench/anytime.py`'s shipped sweep, seed 1: Adam at lr 7.3e-4,
cosine over 40 epochs, 568-330 hidden units, dropout 0.224, weight average 0.999), trained as
the sweep trains it (the baseline) and with one change each:

- ``refit``: on train + validation (60,000 images instead of 48,000), the same 40 epochs: what
  refitting the chosen model on every labelled image would buy;
- ``epochs60``: 60 epochs (the cosine schedule stretched);
- ``wide``: 1024-512 hidden units and dropout 0.3;
- ``indrop10``, ``indrop20``: input dropout 0.1 or 0.2 (each pixel zeroed with that
  probability in every training batch, the survivors scaled up; Srivastava et al. 2014's MNIST
  MLPs dropped 20 % of the inputs).

    python bench/engine_ceiling.py [--seeds 0 1] [--variants baseline refit epochs60 wide]

Every model is scored at its last epoch (the cosine schedule ends there; a refit model has no
validation split to pick an epoch with), so the variants compare like with like. The test split
is read to measure, never to choose. Prints, per variant and model seed, the CPU seconds, the
validation and test accuracy, and the mean over the seeds as a difference to the baseline's.
Two models train at once (one BLAS thread each), as the sweep's two workers do.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hpsearch.model.estimator import MLPClassifier  # noqa: E402
from hpsearch.spec.config import load_spec  # noqa: E402
from hpsearch.spec.datasets import load_splits  # noqa: E402

WINNER = {"optimizer": "adam", "learning_rate": 7.2928e-4, "schedule": "cosine",
          "hidden_sizes": (568, 330), "dropout": 0.22400, "ema_decay": 0.999,
          "batch_size": 128, "max_epochs": 40, "preprocessing": "scale"}
VARIANTS = {"baseline": {}, "refit": {}, "epochs60": {"max_epochs": 60},
            "wide": {"hidden_sizes": (1024, 512), "dropout": 0.3},
            "indrop10": {"input_dropout": 0.1}, "indrop20": {"input_dropout": 0.2}}


def run(variant: str, seed: int) -> dict[str, float]:
    # the shipped spec's split, as the sweep that chose this configuration had it
    splits = load_splits(load_spec("sweeps/fashion-mnist.yaml").data)
    (x, y), val, test = splits.train, splits.val, splits.test
    if variant == "refit":
        x, y = np.concatenate([x, val[0]]), np.concatenate([y, val[1]])
    started = time.process_time()
    model = MLPClassifier(**{**WINNER, **VARIANTS[variant]}, restore_best_weights=False,
                          random_state=seed).fit(x, y)
    return {"cpu": time.process_time() - started, "val": model.score(*val),
            "test": model.score(*test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = ap.parse_args()
    variants = ["baseline", *[v for v in args.variants if v != "baseline"]]
    jobs = [(v, s) for v in variants for s in args.seeds]
    with ProcessPoolExecutor(2) as pool:
        futures = {job: pool.submit(run, *job) for job in jobs}
        results = {job: f.result() for job, f in futures.items()}
    base = {k: np.mean([results["baseline", s][k] for s in args.seeds])
            for k in ("cpu", "test")}
    for v in variants:
        for s in args.seeds:
            r = results[v, s]
            val = "train+val" if v == "refit" else f"{r['val']:.4f}"
            print(f"{v} seed {s}: {r['cpu']:.0f} CPU s, validation {val}, test {r['test']:.4f}")
        cpu = np.mean([results[v, s]["cpu"] for s in args.seeds])
        test = np.mean([results[v, s]["test"] for s in args.seeds])
        print(f"{v}: mean test {test:.4f} ({test - base['test']:+.4f} against the baseline), "
              f"CPU {cpu / base['cpu']:.2f}x the baseline's", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
