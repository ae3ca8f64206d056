"""The estimator's parameters and their bounds, in one table (like scikit-learn's
``_parameter_constraints``): ``MLPClassifier._validate_params`` checks against it, spec/config.py
derives the ranges a search space may give from it, report/advice.py the bounds a range cannot be
widened past."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..nn import OPTIMIZERS, SCHEDULES

PREPROCESSING = ("standardize", "scale", "none")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Interval:
    """A number from ``low`` to ``high`` (None: no upper bound), like scikit-learn's
    ``Interval``; ``closed`` names the ends that belong to it ("left", "right", "both",
    "neither"). ``kind``: numbers.Real or numbers.Integral; ``none``: None is allowed too."""

    kind: type
    low: float
    high: float | None = None
    closed: str = "left"
    none: bool = False

    @property
    def low_open(self) -> bool:
        return self.closed in ("right", "neither")

    @property
    def high_open(self) -> bool:
        return self.closed in ("left", "neither")

    def within(self, value: Any) -> bool:
        """``value`` lies in the interval (its type unchecked); NaN never does."""
        above = value > self.low if self.low_open else value >= self.low
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return bool(above and below)

    @property
    def relation(self) -> str:
        """``> 0``, ``>= 1`` or ``in [0, 1)``."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {self.span}"

    @property
    def span(self) -> str:
        """``[0, 1)``, ``(0, 1]``, ...; open above when there is no upper bound."""
        high = "inf" if self.high is None else f"{self.high:g}"
        return (f"{'(' if self.low_open else '['}{self.low:g}, {high}"
                f"{')' if self.high_open or self.high is None else ']'}")

    def problem(self, value: Any) -> str | None:
        if value is None and self.none:
            return None
        if isinstance(value, self.kind) and self.within(value):
            return None
        if self.kind is numbers.Integral:
            return f"must be {'None or ' if self.none else ''}a whole number {self.relation}"
        # A real that may be None (gamma: None is the schedule's default) is described by its
        # range alone: "must be None or in (0, 1]" would not read.
        return f"must be {self.relation}"


@dataclass(frozen=True)
class Options:
    """One of a set of names, like scikit-learn's ``StrOptions``. A registry (a table of kernels
    such as OPTIMIZERS) has no order of its own: its names are listed sorted."""

    names: Mapping[str, Any] | tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.names:
            return None
        if isinstance(self.names, tuple):
            return f"choose from {list(self.names)}"
        return f"unknown; choose from {sorted(self.names)}"


@dataclass(frozen=True)
class LayerSizes:
    """A sequence of positive whole numbers: the units of each hidden layer."""

    def problem(self, value: Any) -> str | None:
        if isinstance(value, numbers.Integral):
            return "must be a sequence of positive ints, e.g. (128,)"
        if not all(isinstance(s, numbers.Integral) and int(s) > 0 for s in value):
            return "every layer needs a positive whole number of units"
        return None


Constraint = Interval | Options | LayerSizes
_UNIT = Interval(numbers.Real, 0, 1)  # [0, 1): rates, momentum and decay factors
_NON_NEGATIVE = Interval(numbers.Real, 0)
_COUNT = Interval(numbers.Integral, 1)

# Every checked parameter, in the order ``_validate_params`` checks them (the first bad one is
# reported). spec/config.py (the ranges a search space may give) and report/advice.py (bounds a
# range cannot be widened past) read this table. Not checked here: monitor (in fit, it needs the
# eval sets), random_state (in _rng), and the booleans.
PARAMETERS: dict[str, Constraint] = {
    "hidden_sizes": LayerSizes(),
    "optimizer": Options(OPTIMIZERS),
    "schedule": Options(SCHEDULES),
    "preprocessing": Options(PREPROCESSING),
    "dtype": Options(DTYPES),
    "learning_rate": Interval(numbers.Real, 0, closed="neither"),
    "l2": _NON_NEGATIVE,
    "l1": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "min_lr": _NON_NEGATIVE,
    "decay_rate": _NON_NEGATIVE,
    "dropout": _UNIT,
    "input_dropout": _UNIT,
    "momentum": _UNIT,
    "beta1": _UNIT,
    "beta2": _UNIT,
    "rho": _UNIT,
    "ema_decay": _UNIT,
    "batch_size": _COUNT,
    "max_epochs": _COUNT,
    "step_size": _COUNT,
    "plateau_patience": _COUNT,
    "warmup_epochs": Interval(numbers.Integral, 0),
    "early_stopping_patience": Interval(numbers.Integral, 1, none=True),
    "gamma": Interval(numbers.Real, 0, 1, closed="right", none=True),
    "eps": Interval(numbers.Real, 0, closed="neither"),
    "train_eval_size": Interval(numbers.Integral, 1, none=True),
}
# Every argument of MLPClassifier(...): the checked ones and these (tests/test_params.py holds the
# two lists equal), so that spec/config.py knows them without importing scikit-learn.
ESTIMATOR_ARGS = frozenset(PARAMETERS) | {"monitor", "random_state", "nesterov",
                                          "restore_best_weights"}
