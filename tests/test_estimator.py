"""MLPClassifier as a scikit-learn estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from hpsearch import MLPClassifier
from hpsearch.model.params import ESTIMATOR_ARGS, PARAMETERS

# Every scikit-learn estimator check runs; none is skipped, one fails on purpose. (Small
# max_epochs keeps them quick; the defaults otherwise.)
ONE_SAMPLE = ("predict and predict_proba take one sample given as a 1-D row of the model's "
              "feature count (what a user holds after X[0]); any other 1-D input still raises")


@parametrize_with_checks([MLPClassifier(max_epochs=30, random_state=0)],
                         expected_failed_checks=lambda est: {
                             "check_fit2d_predict1d": ONE_SAMPLE})
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_digits_accuracy_floor():
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    m = MLPClassifier(hidden_sizes=(128,), max_epochs=40, random_state=0).fit(xtr, ytr)
    assert m.score(xte, yte) >= 0.95


def test_clone_pipeline_and_cross_validation():
    x, y = load_digits(return_X_y=True)
    m = MLPClassifier(hidden_sizes=(64,), max_epochs=40, random_state=0)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "net_")
    pipe = make_pipeline(FunctionTransformer(lambda a: a / 16.0), c)
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.min() > 0.85


def test_string_labels_and_predict_proba():
    x, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])[y]
    m = MLPClassifier(hidden_sizes=(32,), max_epochs=10, random_state=0).fit(x, names)
    proba = m.predict_proba(x[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert set(m.predict(x)) <= set(names)
    assert list(m.classes_) == sorted(set(names))


@pytest.mark.parametrize("param,value,match", [
    ("optimizer", "adagrad", "optimizer='adagrad': unknown"),
    ("schedule", "linear", "schedule='linear': unknown"),
    ("hidden_sizes", (0,), "hidden_sizes"),
    ("dropout", 1.0, "dropout=1.0"),
    ("learning_rate", -1.0, "learning_rate=-1.0"),
    ("ema_decay", 1.0, "ema_decay=1.0"),
    ("monitor", "holdout_loss", "monitor='holdout_loss'"),
    ("gamma", 0.0, r"gamma=0.0: must be in \(0, 1\]$"),
    ("batch_size", 0, "batch_size=0: must be a whole number >= 1$"),
    ("early_stopping_patience", 0, "must be None or a whole number >= 1$"),
    ("eps", 0.0, "eps=0.0: must be > 0$"),
    ("preprocessing", "minmax", r"preprocessing='minmax': choose from \['standardize', "),
])
def test_bad_parameters_fail_in_fit(param, value, match):
    x, y = load_digits(return_X_y=True)
    m = MLPClassifier(**{param: value})  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        m.fit(x[:50], y[:50])


def test_parameter_table_names_parameters():
    """Every entry of the one table of bounds is a constructor parameter, and every default
    satisfies its own entry."""
    defaults = MLPClassifier().get_params()
    assert set(PARAMETERS) <= set(defaults)
    assert set(defaults) == ESTIMATOR_ARGS  # what spec/config.py knows without scikit-learn
    assert all(c.problem(defaults[name]) is None for name, c in PARAMETERS.items())


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(np.zeros((5, 2)), np.ones(5))


@pytest.mark.parametrize("preprocessing", ["standardize", "scale"])
def test_fitting_on_pretransformed_inputs_equals_fitting_with_preprocessing(preprocessing):
    """The sweep's path: transform the splits once, fit with preprocessing='none', then
    set_input_transform. Same history and the same predictions on raw features, bit for bit."""
    from hpsearch.model.preprocessing import apply_input_transform, input_transform

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    Xtr, Xv, ytr, yv = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    params = dict(hidden_sizes=(32,), max_epochs=5, random_state=0, dropout=0.1)
    direct = MLPClassifier(preprocessing=preprocessing, **params).fit(
        Xtr, ytr, eval_sets={"val": (Xv, yv)})
    offset, scale = input_transform(Xtr, preprocessing, np.dtype(np.float32))
    pre = MLPClassifier(preprocessing="none", **params).fit(
        apply_input_transform(Xtr, offset, scale), ytr,
        eval_sets={"val": (apply_input_transform(Xv, offset, scale), yv)})
    pre.set_input_transform(preprocessing, offset, scale)
    assert pre.history_ == direct.history_
    assert pre.get_params()["preprocessing"] == preprocessing
    np.testing.assert_array_equal(pre.predict_proba(Xv), direct.predict_proba(Xv))
    with pytest.raises(ValueError, match="preprocessing='none'"):
        direct.set_input_transform(preprocessing, offset, scale)
