"""Search space -> ``trial.suggest_*`` calls, and sampled values -> MLPClassifier parameters.

Entries are suggested in the order the spec lists them; an entry with ``when`` is suggested only
if every parameter it names was suggested with one of the listed values (so ``momentum`` exists
only in trials whose optimizer uses it, ``hidden_size_2`` only when there are two layers).
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from .config import ESTIMATOR_PARAMS
from .schema import ParamSpec, SweepSpec

DEFAULT_SPACE_DOC = """\
Default space (sweeps/quickstart.yaml): learning_rate (log), optimizer {sgd, momentum, rmsprop,
adam} with momentum only for momentum, schedule {constant, step, exponential, cosine} with
step_size/gamma only where they apply, n_layers 1-2, hidden_size (log int) and hidden_size_2 only
for two layers, L2 (log) behind an on/off switch, dropout 0-0.5."""


def active(p: ParamSpec, chosen: dict[str, Any]) -> bool:
    return all(other in chosen and chosen[other] in values for other, values in p.when)


def suggest(trial: optuna.Trial, space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Sample every active entry of ``space``; returns name -> value (fixed ones included)."""
    chosen: dict[str, Any] = {}
    for p in space:
        if not active(p, chosen):
            continue
        if p.type == "fixed":
            chosen[p.name] = p.value
        elif p.type == "categorical":
            chosen[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            chosen[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                               step=int(p.step or 1))
        else:
            assert p.low is not None and p.high is not None
            chosen[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log,
                                                 step=p.step)
    return chosen


def chosen_of(params: dict[str, Any], space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """What ``suggest`` returned for a trial whose sampled values are ``params`` (an Optuna
    trial's ``params``): those values plus the fixed entries active with them."""
    chosen: dict[str, Any] = {}
    for p in space:
        if active(p, chosen):
            if p.type == "fixed":
                chosen[p.name] = p.value
            elif p.name in params:
                chosen[p.name] = params[p.name]
    return chosen


def grid(space: tuple[ParamSpec, ...]) -> dict[str, list[Any]]:
    """The grid sampler's search space: every value of every non-fixed entry."""
    out: dict[str, list[Any]] = {}
    for p in space:
        if p.type == "categorical":
            out[p.name] = list(p.choices)
        elif p.type in ("int", "float"):
            assert p.low is not None and p.high is not None
            step = p.step or 1
            # the points low, low + step, ... that do not pass high (1e-9: 0.3 / 0.1 is 2.999...)
            n = int(math.floor((p.high - p.low) / step + 1e-9)) + 1
            values = [p.low + i * step for i in range(n)]
            out[p.name] = [int(v) for v in values] if p.type == "int" else values
    return out


def model_params(chosen: dict[str, Any], spec: SweepSpec) -> dict[str, Any]:
    """MLPClassifier keyword arguments for one trial: the training settings of the spec, the
    sampled model parameters, and hidden_sizes built from n_layers/hidden_size[_k]."""
    t = spec.training
    params: dict[str, Any] = {
        "max_epochs": t.max_epochs,
        "batch_size": t.batch_size,
        "early_stopping_patience": t.early_stopping_patience,
        "monitor": t.early_stopping_metric,
        "train_eval_size": t.train_eval_size,
        "random_state": t.seed,
    }
    if spec.data.preprocessing is not None:
        params["preprocessing"] = spec.data.preprocessing
    params.update({k: v for k, v in chosen.items() if k in ESTIMATOR_PARAMS})
    sizes = hidden_sizes(chosen)
    if sizes is not None:
        params["hidden_sizes"] = sizes
    return params


def hidden_sizes(chosen: dict[str, Any]) -> tuple[int, ...] | None:
    """The hidden_sizes of sampled values: ``hidden_sizes`` itself, or ``n_layers`` layers of
    ``hidden_size`` units (100 if not given), layer k having ``hidden_size_<k>`` if given; None
    if ``chosen`` sets none of them (the estimator's default then)."""
    if "hidden_sizes" in chosen:
        return tuple(int(v) for v in chosen["hidden_sizes"])
    if "hidden_size" not in chosen and "n_layers" not in chosen:
        return None
    n_layers = int(chosen.get("n_layers", 1))
    first = int(chosen.get("hidden_size", 100))
    return tuple(int(chosen.get(f"hidden_size_{k}", first)) if k > 1 else first
                 for k in range(1, n_layers + 1))
