"""MLPClassifier: a scikit-learn estimator around the NumPy engine in ``hpsearch.nn``.

``__init__`` only stores parameters; everything is validated and resolved in ``fit``; fitted
attributes end in ``_``. Preprocessing is part of the model (fitted on the training data only), so
a fitted or loaded model takes raw features, e.g. 0-255 pixel values.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..nn import Network, TrainConfig, make_optimizer, make_schedule, train
from ..nn.functional import softmax
from . import checkpoint, state
from .columns import table_features
from .frames import history_frame, prediction_frame  # 0.1 exports' serving.py imports it here
from .params import PARAMETERS
from .preprocessing import apply_input_transform, input_transform


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier: ReLU hidden layers, softmax output, cross-entropy loss.

    Parameters
    ----------
    hidden_sizes : tuple of int
        Units in each hidden layer, e.g. ``(128,)`` or ``(256, 128)``.
    optimizer : {"sgd", "momentum", "rmsprop", "adam", "adamw"}
    learning_rate : float
        Base learning rate; the schedule scales it per epoch.
    schedule : {"constant", "step", "exponential", "cosine", "inverse_time", "plateau"}
    l2, l1 : float
        Penalty strengths on the weights (never the biases): ``0.5 * l2 * sum(w**2)`` and
        ``l1 * sum(|w|)`` added to the mean minibatch cross-entropy.
    dropout, input_dropout : float in [0, 1)
        Inverted-dropout rate on hidden activations / on the inputs; off at predict time.
    batch_size, max_epochs : int
    early_stopping_patience : int or None
        Stop after this many epochs without improvement of ``monitor``; None trains all epochs.
    monitor : str or None
        ``"<set>_loss"`` or ``"<set>_accuracy"`` for ``set`` in ``train`` or an eval-set name.
        None: ``val_loss`` when an eval set named ``val`` is given, else the first eval set's
        loss, else ``train_loss``. Early stopping, the plateau schedule and the best epoch use it.
    restore_best_weights : bool
        At the end of fit, restore the weights of the best epoch by ``monitor``.
    ema_decay : float in [0, 1)
        Weight averaging: keep an exponential moving average of the weights, updated after every
        minibatch step with this decay (e.g. 0.999, an average over roughly the last 1,000
        steps; warmed up as ``min(ema_decay, (1 + t) / (10 + t))``). Every epoch's metrics, the
        best epoch and the fitted model use the averaged weights. 0 (default) switches it off.
    momentum, nesterov : momentum optimizer settings.
    beta1, beta2, eps, rho, weight_decay : Adam/AdamW/RMSProp settings (weight_decay: AdamW).
    step_size, gamma, min_lr, decay_rate, plateau_patience, warmup_epochs : schedule settings.
        ``gamma=None`` means the schedule's own default (step 0.5, exponential 0.95, plateau 0.5).
    preprocessing : {"standardize", "scale", "none"}
        Fitted on the training data only. ``scale`` divides by the largest absolute value (pixels).
    train_eval_size : int or None
        Training loss/accuracy per epoch are measured without dropout on a fixed stratified
        subsample of this many training samples (None: the whole training set).
    dtype : {"float32", "float64"}
    random_state : int, RandomState or None
        Seeds initialisation, shuffling and dropout: same seed and data give identical weights.
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (100,),
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        schedule: str = "constant",
        l2: float = 0.0,
        l1: float = 0.0,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        batch_size: int = 128,
        max_epochs: int = 50,
        early_stopping_patience: int | None = None,
        monitor: str | None = None,
        restore_best_weights: bool = True,
        ema_decay: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = False,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        rho: float = 0.9,
        weight_decay: float = 0.01,
        step_size: int = 10,
        gamma: float | None = None,
        min_lr: float = 0.0,
        decay_rate: float = 0.5,
        plateau_patience: int = 3,
        warmup_epochs: int = 0,
        preprocessing: str = "standardize",
        train_eval_size: int | None = 10_000,
        dtype: str = "float32",
        random_state: Any = None,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.l2 = l2
        self.l1 = l1
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping_patience = early_stopping_patience
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights
        self.ema_decay = ema_decay
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.rho = rho
        self.weight_decay = weight_decay
        self.step_size = step_size
        self.gamma = gamma
        self.min_lr = min_lr
        self.decay_rate = decay_rate
        self.plateau_patience = plateau_patience
        self.warmup_epochs = warmup_epochs
        self.preprocessing = preprocessing
        self.train_eval_size = train_eval_size
        self.dtype = dtype
        self.random_state = random_state

    # -- validation -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        """ValueError naming the first parameter (in ``PARAMETERS`` order) out of its bounds.
        (Overrides scikit-learn's method of the same name and purpose, which would read a
        ``_parameter_constraints`` table this estimator does not have.)"""
        for name, constraint in PARAMETERS.items():
            value = getattr(self, name)
            why = constraint.problem(value)
            if why is not None:
                raise ValueError(f"{name}={value!r}: {why}")

    def _rng(self) -> np.random.Generator:
        rs = self.random_state
        if rs is None or isinstance(rs, numbers.Integral):
            return np.random.default_rng(None if rs is None else int(rs))
        if isinstance(rs, np.random.RandomState):
            return np.random.default_rng(rs.randint(2**31 - 1))
        if isinstance(rs, np.random.Generator):
            return rs
        raise ValueError(f"random_state={rs!r}: use None, an int or a RandomState")

    # -- preprocessing --------------------------------------------------------------------
    def _fit_preprocessing(self, x: np.ndarray) -> None:
        self.input_offset_, self.input_scale_ = input_transform(x, self.preprocessing,
                                                                np.dtype(self.dtype))

    def _transform(self, x: np.ndarray) -> np.ndarray:
        if self.preprocessing == "none":  # offset 0, scale 1: no copy
            return x
        return apply_input_transform(x, self.input_offset_, self.input_scale_)

    def set_input_transform(self, preprocessing: str, offset: np.ndarray,
                            scale: np.ndarray) -> MLPClassifier:
        """For a model fitted with ``preprocessing="none"`` on inputs that were already
        transformed as ``(x - offset) * scale`` (see ``input_transform``): make it take raw
        features again, exactly as if it had been fitted with ``preprocessing``. A sweep
        transforms its splits once for all trials instead of once per trial."""
        check_is_fitted(self, "net_")
        if self.preprocessing != "none":
            raise ValueError("set_input_transform needs a model fitted with preprocessing='none'")
        self.input_offset_ = np.asarray(offset, dtype=self.dtype)
        self.input_scale_ = np.asarray(scale, dtype=self.dtype)
        self.preprocessing = preprocessing
        return self

    def _labels_to_index(self, y: Any, name: str) -> np.ndarray:
        y = np.asarray(y)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(f"eval set {name!r} has labels not seen in training: "
                             f"{np.unique(y[unknown])[:5].tolist()}")
        return idx.astype(np.intp)

    # -- fit / predict --------------------------------------------------------------------
    def fit(self, X: Any, y: Any, eval_sets: Mapping[str, tuple[Any, Any]] | None = None,
            callbacks: list[Any] | None = None) -> MLPClassifier:
        """Train on (X, y). ``eval_sets={"val": (Xv, yv), ...}`` are measured every epoch and
        recorded in ``history_``; ``callbacks`` get each epoch's record and may stop training."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.dtype(self.dtype), reset=True)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"the target needs at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r})")
        rng = self._rng()
        self._fit_preprocessing(X)
        x = self._transform(X)

        sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (xe, ye) in (eval_sets or {}).items():
            if name == "train":
                raise ValueError("'train' is reserved for the training metrics; rename the set")
            xe = validate_data(self, xe, dtype=np.dtype(self.dtype), reset=False)
            sets[name] = (self._transform(xe), self._labels_to_index(column_or_1d(ye), name))
        monitor = self._resolve_monitor(sets)

        train_eval = (x, y_idx)
        tes = self.train_eval_size
        if tes is not None and len(x) > tes:
            seed = int(rng.integers(2**31 - 1))
            keep, _ = train_test_split(np.arange(len(x)), train_size=tes, random_state=seed,
                                       stratify=y_idx if tes >= len(self.classes_) else None)
            keep = np.sort(keep)
            train_eval = (x[keep], y_idx[keep])

        sizes = [x.shape[1], *map(int, self.hidden_sizes), len(self.classes_)]
        net = Network(sizes, dtype=self.dtype)
        net.init_he(rng)
        hyper = {k: getattr(self, k) for k in
                 ("momentum", "nesterov", "beta1", "beta2", "eps", "rho", "weight_decay")}
        opt = make_optimizer(self.optimizer, net.n_params, net.dtype, net.n_weights, **hyper)
        sched = make_schedule(self.schedule, self.learning_rate, self.warmup_epochs,
                              step_size=self.step_size, gamma=self.gamma, min_lr=self.min_lr,
                              decay_rate=self.decay_rate, max_epochs=self.max_epochs,
                              plateau_patience=self.plateau_patience)
        config = TrainConfig(
            batch_size=self.batch_size, max_epochs=self.max_epochs, dropout=self.dropout,
            input_dropout=self.input_dropout, l1=self.l1, l2=self.l2, monitor=monitor,
            patience=self.early_stopping_patience, restore_best=self.restore_best_weights,
            ema_decay=float(self.ema_decay))
        result = train(net, opt, sched, x, y_idx, config, rng, sets, train_eval, callbacks)

        self.net_ = net
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.best_score_ = result.best_value
        self.monitor_ = monitor
        self.status_ = result.status
        self.stop_reason_ = result.reason
        self.n_epochs_ = len(result.history)
        self.train_time_s_ = result.train_time_s
        return self

    def _resolve_monitor(self, sets: Mapping[str, Any]) -> str:
        if self.monitor is None:
            if "val" in sets:
                return "val_loss"
            return f"{next(iter(sets))}_loss" if sets else "train_loss"
        name, _, metric = str(self.monitor).rpartition("_")
        if metric not in ("loss", "accuracy") or (name != "train" and name not in sets):
            raise ValueError(f"monitor={self.monitor!r}: use '<set>_loss' or '<set>_accuracy' "
                             f"with set in {['train', *sets]}")
        return str(self.monitor)

    @property
    def coefs_(self) -> list[np.ndarray]:
        check_is_fitted(self, "net_")
        return self.net_.weights

    @property
    def intercepts_(self) -> list[np.ndarray]:
        check_is_fitted(self, "net_")
        return self.net_.biases

    def _inputs(self, X: Any) -> np.ndarray:
        """``X`` checked as scikit-learn does; one 1-D row of the model's features is one sample."""
        check_is_fitted(self, "net_")
        X = table_features(getattr(self, "columns_", None), X)  # a table's rows, as they are
        if not hasattr(X, "columns") and (row := np.asarray(X)).ndim == 1:
            if row.shape[0] != self.n_features_in_:  # several samples are a 2-D array
                raise ValueError(f"X is one sample of {row.shape[0]} values; the model takes "
                                 f"{self.n_features_in_} features")
            X = row[None, :]
        return validate_data(self, X, dtype=np.dtype(self.dtype), reset=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        x = self._inputs(X)  # first: an unfitted model raises NotFittedError
        logits = self.net_.logits(self._transform(x))
        return softmax(logits, out=logits)

    def predict(self, X: Any) -> np.ndarray:
        x = self._inputs(X)
        return self.classes_[self.net_.logits(self._transform(x)).argmax(axis=1)]

    # -- state and checkpoints ------------------------------------------------------------
    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as ``checkpoint.write`` takes it (model/state.py)."""
        check_is_fitted(self, "net_")
        return state.to_state(self)

    @classmethod
    def from_checkpoint_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                              source: str | Path) -> MLPClassifier:
        """The fitted model that ``checkpoint_state`` described (model/state.py)."""
        return state.from_state(cls, meta, arrays, source)

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to directory ``path`` (weights.npz + checkpoint.json)."""
        return checkpoint.save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> MLPClassifier:
        """Load a model saved with ``save``; never unpickles anything."""
        meta, arrays = checkpoint.read(path)
        return cls.from_checkpoint_state(meta, arrays, Path(path) / checkpoint.META)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


# checkpoint.load_model and checkpoint.load (kept for the modules that import them from there)
# build models with this; checkpoint.py itself never imports the estimator.
checkpoint.register_model(MLPClassifier.load)

__all__ = ["PARAMETERS", "MLPClassifier", "history_frame", "prediction_frame"]
