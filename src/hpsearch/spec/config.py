"""Sweep specs: YAML files under ``sweeps/``, loaded once into frozen dataclasses.

Validation is strict and happens here, before anything is recorded: unknown keys, wrong types,
inverted ranges, ``log`` with a non-positive bound, unknown names and empty choice lists each end
in one ``SpecError`` line that names the file and the key, e.g.
``sweeps/x.yaml: space.learning_rate.low must be > 0 when log is true``.
"""

from __future__ import annotations

import numbers
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..diagnosis.diagnostics import THRESHOLDS  # the settable thresholds, with their defaults
from ..errors import SpecError, first_line
from ..model.columns import ColumnPlan, plan_from_spec
from ..model.params import ESTIMATOR_ARGS, PARAMETERS, PREPROCESSING, Interval, Options
from .checker import Checker
from .datasets import BUILTIN, NAMES, TABLES
from .registries import PRUNERS, SAMPLERS, Entry
from .schema import (
    BudgetSpec,
    DataSpec,
    ObjectiveSpec,
    ParamSpec,
    PrunerSpec,
    SamplerSpec,
    SweepSpec,
    TrainingSpec,
    WarmStartSpec,
)

OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}
PARAM_TYPES = ("float", "int", "categorical", "fixed")

# MLPClassifier parameters a search space may set: all but the training settings (set for every
# trial by the spec's training section; batch_size may be searched too) and two left at defaults.
NOT_SEARCHED = {"max_epochs", "early_stopping_patience", "monitor", "train_eval_size",
                "random_state", "restore_best_weights", "dtype"}
ESTIMATOR_PARAMS = ESTIMATOR_ARGS - NOT_SEARCHED
# The layer helpers of space.hidden_sizes: n_layers, hidden_size (all), hidden_size_<k> (k >= 2).
LAYER_HELPER_NAMES = ("n_layers", "hidden_size", *(f"hidden_size_{k}" for k in range(2, 10)))
LAYER_HELPERS = re.compile(f"^({'|'.join(LAYER_HELPER_NAMES)})$")
# The bounds a search-space range must lie within: the estimator's own, and >= 1 for the layer
# helpers (at least one layer, at least one unit in each).
RANGES: dict[str, Interval] = {
    **{name: c for name, c in PARAMETERS.items()
       if name in ESTIMATOR_PARAMS and isinstance(c, Interval)},
    **dict.fromkeys(LAYER_HELPER_NAMES, Interval(numbers.Integral, 1)),
}
NAMED_CHOICES = {name: set(c.names) for name, c in PARAMETERS.items()
                 if name in ESTIMATOR_PARAMS and isinstance(c, Options)}
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_study_name(name: str) -> str:
    """A study name given on the command line (it becomes part of paths: checkpoints, reports,
    exports); SpecError unless it is letters, digits, '.', '_' or '-'."""
    if not STUDY_NAME.match(name):
        raise SpecError(f"study name {name!r}: must be letters, digits, '.', '_' or '-' (no "
                        f"spaces or path characters), at most 100 characters")
    return name


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; SpecError (one line, file and key) otherwise."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{file}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{file}: cannot read ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise SpecError(f"{file}: invalid YAML{where}: {problem}") from None
    return parse_spec(raw, file, text)


def parse_spec(raw: Any, file: str = "<spec>", text: str = "") -> SweepSpec:
    top = Checker(file, "", raw, {"name", "data", "training", "objective", "budget", "sampler",
                                   "pruner", "checkpoints", "space", "diagnostics",
                                   "warm_start", "export"})
    name = top.get("name", str, required=True)
    if not STUDY_NAME.match(name):
        top.fail("must be letters, digits, '.', '_' or '-' (no spaces or path characters), "
                 f"at most 100 characters, not {name!r}", "name")

    d = Checker(file, "data", top.node.get("data"), {"dataset", "val_fraction", "test_fraction",
                                                      "seed", "preprocessing", "target",
                                                      "data_dir", "sep", "drop", "one_hot",
                                                      "fill"})
    dataset = d.get("dataset", str, "digits")
    kind, _, table = dataset.partition(":")
    if dataset not in BUILTIN and not (kind in TABLES and table):
        d.fail(f"is unknown: {dataset!r} (choose from {', '.join(NAMES)})", "dataset")
    target = d.get("target", str, None, allow_none=True)
    if kind in TABLES and not target:
        d.fail(f"is required for a {kind}: dataset (the label column)", "target")
    if kind in TABLES and not Path(table).is_absolute():
        # A relative table path is relative to the spec file, so a sweep runs from anywhere.
        candidate = Path(os.path.normpath(Path(file).parent / table))
        if candidate.exists() or not Path(table).exists():
            dataset = f"{kind}:{candidate}"
    val_fraction = d.number("val_fraction", 0.2, 0, 1, lo_open=True, hi_open=True)
    test_fraction = d.number("test_fraction", 0.2, 0, 1, lo_open=True, hi_open=True)
    if val_fraction + test_fraction >= 1:
        d.fail(f"plus test_fraction must be below 1 ({val_fraction} + {test_fraction})",
               "val_fraction")
    preprocessing = d.get("preprocessing", str, None, allow_none=True)
    if preprocessing is not None and preprocessing not in PREPROCESSING:
        d.fail(f"is unknown: {preprocessing!r} (choose from {', '.join(PREPROCESSING)})",
               "preprocessing")
    data = DataSpec(dataset, val_fraction, test_fraction, d.number("seed", 0, 0, integer=True),
                    preprocessing, target, d.get("data_dir", str, None, allow_none=True),
                    d.get("sep", str, ","), _columns(d) if kind in TABLES else None)

    t = Checker(file, "training", top.node.get("training"),
                 {"max_epochs", "batch_size", "early_stopping_patience", "early_stopping_metric",
                  "train_eval_size", "seed"})
    o = Checker(file, "objective", top.node.get("objective"), {"metric", "direction"})
    obj_metric = o.get("metric", str, "val_accuracy")
    if obj_metric not in OBJECTIVES:
        o.fail(f"is unknown: {obj_metric!r} (choose from {', '.join(OBJECTIVES)})", "metric")
    direction = o.get("direction", str, OBJECTIVES[obj_metric])
    if direction != OBJECTIVES[obj_metric]:
        o.fail(f"must be {OBJECTIVES[obj_metric]!r} for {obj_metric}, not {direction!r}",
               "direction")
    objective = ObjectiveSpec(obj_metric, direction)

    metric = t.get("early_stopping_metric", str, obj_metric)
    if metric not in OBJECTIVES:
        t.fail(f"is unknown: {metric!r} (choose from {', '.join(OBJECTIVES)})",
               "early_stopping_metric")
    training = TrainingSpec(
        t.number("max_epochs", 30, 1, integer=True), t.number("batch_size", 128, 1, integer=True),
        t.number("early_stopping_patience", 10, 1, integer=True, allow_none=True), metric,
        t.number("train_eval_size", 10_000, 1, integer=True, allow_none=True),
        t.number("seed", 0, 0, integer=True))

    b = Checker(file, "budget", top.node.get("budget"), set(BudgetSpec.__dataclass_fields__))
    workers = None
    if b.node.get("workers", "auto") != "auto":
        workers = b.number("workers", None, 1, 64, integer=True, allow_none=True)
    if (stop := b.get("stop", str, None, allow_none=True)) not in (None, "converged"):
        b.fail(f"is unknown: {stop!r} (choose from converged, or leave it out)", "stop")
    budget = BudgetSpec(b.number("n_trials", 20, 1, integer=True),
                        b.number("timeout", None, 0, allow_none=True, lo_open=True), workers,
                        stop, b.number("patience_trials", 20, 1, integer=True))

    sampler = _sampler_or_pruner(file, "sampler", top.node.get("sampler"), SAMPLERS, "tpe")
    pruner = _sampler_or_pruner(file, "pruner", top.node.get("pruner"), PRUNERS, "median")

    c = Checker(file, "checkpoints", top.node.get("checkpoints"), {"keep"})
    keep = c.number("keep", 3, 1, integer=True)
    g = Checker(file, "diagnostics", top.node.get("diagnostics"), set(THRESHOLDS))
    diagnostics = {k: float(g.number(k, THRESHOLDS[k], 0)) for k in g.node}
    x = Checker(file, "export", top.node.get("export"),
                 {"ensemble", "reseed", "reseed_top", "refit", "in_budget"})
    ensemble = x.number("ensemble", 0, 0, integer=True)
    reseed = (x.number("reseed", 0, 0, integer=True), x.number("reseed_top", 3, 1, integer=True))
    refit, in_budget = x.get("refit", bool, False), x.get("in_budget", bool, False)
    for key, n in (("ensemble", ensemble), ("reseed_top", reseed[1] if reseed[0] else 0)):
        if n > keep:
            x.fail(f"is {n}, more than checkpoints.keep ({keep}): raise checkpoints.keep", key)
    w = Checker(file, "warm_start", top.node.get("warm_start"), {"study", "trials"})
    warm = WarmStartSpec(w.get("study", str, required=True),
                         w.number("trials", 3, 0, integer=True)) if w.node else None
    if warm and not STUDY_NAME.match(warm.study):
        w.fail(f"is not a study name: {warm.study!r}", "study")

    space = _space(file, top.node.get("space"))
    unstepped = [p.name for p in space if p.type == "float" and p.step is None]
    if sampler.name == "grid" and unstepped:
        raise SpecError(f"{file}: space.{unstepped[0]}.step is required by the grid sampler "
                        f"(or make it categorical)")
    return SweepSpec(name, file, data, training, objective, budget,
                     SamplerSpec(sampler.name, sampler.options.pop("seed", 0), sampler.options),
                     pruner, keep, space, diagnostics, text, warm, ensemble, reseed, refit,
                     in_budget)


def _columns(d: Checker) -> ColumnPlan | None:
    """data.drop (column names), data.one_hot (column: its categories), data.fill (column: the
    number that stands for a missing value): a table's column plan (spec/tables.py)."""
    drop = d.get("drop", list, [])
    one_hot = d.get("one_hot", dict, {})
    fill = d.get("fill", dict, {})
    if not all(isinstance(c, str) for c in drop):
        d.fail("must be a list of column names", "drop")
    for col, cats in one_hot.items():
        if not isinstance(cats, list) or not cats:
            d.fail(f"must list the categories of {col!r}", "one_hot")
    for col, value in fill.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            d.fail(f"must map {col!r} to a number, not {value!r}", "fill")
    if not (drop or one_hot or fill):
        return None
    return plan_from_spec(drop, one_hot, fill)


def _sampler_or_pruner(file: str, where: str, node: Any, table: dict[str, Entry],
                       default: str) -> PrunerSpec:
    if isinstance(node, str):
        node = {"name": node}
    n = Checker(file, where, node)
    name = n.get("name", str, default)
    if name not in table:
        n.fail(f"is unknown: {name!r} (choose from {', '.join(table)})", "name")
    n = Checker(file, where, node, {"name", *table[name].options})
    options = {}
    for key in sorted(table[name].options):
        if key in n.node:
            if key in ("multivariate",):
                options[key] = n.get(key, bool)
            elif key == "qmc_type":
                options[key] = n.get(key, str)
            elif key == "reduction_factor":
                options[key] = n.number(key, 3, 2, integer=True)
            elif key == "margin":
                options[key] = n.number(key, 0.0, 0.0)
            else:
                options[key] = n.number(key, 0, 0, integer=True, allow_none=key == "seed")
    return PrunerSpec(name, options)


def _space(file: str, node: Any) -> tuple[ParamSpec, ...]:
    top = Checker(file, "space", node)
    if not top.node:
        top.fail("must define at least one parameter")
    params: list[ParamSpec] = []
    referenced = set()
    for name, entry in top.node.items():
        where = f"space.{name}"
        if not isinstance(name, str):
            top.fail(f"has a non-text parameter name {name!r}")
        if not isinstance(entry, dict):  # shorthand: a bare value is fixed
            entry = {"type": "fixed", "value": entry}
        e = Checker(file, where, entry)
        kind = e.get("type", str, required=True)
        if kind not in PARAM_TYPES:
            e.fail(f"is unknown: {kind!r} (choose from {', '.join(PARAM_TYPES)})", "type")
        allowed = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
                   "categorical": {"choices"}, "fixed": {"value"}}[kind] | {"type", "when"}
        e = Checker(file, where, entry, allowed)
        when = _when(e, name, [p.name for p in params])
        referenced |= {w for w, _ in when}
        if kind in ("float", "int"):
            integer = kind == "int"
            low = e.get("low", int if integer else float, required=True)
            high = e.get("high", int if integer else float, required=True)
            log = e.get("log", bool, False)
            step = e.get("step", int if integer else float, None, allow_none=True)
            if low > high:
                e.fail(f"must be <= high ({low!r} > {high!r})", "low")
            if log and low <= 0:
                e.fail("must be > 0 when log is true", "low")
            if step is not None and step <= 0:
                e.fail(f"must be > 0, not {step!r}", "step")
            if step is not None and log:
                e.fail("cannot be combined with log: true", "step")
            params.append(ParamSpec(name, kind, low, high, log, step, when=when))
            _check_range(e, name, low, high)
        elif kind == "categorical":
            choices = e.get("choices", list, required=True)
            if not choices:
                e.fail("must not be empty", "choices")
            if len(set(map(repr, choices))) != len(choices):
                e.fail(f"has duplicates: {choices!r}", "choices")
            for c in choices:
                if not isinstance(c, str | int | float | bool) and c is not None:
                    e.fail(f"must be numbers, strings, booleans or null, not {c!r}", "choices")
                _check_value(e, name, c, "choices")
            params.append(ParamSpec(name, kind, choices=tuple(choices), when=when))
        else:
            value = e.get("value", (str, int, float, bool, list), required=True)
            _check_value(e, name, value, "value")
            params.append(ParamSpec(name, kind, value=tuple(value) if isinstance(value, list)
                                    else value, when=when))
    for p in params:
        if p.name not in ESTIMATOR_PARAMS and not LAYER_HELPERS.match(p.name) \
                and p.name not in referenced:
            raise SpecError(f"{file}: space.{p.name} is not a model parameter (and no `when` "
                            f"uses it as a switch); model parameters: "
                            f"{', '.join(sorted(ESTIMATOR_PARAMS))}, n_layers, hidden_size, "
                            f"hidden_size_2..9")
    return tuple(params)


def _when(e: Checker, name: str, earlier: list[str]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    node = e.get("when", dict, None)
    if node is None:
        return ()
    out = []
    for other, values in node.items():
        if other not in earlier:
            e.fail(f"refers to {other!r}, which must be defined above {name!r} in the space",
                   "when")
        values = tuple(values) if isinstance(values, list) else (values,)
        if not values:
            e.fail(f"lists no values for {other!r}", "when")
        out.append((str(other), values))
    return tuple(out)


def _check_value(e: Checker, name: str, value: Any, key: str) -> None:
    if name in NAMED_CHOICES and value not in NAMED_CHOICES[name]:
        e.fail(f"has unknown {name} {value!r} (choose from "
               f"{', '.join(sorted(NAMED_CHOICES[name]))})", key)
    if name == "hidden_sizes" and not (isinstance(value, list) and value and
                                       all(isinstance(v, int) and v > 0 for v in value)):
        e.fail(f"must be a list of positive whole numbers, not {value!r}", key)


def _check_range(e: Checker, name: str, low: float, high: float) -> None:
    bounds = RANGES.get(name)
    if bounds is None and name.startswith("hidden_size"):  # any other name of units
        bounds = RANGES["hidden_size"]
    if bounds is None:
        return
    if bounds.high is None:
        if not bounds.within(low):
            e.fail(f"must be {bounds.relation}", "low")
    elif not (bounds.within(low) and bounds.within(high)):
        e.fail(f"must lie in {bounds.span}, not [{low}, {high}]")


def sweep_workers(spec: SweepSpec, workers: int | None) -> int:
    """A sweep's worker processes: ``--workers``, else the spec's, else one per core."""
    return workers or spec.budget.workers or os.cpu_count() or 1
