"""Search spaces against a real (in-memory) Optuna study: conditional entries, fixed values, grids,
hidden_sizes from the layer helpers, and the one-line errors of bad spaces (those that
test_config.py does not already list)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_digits

from hpsearch import MLPClassifier, SpecError
from hpsearch.spec.config import load_spec, parse_spec
from hpsearch.spec.schema import SweepSpec
from hpsearch.spec.space import grid, model_params, suggest

ROOT = Path(__file__).resolve().parents[1]
FILE = "sweeps/space.yaml"  # the file name every SpecError must start with


def spec_of(space: Any, **top: Any) -> SweepSpec:
    return parse_spec({"name": "t", "space": space, **top}, FILE)


def run_study(spec: SweepSpec, sampler: optuna.samplers.BaseSampler, n_trials: int,
              ) -> list[tuple[dict[str, Any], optuna.trial.FrozenTrial]]:
    """(what suggest returned, the trial as Optuna stored it) for every trial of a fresh study."""
    chosen: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        chosen.append(suggest(trial, spec.space))
        return 0.0

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    assert len(chosen) == len(study.trials)
    return list(zip(chosen, study.trials, strict=True))


# -- conditional entries -------------------------------------------------------------------------

CONDITIONAL = {
    "optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "adam"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "momentum"}},
    "schedule": {"type": "categorical", "choices": ["constant", "step", "exponential"]},
    "gamma": {"type": "float", "low": 0.3, "high": 0.9,
              "when": {"schedule": ["step", "exponential"]}},  # any of several values
    "n_layers": {"type": "int", "low": 1, "high": 2},
    "hidden_size": {"type": "int", "low": 16, "high": 256, "log": True},
    "hidden_size_2": {"type": "int", "low": 16, "high": 256, "log": True,
                      "when": {"n_layers": 2}},
    # A switch that is itself conditional: l2 needs sgd *and* use_l2.
    "use_l2": {"type": "categorical", "choices": [True, False], "when": {"optimizer": "sgd"}},
    "l2": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True, "when": {"use_l2": True}},
    # Two conditions, both must hold.
    "nesterov": {"type": "categorical", "choices": [True, False],
                 "when": {"optimizer": "momentum", "n_layers": 2}},
}


@pytest.mark.parametrize("sampler", [
    lambda: optuna.samplers.RandomSampler(seed=0),
    lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=10, multivariate=True),
], ids=["random", "tpe-multivariate"])
def test_conditional_entries_exist_exactly_when_their_conditions_hold(sampler):
    spec = spec_of(CONDITIONAL)
    seen: dict[str, set[bool]] = {}
    for chosen, trial in run_study(spec, sampler(), 60):
        expected = {
            "momentum": chosen["optimizer"] == "momentum",
            "gamma": chosen["schedule"] in ("step", "exponential"),
            "hidden_size_2": chosen["n_layers"] == 2,
            "use_l2": chosen["optimizer"] == "sgd",
            "l2": chosen["optimizer"] == "sgd" and chosen["use_l2"] is True,
            "nesterov": chosen["optimizer"] == "momentum" and chosen["n_layers"] == 2,
        }
        for name, present in expected.items():
            assert (name in chosen) == present, (name, chosen)
            seen.setdefault(name, set()).add(present)
        # Optuna records exactly the sampled entries, with the values suggest returned.
        assert trial.params == chosen
        assert isinstance(chosen["n_layers"], int) and chosen["n_layers"] in (1, 2)
        assert isinstance(chosen["hidden_size"], int) and 16 <= chosen["hidden_size"] <= 256
        assert trial.distributions["hidden_size"].log
        if "momentum" in chosen:
            assert 0.5 <= chosen["momentum"] <= 0.99
    # The run exercised both sides of every condition.
    assert all(sides == {True, False} for sides in seen.values()), seen


# -- fixed values --------------------------------------------------------------------------------

def test_bare_values_are_fixed_entries():
    bare = spec_of({"dropout": 0.25, "optimizer": "adam", "nesterov": False,
                    "hidden_sizes": [64, 32]})
    explicit = spec_of({"dropout": {"type": "fixed", "value": 0.25},
                        "optimizer": {"type": "fixed", "value": "adam"},
                        "nesterov": {"type": "fixed", "value": False},
                        "hidden_sizes": {"type": "fixed", "value": [64, 32]}})
    assert bare.space == explicit.space
    assert [p.type for p in bare.space] == ["fixed"] * 4
    assert bare.space[3].value == (64, 32)  # lists are stored as tuples (the spec is frozen)


def test_fixed_values_reach_the_model_but_are_not_sampled():
    spec = spec_of({
        "optimizer": "momentum",  # bare shorthand
        "momentum": {"type": "fixed", "value": 0.8, "when": {"optimizer": "momentum"}},
        "beta1": {"type": "fixed", "value": 0.5, "when": {"optimizer": "adam"}},  # inactive
        "l2": {"type": "fixed", "value": 1.0e-4},
        "hidden_sizes": [64, 32],
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    })
    for chosen, trial in run_study(spec, optuna.samplers.RandomSampler(seed=0), 5):
        assert set(trial.params) == {"learning_rate"}  # only sampled entries go to Optuna
        assert chosen == {"optimizer": "momentum", "momentum": 0.8, "l2": 1.0e-4,
                          "hidden_sizes": (64, 32), "learning_rate": trial.params["learning_rate"]}
        params = model_params(chosen, spec)
        assert params["hidden_sizes"] == (64, 32) and params["momentum"] == 0.8
        assert "beta1" not in params


# -- grids ---------------------------------------------------------------------------------------

GRID_SPACE = {
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "n_layers": {"type": "int", "low": 1, "high": 3},  # step 1 by default
    "hidden_size": {"type": "int", "low": 16, "high": 48, "step": 16},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
    "l2": 1.0e-3,  # fixed: not a grid axis, but in every trial
}


def test_grid_lists_every_value_of_every_sampled_entry():
    g = grid(spec_of(GRID_SPACE, sampler="grid").space)
    assert g == {"optimizer": ["sgd", "adam"], "n_layers": [1, 2, 3],
                 "hidden_size": [16, 32, 48], "dropout": [0.0, 0.25, 0.5]}
    assert all(type(v) is int for v in g["n_layers"] + g["hidden_size"])


def test_grid_sampler_visits_every_combination_exactly_once():
    spec = spec_of(GRID_SPACE, sampler="grid")
    g = grid(spec.space)
    combos = list(itertools.product(*g.values()))
    # Ask for more trials than there are points: the grid sampler stops the study itself.
    trials = run_study(spec, optuna.samplers.GridSampler(g, seed=0), 3 * len(combos))
    assert len(trials) == len(combos) == 54
    visited = [tuple(chosen[name] for name in g) for chosen, _ in trials]
    assert sorted(visited, key=repr) == sorted(combos, key=repr)  # each once, none missing
    assert all(chosen["l2"] == 1.0e-3 for chosen, _ in trials)


def test_grid_points_stay_within_the_range():
    g = grid(spec_of({"dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.3},
                      "n_layers": {"type": "int", "low": 1, "high": 6, "step": 2}},
                     sampler="grid").space)
    assert max(g["dropout"]) <= 0.5 and max(g["n_layers"]) <= 6


# -- model parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("chosen,hidden_sizes", [
    ({"n_layers": 1, "hidden_size": 64}, (64,)),
    ({"n_layers": 3, "hidden_size": 64, "hidden_size_2": 32}, (64, 32, 64)),  # layer 3: first
    ({"n_layers": 2, "hidden_size": 64, "hidden_size_2": 32, "hidden_size_3": 8}, (64, 32)),
    ({"n_layers": 1, "hidden_size": 64, "hidden_size_2": 32}, (64,)),  # unused without a when
    ({"hidden_size": 48}, (48,)),  # one layer unless n_layers says otherwise
    ({"n_layers": 2}, (100, 100)),  # the estimator's default width
    ({"hidden_sizes": (8, 4), "n_layers": 3, "hidden_size": 64}, (8, 4)),  # an explicit list wins
    ({"learning_rate": 0.01}, None),  # no layer entries: the estimator's default
])
def test_hidden_sizes_from_the_layer_helpers(chosen, hidden_sizes):
    params = model_params(chosen, spec_of({"l2": 0.0}))
    assert params.get("hidden_sizes") == hidden_sizes
    if hidden_sizes is not None:
        assert all(type(h) is int for h in params["hidden_sizes"])
    # The helpers build hidden_sizes; they are not estimator parameters themselves.
    assert not {"n_layers", "hidden_size", "hidden_size_2", "hidden_size_3"} & set(params)


def test_model_params_take_the_training_settings_and_the_space_wins():
    spec = spec_of({"batch_size": {"type": "categorical", "choices": [16, 64]}},
                   training={"max_epochs": 7, "batch_size": 32, "early_stopping_patience": None,
                             "early_stopping_metric": "val_loss", "train_eval_size": 500,
                             "seed": 3},
                   data={"preprocessing": "scale"})
    chosen = {"batch_size": 64, "learning_rate": 0.01, "use_l2": True}
    assert model_params(chosen, spec) == {
        "max_epochs": 7, "batch_size": 64, "early_stopping_patience": None, "monitor": "val_loss",
        "train_eval_size": 500, "random_state": 3, "preprocessing": "scale",
        "learning_rate": 0.01}  # use_l2 (a switch) does not reach the estimator
    assert "preprocessing" not in model_params(chosen, spec_of({"l2": 0.0}))  # the data's default


def test_every_trial_of_the_quickstart_space_builds_and_fits_a_model():
    """The real path of a trial: study -> suggest -> model_params -> MLPClassifier.fit."""
    spec = load_spec(ROOT / "sweeps" / "quickstart.yaml")
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, max_epochs=1))
    x, y = load_digits(return_X_y=True)
    train, val = (x[:300], y[:300]), (x[300:500], y[300:500])

    def objective(trial: optuna.Trial) -> float:
        chosen = suggest(trial, spec.space)
        params = model_params(chosen, spec)
        model = MLPClassifier(**params).fit(*train, eval_sets={"val": val})
        got = model.get_params()
        assert {k: got[k] for k in params} == params  # nothing dropped or renamed
        return float(model.score(*val))

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=8)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(np.isfinite(t.value) for t in study.trials)


# -- bad spaces ----------------------------------------------------------------------------------

BAD_SPACES = [
    ({1: 0.5}, "space has a non-text parameter name 1"),
    (["learning_rate"], "space must be a mapping, not list"),
    ({"dropout": {"low": 0.0, "high": 0.5}}, "space.dropout.type is required"),
    ({"dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": -0.1}},
     "space.dropout.step must be > 0, not -0.1"),
    ({"learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True, "step": 0.01}},
     "space.learning_rate.step cannot be combined with log: true"),
    ({"learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": "yes"}},
     "space.learning_rate.log must be true or false, not 'yes'"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1}},
     "space.learning_rate.low must be > 0"),
    ({"l2": {"type": "float", "low": -1e-3, "high": 0.1}}, "space.l2.low must be >= 0"),
    ({"hidden_size": {"type": "int", "low": 0, "high": 64}}, "space.hidden_size.low must be >= 1"),
    ({"n_layers": {"type": "int", "low": 1.5, "high": 3}},
     "space.n_layers.low must be a whole number, not 1.5"),
    ({"n_layers": {"type": "int", "low": 1, "high": 3, "step": 0.5}},
     "space.n_layers.step must be a whole number, not 0.5"),
    ({"optimizer": {"type": "categorical", "choices": "adam"}},
     "space.optimizer.choices must be a list, not 'adam'"),
    ({"optimizer": {"type": "categorical", "choices": ["adam", "sgd", "adam"]}},
     "space.optimizer.choices has duplicates: ['adam', 'sgd', 'adam']"),
    ({"hidden_sizes": {"type": "categorical", "choices": [[64], [64, 32]]}},
     "space.hidden_sizes.choices must be numbers, strings, booleans or null, not [64]"),
    ({"l2": {"type": "fixed"}}, "space.l2.value is required"),
    ({"l2": None}, "space.l2.value must be a string or a whole number or a number or true or "
                   "false or a list, not None"),
    ({"l2": {"type": "fixed", "value": 0.0, "low": 0}},
     "space.l2 has unknown key 'low' (allowed: type, value, when)"),
    ({"optimizer": "adagrad"},  # a bare value is checked like a choice
     "space.optimizer.value has unknown optimizer 'adagrad' (choose from adam, adamw, momentum, "
     "rmsprop, sgd)"),
    ({"hidden_sizes": [64, 0]},
     "space.hidden_sizes.value must be a list of positive whole numbers, not [64, 0]"),
    ({"optimizer": {"type": "categorical", "choices": ["sgd", "momentum"]},
      "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": []}}},
     "space.momentum.when lists no values for 'optimizer'"),
    ({"optimizer": {"type": "categorical", "choices": ["sgd", "momentum"]},
      "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": "optimizer"}},
     "space.momentum.when must be a mapping, not 'optimizer'"),
    ({"hidden_size_2": {"type": "int", "low": 16, "high": 64, "when": {"n_layers": 2}},
      "n_layers": {"type": "int", "low": 1, "high": 2}},  # defined, but below
     "space.hidden_size_2.when refers to 'n_layers', which must be defined above "
     "'hidden_size_2' in the space"),
]


@pytest.mark.parametrize("space,message", BAD_SPACES, ids=[m[:50] for _, m in BAD_SPACES])
def test_bad_spaces_name_the_file_and_the_key(space, message):
    with pytest.raises(SpecError) as info:
        spec_of(space)
    assert str(info.value) == f"{FILE}: {message}"


def test_a_switch_must_be_used_by_a_when():
    """A name that is no model parameter is allowed only as a switch that a later `when` uses."""
    switch = {"type": "categorical", "choices": [True, False]}
    with pytest.raises(SpecError) as info:
        spec_of({"use_l2": switch})
    assert str(info.value).startswith(
        f"{FILE}: space.use_l2 is not a model parameter (and no `when` uses it as a switch); "
        "model parameters: ")
    assert "\n" not in str(info.value)
    spec = spec_of({"use_l2": switch, "l2": {"type": "fixed", "value": 1e-4,
                                             "when": {"use_l2": True}}})
    assert [p.name for p in spec.space] == ["use_l2", "l2"]
    with pytest.raises(SpecError, match=r"space\.hidden_size_10 is not a model parameter"):
        spec_of({"hidden_size_10": {"type": "int", "low": 1, "high": 5}})  # helpers stop at 9
