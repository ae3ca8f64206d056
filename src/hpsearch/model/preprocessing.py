"""The input transform a model stores with itself, so that it takes raw features: fitted on the
training data only, applied as ``(x - offset) * scale``. A worker fits it once and transforms its
splits for every trial (``MLPClassifier.set_input_transform``)."""

from __future__ import annotations

import numpy as np


def input_transform(x: np.ndarray, preprocessing: str,
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) of a preprocessing fitted on x: ``standardize`` (mean, 1/std per
    feature), ``scale`` (0, 1/max |x|), ``none`` (0, 1). Constant features are left unscaled."""
    n_features = x.shape[1]
    if preprocessing == "standardize":
        offset = x.mean(axis=0, dtype=np.float64)
        spread = x.std(axis=0, dtype=np.float64)
    elif preprocessing == "scale":
        offset = np.zeros(n_features)
        spread = np.full(n_features, float(np.abs(x).max()) if x.size else 1.0)
    else:
        offset, spread = np.zeros(n_features), np.ones(n_features)
    spread[~(spread > 0)] = 1.0  # constant features: leave them centred, not divided by 0
    return offset.astype(dtype), (1.0 / spread).astype(dtype)


def apply_input_transform(x: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(x - offset) * scale`` as a new array of the offset's dtype."""
    out = np.subtract(x, offset, dtype=offset.dtype)
    out *= scale
    return out
