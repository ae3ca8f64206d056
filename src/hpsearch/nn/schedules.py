"""Learning-rate schedules: epoch (0-based) -> learning rate.

Every schedule can be preceded by a linear warm-up: during the first ``warmup_epochs`` epochs the
rate climbs as lr * (e + 1) / (warmup_epochs + 1), then the schedule starts at its epoch 0.
``plateau`` is the one schedule that looks at the data: ``observe(value)`` after each epoch.
"""

from __future__ import annotations

import math


class Schedule:
    """Base class. ``rate(e)`` is the learning rate for epoch ``e``; ``observe`` is a no-op."""

    name = "base"

    def __init__(self, lr: float, warmup_epochs: int = 0) -> None:
        self.lr = float(lr)
        self.warmup_epochs = int(warmup_epochs)

    def rate(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / (self.warmup_epochs + 1)
        return self._rate(epoch - self.warmup_epochs)

    def _rate(self, epoch: int) -> float:
        raise NotImplementedError

    def observe(self, value: float) -> None:
        """Told the monitored value (lower is better) after each epoch; most schedules ignore it."""


class Constant(Schedule):
    name = "constant"

    def _rate(self, epoch: int) -> float:
        return self.lr


class Step(Schedule):
    """lr * gamma ** (e // step_size)"""

    name = "step"

    def __init__(self, lr: float, warmup_epochs: int = 0, step_size: int = 10,
                 gamma: float = 0.5) -> None:
        super().__init__(lr, warmup_epochs)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def _rate(self, epoch: int) -> float:
        return self.lr * self.gamma ** (epoch // self.step_size)


class Exponential(Schedule):
    """lr * gamma ** e"""

    name = "exponential"

    def __init__(self, lr: float, warmup_epochs: int = 0, gamma: float = 0.95) -> None:
        super().__init__(lr, warmup_epochs)
        self.gamma = float(gamma)

    def _rate(self, epoch: int) -> float:
        return self.lr * self.gamma ** epoch


class Cosine(Schedule):
    """min_lr + (lr - min_lr) * (1 + cos(pi * e / T)) / 2 over the T epochs after warm-up."""

    name = "cosine"

    def __init__(self, lr: float, warmup_epochs: int = 0, max_epochs: int = 100,
                 min_lr: float = 0.0) -> None:
        super().__init__(lr, warmup_epochs)
        self.total = max(1, int(max_epochs) - self.warmup_epochs)
        self.min_lr = float(min_lr)

    def _rate(self, epoch: int) -> float:
        frac = min(epoch, self.total) / self.total
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * frac)) / 2


class InverseTime(Schedule):
    """lr / (1 + decay_rate * e)"""

    name = "inverse_time"

    def __init__(self, lr: float, warmup_epochs: int = 0, decay_rate: float = 0.5) -> None:
        super().__init__(lr, warmup_epochs)
        self.decay_rate = float(decay_rate)

    def _rate(self, epoch: int) -> float:
        return self.lr / (1 + self.decay_rate * epoch)


class Plateau(Schedule):
    """Multiply the rate by ``gamma`` when the monitored value has not improved for
    ``patience`` epochs, never below ``min_lr``."""

    name = "plateau"

    def __init__(self, lr: float, warmup_epochs: int = 0, gamma: float = 0.5,
                 patience: int = 3, min_lr: float = 0.0) -> None:
        super().__init__(lr, warmup_epochs)
        self.gamma, self.patience, self.min_lr = float(gamma), int(patience), float(min_lr)
        self.current = self.lr
        self.best = math.inf
        self.wait = 0

    def _rate(self, epoch: int) -> float:
        return self.current

    def observe(self, value: float) -> None:
        if value < self.best:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.current = max(self.min_lr, self.current * self.gamma)
            self.wait = 0


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Step, Exponential, Cosine, InverseTime, Plateau)
}

# Schedule hyperparameters by estimator name -> constructor name, per schedule.
SCHEDULE_PARAMS: dict[str, dict[str, str]] = {
    "constant": {},
    "step": {"step_size": "step_size", "gamma": "gamma"},
    "exponential": {"gamma": "gamma"},
    "cosine": {"max_epochs": "max_epochs", "min_lr": "min_lr"},
    "inverse_time": {"decay_rate": "decay_rate"},
    "plateau": {"gamma": "gamma", "plateau_patience": "patience", "min_lr": "min_lr"},
}


def make_schedule(name: str, lr: float, warmup_epochs: int = 0, **hyper: float | None) -> Schedule:
    """Build schedule ``name``; hyperparameters given as None keep the schedule's default."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    kwargs = {ctor: hyper[est] for est, ctor in SCHEDULE_PARAMS[name].items()
              if hyper.get(est) is not None}
    return SCHEDULES[name](lr, warmup_epochs, **kwargs)  # type: ignore[arg-type]
