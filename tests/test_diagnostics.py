"""Diagnosis: every verdict on synthetic histories, and on real digits trials built to over- and
underfit."""

from __future__ import annotations

import math

import pytest

from hpsearch import MLPClassifier
from hpsearch.diagnosis.diagnostics import THRESHOLDS, VERDICTS, diagnose, revisit
from hpsearch.spec import datasets


def hist(train_acc, val_acc, train_loss=None, val_loss=None):
    n = len(train_acc)
    train_loss = train_loss or [1.0 - 0.9 * a for a in train_acc]
    val_loss = val_loss or [1.0 - 0.9 * a for a in val_acc]
    return [{"epoch": i + 1, "learning_rate": 0.01, "train_loss": train_loss[i],
             "train_accuracy": train_acc[i], "val_loss": val_loss[i],
             "val_accuracy": val_acc[i]} for i in range(n)]


def ramp(a, b, n):
    return [a + (b - a) * i / (n - 1) for i in range(n)]


SYNTHETIC = {
    "good_fit": hist(ramp(0.6, 0.97, 10) + [0.97] * 10, ramp(0.6, 0.95, 10) + [0.95] * 10),
    "overfitting": hist(ramp(0.6, 1.0, 20), ramp(0.6, 0.93, 8) + ramp(0.93, 0.88, 12),
                        val_loss=ramp(1.0, 0.3, 8) + ramp(0.3, 0.6, 12)),
    "underfitting": hist(ramp(0.3, 0.55, 10) + [0.55] * 10, ramp(0.3, 0.54, 10) + [0.54] * 10),
    "undertrained": hist(ramp(0.3, 0.85, 20), ramp(0.3, 0.83, 20)),
    "diverged": hist([0.5, 0.3, 0.1], [0.5, 0.3, 0.1], train_loss=[1.0, 2.0, math.inf]),
    "stalled": hist([0.10, 0.11, 0.10, 0.11], [0.10, 0.10, 0.11, 0.10],
                    train_loss=[2.30, 2.29, 2.30, 2.29]),
}


@pytest.mark.parametrize("verdict", VERDICTS)
def test_each_verdict_on_a_synthetic_history(verdict):
    d = diagnose(SYNTHETIC[verdict], max_epochs=len(SYNTHETIC[verdict]))
    assert d.verdict == verdict, d.summary
    assert d.advice and d.summary and "\n" not in d.summary


def test_evidence_numbers():
    d = diagnose(SYNTHETIC["overfitting"], max_epochs=20)
    ev = d.evidence
    assert ev["val_drop_from_peak"] == pytest.approx(0.05)
    assert ev["epochs_since_peak"] == 12
    assert ev["gap_at_last"] == pytest.approx(0.12)
    assert ev["val_loss_rise"] == pytest.approx(1.0)  # 0.3 -> 0.6
    assert "dropout" in d.advice and "L2" in d.advice


def test_undertrained_needs_the_budget_stop():
    h = SYNTHETIC["undertrained"]
    assert diagnose(h, max_epochs=20).verdict == "undertrained"
    assert diagnose(h, max_epochs=100).verdict != "undertrained"  # stopped early: not budget


def test_underfitting_relative_to_the_study():
    h = hist(ramp(0.6, 0.86, 10) + [0.86] * 10, ramp(0.6, 0.85, 10) + [0.85] * 10)
    assert diagnose(h, max_epochs=20).verdict == "good_fit"
    d = diagnose(h, max_epochs=20, study_best_train_accuracy=0.99)
    assert d.verdict == "underfitting"
    assert d.evidence["train_accuracy_vs_study_best"] == pytest.approx(-0.13)


def test_revisit_applies_the_underfitting_rule_with_the_final_reference():
    h = hist(ramp(0.6, 0.86, 10) + [0.86] * 10, ramp(0.6, 0.85, 10) + [0.85] * 10)
    d = diagnose(h, max_epochs=20)  # the study's first trial: nothing to compare with
    ev = d.evidence
    args = (ev["train_accuracy_at_best"], ev["gap_at_best"])
    new = revisit(d.verdict, *args, 0.99)
    assert new is not None and new[0] == "underfitting"
    # the same verdict and summary as diagnosing with that reference from the start
    later = diagnose(h, max_epochs=20, study_best_train_accuracy=0.99)
    assert new == (later.verdict, later.summary)
    assert revisit(d.verdict, *args, 0.90) is None  # within underfit_margin (0.05)
    assert revisit(d.verdict, *args, None) is None
    assert revisit(d.verdict, *args, 0.90, {"underfit_margin": 0.03})[0] == "underfitting"
    assert revisit("overfitting", *args, 0.99) is None  # rules 1-4 stand
    # a moderate gap (between gap / 2 and gap) no longer hides it: trial 0 of a quickstart run
    # (train 0.930, validation 0.886, study best 1.0) had been called good_fit
    assert revisit("good_fit", 0.930, 0.044, 1.0)[0] == "underfitting"
    assert revisit("good_fit", 0.930, 0.07, 1.0) is None  # beyond the gap threshold


def test_thresholds_are_settable():
    h = hist(ramp(0.6, 0.99, 10) + [0.99] * 10, ramp(0.6, 0.95, 10) + [0.95] * 10)
    assert diagnose(h).verdict == "good_fit"  # gap 0.04 < 0.06
    assert diagnose(h, thresholds={"gap": 0.03}).verdict == "overfitting"
    assert set(THRESHOLDS) >= {"gap", "val_drop", "slope", "window"}


@pytest.fixture(scope="module")
def digits():
    sp = datasets.split(datasets.load("digits"), 0.2, 0.2, seed=0)
    return sp.train, sp.val


def test_a_real_trial_built_to_overfit(digits):
    (x, y), val = digits
    m = MLPClassifier(hidden_sizes=(512,), learning_rate=3e-3, batch_size=32, max_epochs=150,
                      random_state=0)
    m.fit(x[:150], y[:150], eval_sets={"val": val})  # 150 samples, no regularisation
    d = diagnose(m.history_, m.best_epoch_, 150)
    assert d.verdict == "overfitting", d.summary
    assert d.evidence["gap_at_best"] > 0.1


def test_a_real_trial_built_to_underfit(digits):
    (x, y), val = digits
    m = MLPClassifier(hidden_sizes=(2,), l2=0.1, max_epochs=60, random_state=0)
    m.fit(x, y, eval_sets={"val": val})
    d = diagnose(m.history_, m.best_epoch_, 60, study_best_train_accuracy=1.0)
    assert d.verdict == "underfitting", d.summary
    assert d.evidence["train_accuracy_at_best"] < 0.7


def test_a_real_diverged_trial(digits):
    (x, y), val = digits
    m = MLPClassifier(hidden_sizes=(64,), optimizer="sgd", learning_rate=5.0, max_epochs=20,
                      random_state=0).fit(x, y, eval_sets={"val": val})
    assert diagnose(m.history_, m.best_epoch_, 20, status=m.status_).verdict == "diverged"
