"""The minibatch training loop. It only trains, measures and fires callbacks; printing, logging,
pruning and saving live in callbacks (minGPT's split).

Per epoch: one seeded permutation, then per minibatch a gather of its rows and
forward/backward/step into preallocated buffers, then a no-dropout evaluation of the training
subsample and of every evaluation set. The best epoch by the monitored metric is snapshotted
and restored at the end. With ``ema_decay`` the measured, snapshotted and returned weights are
an exponential moving average of the trained ones (three more passes over the weights a step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .functional import (
    cross_entropy,
    l1_penalty_grad,
    l2_penalty_grad,
    softmax_cross_entropy_grad,
)
from .network import Network
from .optimizers import Optimizer
from .schedules import Schedule

Array = np.ndarray
Record = dict[str, float]

# Statuses recorded in TrainResult.status (and MLPClassifier.status_).
COMPLETED, EARLY_STOPPED, STOPPED, DIVERGED = "completed", "early_stopped", "stopped", "diverged"


class Callback(Protocol):
    """Anything with ``on_epoch_end(record) -> bool | None``; returning True stops training.

    Plain callables ``f(record)`` are accepted too. ``record`` is the epoch's history entry.
    """

    def on_epoch_end(self, record: Record) -> bool | None: ...


@dataclass
class TrainConfig:
    batch_size: int = 128
    max_epochs: int = 50
    dropout: float = 0.0
    input_dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    monitor: str = "train_loss"  # "<set>_loss" (lower is better) or "<set>_accuracy" (higher)
    patience: int | None = None  # early stopping; None trains all max_epochs
    restore_best: bool = True
    divergence_factor: float = 10.0  # train loss above factor * ln(n_classes) counts as diverged
    # Polyak averaging: an exponential moving average of the weights, updated after every step
    # with decay min(ema_decay, (1 + t) / (10 + t)) at step t (so the start is not dragged by the
    # random initial weights); evaluation, the best epoch and the result use the average.
    ema_decay: float = 0.0


@dataclass
class TrainResult:
    history: list[Record] = field(default_factory=list)
    best_epoch: int = 0  # 0 means the initial weights (only if every epoch diverged)
    best_value: float = math.nan
    status: str = COMPLETED
    reason: str = ""
    train_time_s: float = 0.0


def evaluate(net: Network, x: Array, y: Array) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the network on (x, y), without dropout."""
    logits = net.logits(x)
    if not np.all(np.isfinite(logits)):
        return math.inf, float(np.mean(np.nan_to_num(logits).argmax(axis=1) == y))
    return cross_entropy(logits, y), float(np.mean(logits.argmax(axis=1) == y))


def _fire(callbacks: list[Any], record: Record) -> bool:
    stop = False
    for cb in callbacks:
        hook: Callable[[Record], Any] = getattr(cb, "on_epoch_end", cb)
        stop = (hook(dict(record)) is True) or stop  # only an explicit True stops
    return stop


def train(net: Network, optimizer: Optimizer, schedule: Schedule, x: Array, y: Array,
          config: TrainConfig, rng: np.random.Generator,
          eval_sets: Mapping[str, tuple[Array, Array]] | None = None,
          train_eval: tuple[Array, Array] | None = None,
          callbacks: list[Any] | None = None) -> TrainResult:
    """Train ``net`` in place on (x, y) with integer labels; return history and status.

    ``train_eval`` is the (sub)sample on which train_loss/train_accuracy are measured, without
    dropout; by default the whole training set.
    """
    # Overflow is how divergence shows itself; it is detected and recorded, not warned about.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _train(net, optimizer, schedule, x, y, config, rng, eval_sets, train_eval,
                      callbacks)


def _train(net: Network, optimizer: Optimizer, schedule: Schedule, x: Array, y: Array,
           config: TrainConfig, rng: np.random.Generator,
           eval_sets: Mapping[str, tuple[Array, Array]] | None,
           train_eval: tuple[Array, Array] | None,
           callbacks: list[Any] | None) -> TrainResult:
    eval_sets = dict(eval_sets or {})
    callbacks = list(callbacks or [])
    # Callbacks with ``on_batch_end()`` run after every minibatch: a safe point to stop at (a
    # stopping signal is honoured there, never in the middle of a storage write).
    batch_hooks = [cb.on_batch_end for cb in callbacks if hasattr(cb, "on_batch_end")]
    train_eval = train_eval if train_eval is not None else (x, y)
    n = len(x)
    metric = config.monitor
    maximise = metric.endswith("_accuracy")
    sign = -1.0 if maximise else 1.0  # compare sign * value, lower is better
    blowup = config.divergence_factor * math.log(max(2, net.sizes[-1]))
    grad = np.zeros_like(net.params)
    workspace = net.workspace(config.batch_size)
    best_params = net.params.copy()
    nw = net.n_weights
    # The penalties (weights only, never biases) write strength * w or strength * sign(w) here.
    penalty_tmp = np.empty(nw, dtype=net.dtype) if config.l1 or config.l2 else None
    result = TrainResult(best_value=math.inf)
    started = time.perf_counter()
    use_dropout = config.dropout > 0 or config.input_dropout > 0
    average = net.params.copy() if config.ema_decay > 0 else None
    live = np.empty_like(net.params) if average is not None else None  # weights being trained
    steps = 0

    for epoch in range(config.max_epochs):
        lr = schedule.rate(epoch)
        perm = rng.permutation(n)
        finite = True
        for start in range(0, n, config.batch_size):
            # Gathering each minibatch (a few hundred KB, cache-resident) is far cheaper than
            # permuting the whole training set into a fresh array every epoch.
            idx = perm[start:start + config.batch_size]
            xb, yb = x[idx], y[idx]
            logits, cache = net.forward(xb, rng if use_dropout else None,
                                        config.dropout, config.input_dropout, out=workspace)
            loss, dlogits = softmax_cross_entropy_grad(logits, yb)
            if not math.isfinite(loss):
                finite = False
                break
            net.backward(cache, dlogits, grad)
            if config.l2:
                l2_penalty_grad(net.params[:nw], config.l2, grad[:nw], tmp=penalty_tmp)
            if config.l1:
                l1_penalty_grad(net.params[:nw], config.l1, grad[:nw], tmp=penalty_tmp)
            optimizer.step(net.params, grad, lr)
            for hook in batch_hooks:
                hook()
            if average is not None:
                # average += (1 - decay) * (params - average); grad is free until backward.
                decay = min(config.ema_decay, (1 + steps) / (10 + steps))
                steps += 1
                np.subtract(net.params, average, out=grad)
                grad *= net.dtype.type(1 - decay)
                average += grad

        if average is not None and live is not None:  # measure (and keep) the average
            optimizer.flush(average)  # it decays by 0.7 an epoch at most: once is enough
            np.copyto(live, net.params)
            np.copyto(net.params, average)
        record: Record = {"epoch": epoch + 1, "learning_rate": lr}
        if finite:
            record["train_loss"], record["train_accuracy"] = evaluate(net, *train_eval)
            for name, (xe, ye) in eval_sets.items():
                record[f"{name}_loss"], record[f"{name}_accuracy"] = evaluate(net, xe, ye)
        if not finite or not math.isfinite(record["train_loss"]) or record["train_loss"] > blowup:
            # Keep the record honest (inf) rather than crash; the best weights are restored below.
            for key in ["train_loss", *[f"{name}_loss" for name in eval_sets]]:
                record.setdefault(key, math.inf)
            for key in ["train_accuracy", *[f"{name}_accuracy" for name in eval_sets]]:
                record.setdefault(key, math.nan)
            result.history.append(record)
            result.status = DIVERGED
            result.reason = (f"training loss {record['train_loss']:.4g} at epoch {epoch + 1} "
                             f"(non-finite or above {blowup:.3g}): learning rate too high?")
            _fire(callbacks, record)
            break

        result.history.append(record)
        value = record[metric]
        if sign * value < sign * result.best_value or result.best_epoch == 0:
            result.best_value, result.best_epoch = value, epoch + 1
            np.copyto(best_params, net.params)
        if live is not None:
            np.copyto(net.params, live)  # training goes on from the live weights
        schedule.observe(sign * value)
        if _fire(callbacks, record):
            result.status, result.reason = STOPPED, f"stopped by a callback at epoch {epoch + 1}"
            break
        if config.patience is not None and epoch + 1 - result.best_epoch >= config.patience:
            result.status = EARLY_STOPPED
            result.reason = (f"{metric} did not improve for {config.patience} epochs after "
                             f"epoch {result.best_epoch}")
            break

    if result.best_epoch == 0:
        result.best_value = math.nan
    if config.restore_best or result.status == DIVERGED:
        np.copyto(net.params, best_params)
    else:
        result.best_epoch = len(result.history)
        if average is not None:
            np.copyto(net.params, average)
    result.train_time_s = time.perf_counter() - started
    return result
