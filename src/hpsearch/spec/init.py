"""``hpsearch init DATA --target COLUMN``: a sweep spec for a user's own table, without writing
YAML. The table is read and checked (``tables``: the target present with at least two classes,
every other column numeric or made so: one-hot encoded, filled, dropped, each said with its
reason), and a commented spec is written with a search space and a budget sized from the data:
rows and features decide the epochs, the batch size, the width of the hidden layers and the
objective. ``hpsearch sweep DATA --target COLUMN`` does this and runs it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import SpecError
from ..model.columns import ColumnPlan
from ..model.columns import apply as apply_plan
from . import tables
from .config import STUDY_NAME, load_spec, parse_spec

# What a trial costs, to size the budget: one epoch is about 6 multiply-adds per weight and
# sample (forward, backward, update) at about 10 GFLOP/s on one core of these machines, plus
# the per-epoch evaluations; a rough guide for the comment and the timeout, not a promise.
FLOPS_PER_SECOND = 1.0e10
SWEEP_MINUTES = 30  # a sweep estimated longer than this gets a timeout of that length


@dataclass
class InitResult:
    path: Path
    name: str
    notes: list[str]  # one line per column decision
    summary: str  # rows, features, classes; the budget chosen


def study_name(path: Path) -> str:
    """A study name from a file name: letters, digits, '.', '_' and '-' only."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-._") or "sweep"
    return name if STUDY_NAME.match(name) else name[:100]


def init_spec(data: str | Path, target: str, out: str | Path | None = None,
              drop: tuple[str, ...] = (), sep: str = ",", name: str | None = None,
              force: bool = False) -> InitResult:
    """Check table ``data`` and write its spec (default sweeps/<file stem>.yaml)."""
    data = Path(data)
    if not tables.is_table(data):
        raise SpecError(f"{data}: not a table hpsearch reads (.csv, .tsv, .txt, .parquet, .pq)")
    frame = tables.read_table(data, sep)
    plan, notes = tables.inspect(frame, target, data, tuple(drop))
    X, names = apply_plan(frame, plan, data, target)
    y = tables.labels(frame, target, data)
    name = name or study_name(data)
    if not STUDY_NAME.match(name):
        raise SpecError(f"study name {name!r}: must be letters, digits, '.', '_' or '-'")
    path = Path(out) if out else Path("sweeps") / f"{name}.yaml"
    if path.exists() and not force:
        raise SpecError(f"{path}: exists already; run it (hpsearch sweep {path}), or pass "
                        f"--force to write it anew, or -o to write elsewhere")
    rows, n_features, n_classes = X.shape[0], X.shape[1], len(set(y.tolist()))
    text, summary = _render(name, data, path, target, sep, plan, notes, rows, n_features,
                            n_classes, len(frame.columns) - 1, tuple(drop))
    parse_spec(yaml.safe_load(text), str(path), text)  # what we write always loads
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return InitResult(path, name, notes, summary)


def _budget(rows: int, n_features: int, n_classes: int) -> dict[str, object]:
    epochs = 100 if rows < 1_000 else 60 if rows < 10_000 else 30 if rows < 100_000 else 15
    batch = 32 if rows < 2_000 else 64 if rows < 20_000 else 128
    # widest layer: 16 sqrt(features) rounded up to a power of two, 32 to 512 (4 -> 32, 30 -> 128)
    high = int(min(512, max(32, 2 ** math.ceil(math.log2(16 * math.sqrt(n_features))))))
    widest = high * (n_features + n_classes)
    epoch_seconds = 6 * rows * widest / FLOPS_PER_SECOND + 0.01
    trial_seconds = epoch_seconds * epochs
    n_trials = 30
    timeout = SWEEP_MINUTES * 60 if trial_seconds * n_trials / 2 > SWEEP_MINUTES * 60 else None
    val_rows = int(rows * 0.2)
    return {"epochs": epochs, "patience": 10 if epochs >= 60 else 5, "batch": batch,
            "high": high, "trial_seconds": trial_seconds, "n_trials": n_trials,
            "timeout": timeout, "workers": 1 if trial_seconds < 5 else "auto",
            "metric": "val_loss" if val_rows < 200 else "val_accuracy", "val_rows": val_rows}


def _flow(value: object) -> str:
    """A YAML value on one line (flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6,
                          allow_unicode=True).strip().removesuffix("...").strip()


def _render(name: str, data: Path, path: Path, target: str, sep: str, plan: ColumnPlan,
            notes: list[str], rows: int, n_features: int, n_classes: int,
            columns: int, asked_drop: tuple[str, ...] = ()) -> tuple[str, str]:
    b = _budget(rows, n_features, n_classes)
    where = os.path.relpath(data.resolve(), path.parent.resolve())
    kind = "parquet" if data.suffix.lower() in tables.PARQUET else "csv"
    lines = ["data:", f"  dataset: {_flow(f'{kind}:{where}')}   # relative to this file",
             f"  target: {_flow(target)}"]
    if sep != ",":
        lines.append(f"  sep: {_flow(sep)}")
    lines += ["  val_fraction: 0.2", "  test_fraction: 0.2", "  seed: 0",
              "  preprocessing: standardize   # per feature, fitted on the training split"]
    lines += [f"  # {note}" for note in notes]
    lines += [f"  {key}: {_flow(value)}" for key, value in plan.as_spec().items()]
    data_yaml = "\n".join(lines)
    metric_why = (f"# {b['val_rows']} validation rows: the loss separates trials that tie on "
                  f"accuracy" if b["metric"] == "val_loss" else
                  "# the best validation accuracy of a trial's epochs")
    timeout = (f"  timeout: {b['timeout']}   # seconds: about {b['trial_seconds']:.0f} s a trial "
               f"at most, so the sweep stops starting trials after {SWEEP_MINUTES} minutes\n"
               if b["timeout"] else "")
    workers = ("1     # trials this short: a second process costs more than it saves"
               if b["workers"] == 1 else "auto  # one worker process per core")
    asked = "".join(f" --drop {c}" for c in asked_drop) + (f" --sep '{sep}'" if sep != "," else "")
    text = f"""\
# Written by `hpsearch init {data} --target {target}{asked}`: {rows} rows, {columns} columns ->
# {n_features} features, {n_classes} classes. Edit freely; `hpsearch sweep {path}` runs it.
# The column plan below (drop / one_hot / fill) turns the table into numbers; `hpsearch
# predict` applies the same plan to new rows.
name: {name}
{data_yaml.rstrip()}
training:
  max_epochs: {b['epochs']}      # {rows} rows: fewer epochs the more rows an epoch holds
  batch_size: {b['batch']}
  early_stopping_patience: {b['patience']}   # epochs without a better {b['metric']}
objective:
  metric: {b['metric']}   {metric_why}
budget:
  n_trials: {b['n_trials']}
  workers: {workers}
{timeout}sampler: {{name: tpe, seed: 0, n_startup_trials: 8}}
pruner: {{name: median, n_startup_trials: 5, n_warmup_steps: 5}}
checkpoints: {{keep: 3}}
space:   # an MLP of 1-2 hidden layers, up to {b['high']} units ({n_features} inputs)
  learning_rate: {{type: float, low: 1.0e-4, high: 0.1, log: true}}
  optimizer: {{type: categorical, choices: [sgd, momentum, rmsprop, adam]}}
  momentum: {{type: float, low: 0.5, high: 0.99, when: {{optimizer: momentum}}}}
  schedule: {{type: categorical, choices: [constant, cosine]}}
  n_layers: {{type: int, low: 1, high: 2}}
  hidden_size: {{type: int, low: 8, high: {b['high']}, log: true}}
  hidden_size_2: {{type: int, low: 8, high: {b['high']}, log: true, when: {{n_layers: 2}}}}
  l2: {{type: float, low: 1.0e-6, high: 1.0e-2, log: true}}
  dropout: {{type: float, low: 0.0, high: 0.5}}
"""
    summary = (f"{data}: {rows} rows, {n_features} features, {n_classes} classes; "
               f"{b['n_trials']} trials of up to {b['epochs']} epochs, objective {b['metric']}"
               + (f", timeout {b['timeout']} s" if b["timeout"] else ""))
    return text, summary


def table_spec(data: str | Path, target: str, drop: tuple[str, ...] = (), sep: str = ",",
               name: str | None = None, echo: Callable[[str], None] = print) -> Path:
    """The spec ``hpsearch sweep DATA --target COLUMN`` runs: sweeps/<name>.yaml, written by
    ``init_spec`` the first time and taken as it is afterwards (the same command resumes), as
    long as it is the spec of this table and target."""
    data = Path(data)
    name = name or study_name(data)
    path = Path("sweeps") / f"{name}.yaml"
    if path.exists():
        spec = load_spec(path)
        table = Path(spec.data.dataset.partition(":")[2]).resolve()
        if spec.data.target != target or table != data.resolve():
            raise SpecError(f"{path}: exists and is not the spec of {data} with target "
                            f"{target!r}; pass --study NAME for another one, or remove it")
        echo(f"using {path} (the spec hpsearch init wrote for {data}; edit it to change "
             f"the sweep)")
        return path
    r = init_spec(data, target, path, drop, sep, name)
    for note in r.notes:
        echo(note)
    echo(r.summary)
    echo(f"wrote {r.path}")
    return r.path
