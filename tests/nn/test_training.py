"""The training loop: reproducibility, early stopping, best-epoch restore, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from hpsearch import MLPClassifier


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    return x[idx[:1200]], y[idx[:1200]], x[idx[1200:]], y[idx[1200:]]


def test_same_seed_same_weights(digits):
    xtr, ytr, _, _ = digits
    kw = dict(hidden_sizes=(32,), max_epochs=3, dropout=0.2, random_state=5)
    a = MLPClassifier(**kw).fit(xtr, ytr)
    b = MLPClassifier(**kw).fit(xtr, ytr)
    c = MLPClassifier(**{**kw, "random_state": 6}).fit(xtr, ytr)
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    assert a.history_ == b.history_


def test_history_records_every_set(digits):
    xtr, ytr, xv, yv = digits
    m = MLPClassifier(hidden_sizes=(16,), max_epochs=4, schedule="step", step_size=2,
                      random_state=0).fit(xtr, ytr, eval_sets={"val": (xv, yv), "test": (xv, yv)})
    assert [r["epoch"] for r in m.history_] == [1, 2, 3, 4]
    assert set(m.history_[0]) == {"epoch", "learning_rate", "train_loss", "train_accuracy",
                                  "val_loss", "val_accuracy", "test_loss", "test_accuracy"}
    assert [r["learning_rate"] for r in m.history_] == [1e-3, 1e-3, 5e-4, 5e-4]
    assert m.monitor_ == "val_loss"


def test_early_stopping_restores_the_best_epoch(digits):
    """A wide net on 150 samples overfits: validation loss turns up while training improves."""
    xtr, ytr, xv, yv = digits
    m = MLPClassifier(hidden_sizes=(512,), learning_rate=3e-3, max_epochs=200,
                      early_stopping_patience=10, batch_size=32, random_state=0)
    m.fit(xtr[:150], ytr[:150], eval_sets={"val": (xv, yv)})
    val = [r["val_loss"] for r in m.history_]
    best = int(np.argmin(val)) + 1
    assert m.status_ == "early_stopped"
    assert m.best_epoch_ == best
    assert len(m.history_) == best + 10
    assert m.history_[-1]["train_loss"] < m.history_[best - 1]["train_loss"]  # kept improving
    # The restored weights are the best epoch's: re-measure the validation loss.
    from hpsearch.nn.functional import cross_entropy

    proba = m.predict_proba(xv)
    measured = cross_entropy(np.log(np.clip(proba, 1e-30, None)), np.searchsorted(m.classes_, yv))
    assert measured == pytest.approx(val[best - 1], rel=1e-4)


def test_divergence_is_recorded_not_raised(digits):
    xtr, ytr, xv, yv = digits
    m = MLPClassifier(hidden_sizes=(64,), optimizer="sgd", learning_rate=5.0, max_epochs=20,
                      random_state=0)
    m.fit(xtr, ytr, eval_sets={"val": (xv, yv)})
    assert m.status_ == "diverged"
    assert "learning rate" in m.stop_reason_
    assert len(m.history_) < 20
    assert not math.isfinite(m.history_[-1]["train_loss"]) or m.history_[-1]["train_loss"] > 20
    proba = m.predict_proba(xv)
    assert np.all(np.isfinite(proba))  # best (or initial) weights restored, no NaN predictions


def test_callback_can_stop_training(digits):
    xtr, ytr, xv, yv = digits
    seen = []

    class StopAtThree:
        def on_epoch_end(self, record):
            seen.append(record["epoch"])
            return record["epoch"] == 3

    m = MLPClassifier(hidden_sizes=(8,), max_epochs=10, random_state=0)
    m.fit(xtr, ytr, eval_sets={"val": (xv, yv)}, callbacks=[StopAtThree(), seen.append])
    assert m.status_ == "stopped" and len(m.history_) == 3
    assert seen[::2] == [1, 2, 3]


def test_plateau_schedule_uses_the_monitor(digits):
    xtr, ytr, xv, yv = digits
    m = MLPClassifier(hidden_sizes=(256,), schedule="plateau", plateau_patience=1,
                      learning_rate=0.01, max_epochs=15, random_state=0)
    m.fit(xtr[:150], ytr[:150], eval_sets={"val": (xv, yv)})
    lrs = [r["learning_rate"] for r in m.history_]
    assert lrs[0] == 0.01 and min(lrs) < 0.01


def _trajectory_run(digits, ema_decay: float, restore_best: bool):
    """A small digits net trained with ``train`` directly, recording the weights after every
    optimizer step (float64 copies): 1,200 samples in batches of 100, 12 steps an epoch."""
    from hpsearch.nn import Network, TrainConfig, make_optimizer, make_schedule, train

    xtr, ytr, xv, yv = digits
    x, xe = (xtr / 16).astype(np.float32), (xv / 16).astype(np.float32)
    net = Network([64, 16, 10])
    net.init_he(np.random.default_rng(0))
    start = net.params.astype(np.float64)
    opt = make_optimizer("adam", net.n_params, net.dtype, net.n_weights)
    steps = []
    real_step = opt.step

    def step(params, grad, lr):
        real_step(params, grad, lr)
        steps.append(params.astype(np.float64))

    opt.step = step  # type: ignore[method-assign]
    config = TrainConfig(batch_size=100, max_epochs=4, monitor="val_accuracy",
                         ema_decay=ema_decay, restore_best=restore_best)
    result = train(net, opt, make_schedule("constant", 3e-3), x, ytr, config,
                   np.random.default_rng(1), eval_sets={"val": (xe, yv)})
    return net, start, steps, result, (xe, yv)


def _moving_average(start, steps, ema_decay):
    average = start.copy()
    for t, params in enumerate(steps):
        decay = min(ema_decay, (1 + t) / (10 + t))
        average += (1 - decay) * (params - average)
    return average


def test_weight_averaging_returns_the_warmed_up_moving_average(digits):
    net, start, steps, _, _ = _trajectory_run(digits, 0.95, restore_best=False)
    assert len(steps) == 4 * 12
    np.testing.assert_allclose(net.params, _moving_average(start, steps, 0.95), atol=1e-5)
    assert np.abs(net.params - steps[-1]).max() > 1e-3  # not the last trained weights


def test_weight_averaging_does_not_change_the_training_path(digits):
    """The average is measured and kept, but training goes on from the trained weights."""
    _, _, plain, _, _ = _trajectory_run(digits, 0.0, restore_best=True)
    _, _, averaged, _, _ = _trajectory_run(digits, 0.95, restore_best=True)
    for a, b in zip(plain, averaged, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_best_epoch_keeps_its_average_and_its_measured_score(digits):
    from hpsearch.nn.training import evaluate

    net, start, steps, result, (xe, ye) = _trajectory_run(digits, 0.95, restore_best=True)
    best = result.best_epoch
    expected = _moving_average(start, steps[:best * 12], 0.95)
    np.testing.assert_allclose(net.params, expected, atol=1e-5)
    loss, accuracy = evaluate(net, xe, ye)
    assert accuracy == result.history[best - 1]["val_accuracy"]
    assert loss == pytest.approx(result.history[best - 1]["val_loss"], rel=1e-5)


def test_penalties_pull_on_the_weights_not_the_biases(digits):
    """The gradient the optimizer gets is the loss gradient plus l2 * w + l1 * sign(w) on the
    weight prefix, and the loss gradient alone on the biases (one full batch, no dropout)."""
    from hpsearch.nn import Network, TrainConfig, make_optimizer, make_schedule, train
    from hpsearch.nn.functional import softmax_cross_entropy_grad

    xtr, ytr, _, _ = digits
    x = (xtr[:200] / 16).astype(np.float64)
    y = ytr[:200]
    net = Network([64, 8, 10], dtype=np.float64)
    net.init_he(np.random.default_rng(0))
    net.params[net.n_weights:] = 0.1
    logits, cache = net.forward(x)
    _, dlogits = softmax_cross_entropy_grad(logits, y)
    loss_grad = net.backward(cache, dlogits, np.zeros_like(net.params))
    w = net.params[:net.n_weights].copy()
    opt = make_optimizer("sgd", net.n_params, net.dtype, net.n_weights)
    seen = []
    real_step = opt.step

    def step(params, grad, lr):
        seen.append(grad.copy())
        real_step(params, grad, lr)

    opt.step = step  # type: ignore[method-assign]
    config = TrainConfig(batch_size=200, max_epochs=1, l2=0.01, l1=0.001)
    train(net, opt, make_schedule("constant", 0.1), x, y, config, np.random.default_rng(1))
    assert len(seen) == 1
    expected = loss_grad.copy()
    expected[:net.n_weights] += 0.01 * w + 0.001 * np.sign(w)
    # The minibatch is the data in permuted order: equal up to the order of the sums.
    np.testing.assert_allclose(seen[0], expected, rtol=1e-12, atol=1e-15)
