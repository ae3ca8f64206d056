"""The fixed cost of a trial outside training: before, every trial converted the raw Fashion-MNIST
splits (uint8) to float32 and scaled them (train, validation, test); now a worker transforms them
once and every trial fits on the prepared arrays (search.trial.prepared + set_input_transform).

Same model (784-256-10, Adam, 1 epoch: training pass + the 3 evaluations) both ways, alternating
for ``--rounds`` rounds, fastest of each. The difference is what each trial no longer pays.

    python bench/trial_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hpsearch import MLPClassifier
from hpsearch.model.preprocessing import apply_input_transform, input_transform
from hpsearch.spec import datasets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sp = datasets.split(datasets.load("fashion-mnist"), val_fraction=0.2, seed=0)
    (X, y), (Xv, yv), (Xt, yt) = sp.train, sp.val, sp.test
    params = dict(hidden_sizes=(256,), optimizer="adam", max_epochs=1, random_state=0)
    t0 = time.perf_counter()
    offset, scale = input_transform(X.astype(np.float32), "scale", np.dtype(np.float32))
    Xp, Xvp, Xtp = (apply_input_transform(a, offset, scale) for a in (X, Xv, Xt))
    once = time.perf_counter() - t0
    best = {"per trial (before)": np.inf, "prepared once (now)": np.inf}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        MLPClassifier(preprocessing="scale", **params).fit(
            X, y, eval_sets={"val": (Xv, yv), "test": (Xt, yt)})
        best["per trial (before)"] = min(best["per trial (before)"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        MLPClassifier(preprocessing="none", **params).fit(
            Xp, y, eval_sets={"val": (Xvp, yv), "test": (Xtp, yt)}).set_input_transform(
            "scale", offset, scale)
        best["prepared once (now)"] = min(best["prepared once (now)"], time.perf_counter() - t0)
    before, now = best["per trial (before)"], best["prepared once (now)"]
    print(f"1-epoch trial, data converted per trial: {before:.3f} s; on data prepared once: "
          f"{now:.3f} s; saved {before - now:.3f} s per trial ({(before - now) / before:.0%} "
          f"of a 1-epoch trial); preparing once costs {once:.3f} s per worker")


if __name__ == "__main__":
    main()
