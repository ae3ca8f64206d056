"""Training callbacks of a trial (the trainer only fires them, minGPT's split): the pruning
report, which explains a prune from what the pruner compared, and the epoch logger, which hands
each epoch's metrics to the trial's MLflow run in batches."""

from __future__ import annotations

import math
import time
from typing import Any

import optuna

from ..spec.registries import median_comparison
from ..spec.schema import PrunerSpec
from ..study.store import hyperband_bracket, stored_trial
from ..tracking.messages import TrialLogFront
from ..tracking.tracker import EPOCH_METRICS, now_ms

__all__ = ["EpochLogger", "PruningCallback", "explain_prune"]


class PruningCallback:
    """Reports the objective metric each epoch and stops training when the pruner says so,
    remembering why (``reason``): what the pruner compared the trial with. Without a
    ``pruner`` it neither reports nor prunes."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, metric: str,
                 pruner: PrunerSpec | None) -> None:
        self.study, self.trial, self.metric, self.pruner = study, trial, metric, pruner
        self.reason = ""

    def on_epoch_end(self, record: dict[str, float]) -> bool:
        epoch, value = int(record["epoch"]), float(record[self.metric])
        if not math.isfinite(value):
            return False
        if self.pruner is None:  # not reported either: the pruner of others would read it
            return False
        self.trial.report(value, epoch)
        if not self.trial.should_prune():
            return False
        self.reason = (f"pruned at epoch {epoch}: "
                       + explain_prune(self.study, self.trial, self.metric, self.pruner, epoch))
        return True


def explain_prune(study: optuna.Study, trial: optuna.Trial, metric: str, pruner: PrunerSpec,
                  epoch: int) -> str:
    """Why the pruner stopped ``trial`` at ``epoch``, from the values it compared:

    - median: the trial's best value so far against the median of the complete trials' values
      at this epoch (Optuna's MedianPruner compares exactly these);
    - successive halving and Hyperband: the value the pruner recorded for the trial's rung
      (``completed_rung_<k>``) against the top 1/reduction_factor of the values recorded at that
      rung by the trials competing with it (for Hyperband, those of its bracket).
    """
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    frozen = stored_trial(study, trial)
    name = pruner.name
    if name == "median":
        best, median, count = median_comparison(study, frozen, epoch)
        if math.isnan(best):
            return f"{metric} is not a number ({name} pruner)"
        if not count:
            return f"{metric} {best:.4f} ({name} pruner)"
        margin = float(pruner.options.get("margin", 0.0))
        behind = f"more than {margin:g} behind" if margin else "not better than"
        return (f"its best {metric} so far, {best:.4f}, was {behind} the median "
                f"{median:.4f} of {count} complete trials at this epoch ({name} pruner)")
    rungs = sorted(int(k.rsplit("_", 1)[1]) for k in frozen.system_attrs
                   if k.startswith("completed_rung_"))
    if not rungs:  # pruned before any rung (a NaN value): nothing was compared
        return f"{metric} is not a number ({name} pruner)"
    key = f"completed_rung_{rungs[-1]}"
    value = float(frozen.system_attrs[key])
    bracket = hyperband_bracket(study, frozen)
    competing = sorted(float(t.system_attrs[key]) for t in study.get_trials(deepcopy=False)
                       if key in t.system_attrs and (bracket is None or
                                                     hyperband_bracket(study, t) == bracket))
    rf = int(pruner.options.get("reduction_factor", 3))
    # Optuna promotes the top len // rf (at least one) of the values at the rung
    k = max(1, len(competing) // rf)
    cut = competing[-k] if maximize else competing[k - 1]
    where = f" in bracket {bracket}" if bracket is not None else ""
    return (f"rung {rungs[-1]}{where}: {metric} {value:.4f} was not in the top 1/{rf} of the "
            f"{len(competing)} trials at this rung (cut-off {cut:.4f}; {name} pruner)")


class EpochLogger:
    """Training callback: collects each epoch's metrics (step=epoch) and hands them to the
    trial log in batches, at most every ``flush_seconds`` and once more at the end (``flush``)."""

    def __init__(self, log: TrialLogFront, number: int, flush_seconds: float = 1.0) -> None:
        self.log, self.number, self.flush_seconds = log, number, flush_seconds
        self.buffer: list[tuple[str, float, int, int]] = []
        self.last_flush = time.monotonic()

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        ts = now_ms()
        step = int(record["epoch"])
        for key in EPOCH_METRICS:
            if key in record:
                value = float(record[key])
                if value != value:  # NaN (a diverged epoch's accuracy): nothing to show
                    continue
                self.buffer.append((key, min(value, 1e30), ts, step))
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        batch, self.buffer = self.buffer, []
        self.log.metrics(self.number, batch)
        self.last_flush = time.monotonic()
