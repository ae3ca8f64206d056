"""The user's alternative to hpsearch: a short Optuna + scikit-learn script, written as a user
would write it. TPE over MLPClassifier's learning_rate_init, hidden_layer_sizes, alpha, solver
(sgd / adam) and learning_rate schedule, early_stopping=True, each trial fitted to the end, on
Fashion-MNIST; the objective is accuracy on the same validation split hpsearch uses.

Every trial records when it finished, its validation and test accuracy (test only to report the
best trial at the end, never to choose). Used by bench/sweep_efficiency.py; on its own:

    python bench/peer_sweep.py --budget 600 --out peer.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import optuna
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from hpsearch.spec import datasets


def load(seed: int = 0) -> datasets.Splits:
    """Fashion-MNIST, official test split, 20 % of the training images for validation: the
    split of sweeps/fashion-mnist.yaml."""
    return datasets.split(datasets.load("fashion-mnist"), val_fraction=0.2, seed=seed)


def run(budget: float, seed: int = 0, max_iter: int = 200) -> dict:
    sp = load()
    X, y = sp.train
    Xv, yv = sp.val
    Xt, yt = sp.test
    X, Xv, Xt = (a.astype(np.float32) / 255.0 for a in (X, Xv, Xt))  # as a user would scale
    started = time.perf_counter()
    trials: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        solver = trial.suggest_categorical("solver", ["sgd", "adam"])
        n_layers = trial.suggest_int("n_layers", 1, 2)
        sizes = tuple(trial.suggest_int(f"units_{i}", 32, 512, log=True) for i in range(n_layers))
        clf = MLPClassifier(
            hidden_layer_sizes=sizes, solver=solver,
            learning_rate_init=trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True),
            alpha=trial.suggest_float("alpha", 1e-6, 1e-2, log=True),
            learning_rate=trial.suggest_categorical("learning_rate",
                                                    ["constant", "invscaling", "adaptive"]),
            early_stopping=True, max_iter=max_iter, random_state=seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        val = float(clf.score(Xv, yv))
        trials.append({"number": trial.number, "finished_s": time.perf_counter() - started,
                       "fit_s": time.perf_counter() - t0, "epochs": int(clf.n_iter_),
                       "val_accuracy": val, "test_accuracy": float(clf.score(Xt, yt)),
                       "params": dict(trial.params)})
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    # Like hpsearch's timeout: no trial starts after the budget; the one running finishes.
    study.optimize(objective, timeout=budget)
    elapsed = time.perf_counter() - started
    best = max(trials, key=lambda t: t["val_accuracy"])
    return {"engine": "optuna+sklearn", "budget_s": budget, "elapsed_s": elapsed,
            "trials": trials, "n_trials": len(trials),
            "trials_per_hour": len(trials) / elapsed * 3600,
            "epochs_total": sum(t["epochs"] for t in trials),
            "best_val_accuracy": best["val_accuracy"], "best_trial": best["number"],
            "best_test_accuracy": best["test_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=600.0, help="seconds (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args()
    result = run(args.budget, args.seed)
    print(f"{result['n_trials']} trials in {result['elapsed_s']:.0f} s "
          f"({result['trials_per_hour']:.0f}/h); best val {result['best_val_accuracy']:.4f} "
          f"(trial {result['best_trial']}), its test accuracy {result['best_test_accuracy']:.4f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
