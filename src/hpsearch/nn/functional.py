"""Small numerical kernels: activations, softmax cross-entropy, dropout masks, penalties.

Every kernel works for float32 and float64 alike and writes in place where it can: the training
loop calls them once per minibatch, so avoiding temporaries matters more than elegance here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray


def relu(z: Array, out: Array | None = None) -> Array:
    """max(z, 0), in place when ``out is z``."""
    return np.maximum(z, 0, out=out)


def relu_backward(grad: Array, activation: Array) -> Array:
    """Multiply ``grad`` in place by relu'(z), read off the activation (a > 0 iff z > 0)."""
    grad *= activation > 0
    return grad


def identity(z: Array, out: Array | None = None) -> Array:
    if out is not None and out is not z:
        out[...] = z
        return out
    return z


def identity_backward(grad: Array, activation: Array) -> Array:
    return grad


# name -> (forward, backward). Resolved once in fit, like scikit-learn's ACTIVATIONS.
ACTIVATIONS: dict[str, tuple[Callable[..., Array], Callable[[Array, Array], Array]]] = {
    "relu": (relu, relu_backward),
    "identity": (identity, identity_backward),
}


def log_softmax(logits: Array) -> Array:
    """Row-wise log softmax, numerically stable (shift by the row max)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(logits: Array, out: Array | None = None) -> Array:
    """Row-wise softmax; ``out=logits`` overwrites the logits with probabilities."""
    out = np.subtract(logits, logits.max(axis=1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def cross_entropy(logits: Array, y: Array) -> float:
    """Mean negative log-likelihood of integer labels ``y`` under softmax(logits)."""
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(y)), y].mean())


def softmax_cross_entropy_grad(logits: Array, y: Array) -> tuple[float, Array]:
    """Loss and d(mean loss)/d(logits), overwriting ``logits`` with the gradient.

    Uses the identity d/dz [-log softmax(z)_y] = softmax(z) - onehot(y).
    """
    n = len(y)
    rows = np.arange(n)
    probs = softmax(logits, out=logits)  # (batch, classes)
    picked = probs[rows, y]
    loss = float(-np.log(np.maximum(picked, np.finfo(probs.dtype).tiny)).mean())
    probs[rows, y] -= 1
    probs *= 1.0 / n
    return loss, probs


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], rate: float, dtype) -> Array:
    """Inverted dropout mask: 0 with probability ``rate``, else 1/(1-rate), so E[mask] = 1.

    Scaling at train time means nothing changes at predict time: no mask, no rescaling.
    """
    keep = 1.0 - rate
    mask = rng.random(shape, dtype=np.dtype(dtype).type)
    return np.where(mask < keep, np.asarray(1.0 / keep, dtype=dtype), np.asarray(0, dtype=dtype))


def l2_penalty(weights: Array, strength: float) -> float:
    """0.5 * strength * sum(w^2); its gradient is strength * w."""
    return 0.5 * strength * float(np.dot(weights.ravel(), weights.ravel()))


def l2_penalty_grad(weights: Array, strength: float, out: Array, tmp: Array | None = None) -> Array:
    """Add the gradient of ``l2_penalty``, strength * w, to ``out`` in place and return it.

    ``tmp`` (the shape and dtype of ``weights``) is scratch for strength * w: the training loop
    passes one allocated once, so no parameter-sized temporary is made per minibatch.
    """
    scaled = np.multiply(weights, weights.dtype.type(strength), out=tmp)
    out += scaled
    return out


def l1_penalty(weights: Array, strength: float) -> float:
    """strength * sum(|w|); its (sub)gradient is strength * sign(w)."""
    return strength * float(np.abs(weights).sum())


def l1_penalty_grad(weights: Array, strength: float, out: Array, tmp: Array | None = None) -> Array:
    """Add the (sub)gradient of ``l1_penalty``, strength * sign(w), to ``out`` in place and return
    it (sign(0) = 0). ``tmp`` is scratch as in ``l2_penalty_grad``."""
    scaled = np.sign(weights, out=tmp)
    scaled *= weights.dtype.type(strength)
    out += scaled
    return out
