"""Sweep specs: the shipped ones load; every invalid case is one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hpsearch import SpecError
from hpsearch.cli import main
from hpsearch.spec.config import load_spec
from hpsearch.spec.space import hidden_sizes, model_params

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
name: t
data: {dataset: digits}
space:
  learning_rate: {type: float, low: 1.0e-4, high: 0.1, log: true}
"""


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_load(path):
    spec = load_spec(path)
    assert spec.name and spec.space


def test_workers_default_to_auto(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD + "budget: {workers: auto}\n")
    (tmp_path / "c.yaml").write_text(GOOD + "budget: {workers: 3}\n")
    assert load_spec(tmp_path / "a.yaml").budget.workers is None  # one per core
    assert load_spec(tmp_path / "b.yaml").budget.workers is None
    assert load_spec(tmp_path / "c.yaml").budget.workers == 3
    assert load_spec(ROOT / "sweeps" / "fashion-mnist.yaml").budget.workers is None


def test_defaults_and_layers():
    spec = load_spec(ROOT / "sweeps" / "quickstart.yaml")
    assert spec.objective.direction == "maximize"
    assert spec.training.early_stopping_metric == "val_accuracy"
    p = model_params({"n_layers": 2, "hidden_size": 64, "hidden_size_2": 32, "use_l2": False,
                      "optimizer": "adam", "learning_rate": 0.01}, spec)
    assert p["hidden_sizes"] == (64, 32) and "use_l2" not in p
    assert p["monitor"] == "val_accuracy" and p["max_epochs"] == 40


def test_hidden_sizes_from_layer_helpers():
    assert hidden_sizes({"learning_rate": 0.1}) is None
    assert hidden_sizes({"hidden_sizes": [64, 32]}) == (64, 32)
    assert hidden_sizes({"hidden_size": 64}) == (64,)
    assert hidden_sizes({"n_layers": 2}) == (100, 100)
    assert hidden_sizes({"n_layers": 3, "hidden_size": 8, "hidden_size_3": 4}) == (8, 8, 4)


BAD = [
    ("name: t\nspace: {learning_rate: {type: float, low: 0, high: 1, log: true}}\n",
     "space.learning_rate.low must be > 0 when log is true"),
    ("name: t\nspace: {learning_rate: {type: float, low: 0.5, high: 0.1}}\n",
     "space.learning_rate.low must be <= high"),
    ("name: t\nspace: {optimizer: {type: categorical, choices: [adam, adagrad]}}\n",
     "space.optimizer.choices has unknown optimizer 'adagrad'"),
    ("name: t\nspace: {schedule: {type: categorical, choices: []}}\n",
     "space.schedule.choices must not be empty"),
    ("name: t\nspace: {dropout: {type: float, low: 0, high: 0.5, lgo: true}}\n",
     "space.dropout has unknown key 'lgo'"),
    ("name: t\nspace: {dropout: {type: float, low: zero, high: 0.5}}\n",
     "space.dropout.low must be a number, not 'zero'"),
    ("name: t\nspace: {dropout: {type: floaty, low: 0, high: 0.5}}\n",
     "space.dropout.type is unknown: 'floaty'"),
    ("name: t\nspace: {n_units: {type: int, low: 1, high: 5}}\n",
     "space.n_units is not a model parameter"),
    ("name: t\nspace: {momentum: {type: float, low: 0.5, high: 0.9,\n"
     "  when: {optimizer: momentum}}}\n",
     "space.momentum.when refers to 'optimizer', which must be defined above"),
    ("name: t\nsampler: {name: annealing}\nspace: {l2: {type: fixed, value: 0.0}}\n",
     "sampler.name is unknown: 'annealing'"),
    ("name: t\npruner: {name: median, patience: 3}\nspace: {l2: {type: fixed, value: 0.0}}\n",
     "pruner has unknown key 'patience'"),
    ("name: t\npruner: {name: median, margin: -0.01}\nspace: {l2: 0.0}\n",
     "pruner.margin must be >= 0, not -0.01"),
    ("name: t\npruner: {name: median, margin: small}\nspace: {l2: 0.0}\n",
     "pruner.margin must be a number, not 'small'"),
    ("name: t\npruner: {name: hyperband, margin: 0.01}\nspace: {l2: 0.0}\n",
     "pruner has unknown key 'margin'"),
    ("name: t\ndata: {dataset: cifar10}\nspace: {l2: 0.0}\n", "data.dataset is unknown: 'cifar10'"),
    ("name: t\nbudget: {n_trials: 0}\nspace: {l2: 0.0}\n", "budget.n_trials must be >= 1"),
    ("name: t\nbudget: {workers: many}\nspace: {l2: 0.0}\n",
     "budget.workers must be a whole number, not 'many'"),
    ("name: t\nbudget: {workers: 0}\nspace: {l2: 0.0}\n", "budget.workers must be >= 1"),
    ("name: t\nbudget: {n_trials: ten}\nspace: {l2: 0.0}\n",
     "budget.n_trials must be a whole number, not 'ten'"),
    ("name: t\ntraining: {max_epochs: 10, epochs: 5}\nspace: {l2: 0.0}\n",
     "training has unknown key 'epochs'"),
    ("name: t\nobjective: {metric: val_f1}\nspace: {l2: 0.0}\n", "objective.metric is unknown"),
    ("name: t\nobjective: {metric: val_loss, direction: maximize}\nspace: {l2: 0.0}\n",
     "objective.direction must be 'minimize' for val_loss"),
    ("name: ../evil\nspace: {l2: 0.0}\n", "name must be letters, digits"),
    ("name: t\nspace: {}\n", "space must define at least one parameter"),
    ("name: t\nspcae: {l2: 0.0}\n", "has unknown key 'spcae'"),
    ("space: {l2: 0.0}\n", "name is required"),
    ("name: t\nspace: {l2: 0.0}\nsampler: grid\n", None),  # valid: fixed only
    ("name: t\nsampler: grid\nspace: {dropout: {type: float, low: 0, high: 0.5}}\n",
     "space.dropout.step is required by the grid sampler"),
    ("name: t\ndata: {dataset: 'csv:x.csv'}\nspace: {l2: 0.0}\n", "data.target is required"),
    ("name: t\ndata: {val_fraction: 0.6, test_fraction: 0.5}\nspace: {l2: 0.0}\n",
     "data.val_fraction plus test_fraction must be below 1"),
    ("name: t\nspace: {dropout: {type: float, low: 0.2, high: 1.5}}\n",
     "space.dropout must lie in [0, 1), not [0.2, 1.5]"),
    ("name: t\nspace: {ema_decay: {type: float, low: 0.9, high: 1.0}}\n",
     "space.ema_decay must lie in [0, 1), not [0.9, 1.0]"),
    ("name: t\nspace: {gamma: {type: float, low: 0.0, high: 0.5}}\n",
     "space.gamma must lie in (0, 1], not [0.0, 0.5]"),
    ("name: t\nspace: {learning_rate: {type: float, low: 0.0, high: 0.5}}\n",
     "space.learning_rate.low must be > 0"),
    ("name: t\nspace: {hidden_size_2: {type: int, low: 0, high: 8}}\n",
     "space.hidden_size_2.low must be >= 1"),
    ("name: t\nspace:\n  l2: {type: float\n", "invalid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m or "ok" for _, m in BAD])
def test_invalid_specs_give_one_line_errors(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "x.yaml"
    spec.write_text(text)
    if message is None:
        load_spec(spec)
        return
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    text_err = str(info.value)
    assert text_err.startswith(f"{spec}: ") and message in text_err, text_err
    assert "\n" not in text_err
    # The same through the command line: one line on stderr, exit status 2, nothing created.
    result = CliRunner().invoke(main, ["sweep", str(spec)], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {text_err}"
    assert not (tmp_path / "mlruns").exists()


def test_missing_spec_file(tmp_path):
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such sweep file"


def test_good_spec_parses(tmp_path):
    (tmp_path / "g.yaml").write_text(GOOD)
    assert load_spec(tmp_path / "g.yaml").space[0].log is True
