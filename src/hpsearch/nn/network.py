"""A stack of dense layers over one flat parameter vector.

All weights live in one contiguous array (weights first, then biases) and every ``W``/``b`` is a
view into it; the gradient has the same layout. Optimizers therefore update every parameter with a
handful of vectorised calls instead of a Python loop over layers, and L2/L1 penalties and
decoupled weight decay touch the weight prefix ``flat[:n_weights]`` only (never the biases).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .functional import ACTIVATIONS, dropout_mask

Array = np.ndarray


@dataclass
class ForwardCache:
    """What backward needs: the (masked) input of every layer and the dropout masks."""

    inputs: list[Array] = field(default_factory=list)  # inputs[l]: (batch, sizes[l])
    masks: list[Array | None] = field(default_factory=list)  # masks[l] multiplies inputs[l]


class Network:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``: hidden activation, linear output."""

    def __init__(self, sizes: list[int], dtype: np.dtype | str = "float32",
                 activation: str = "relu") -> None:
        if len(sizes) < 2:
            raise ValueError("a network needs at least an input and an output size")
        self.sizes = [int(s) for s in sizes]
        self.dtype = np.dtype(dtype)
        self.act, self.act_backward = ACTIVATIONS[activation]
        shapes = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.n_weights = sum(a * b for a, b in shapes)
        self.n_params = self.n_weights + sum(b for _, b in shapes)
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.weights, self.biases = self._views(self.params)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def _views(self, flat: Array) -> tuple[list[Array], list[Array]]:
        weights, biases = [], []
        w_at, b_at = 0, self.n_weights
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            weights.append(flat[w_at:w_at + n_in * n_out].reshape(n_in, n_out))
            biases.append(flat[b_at:b_at + n_out])
            w_at += n_in * n_out
            b_at += n_out
        return weights, biases

    def grad_views(self, grad: Array) -> tuple[list[Array], list[Array]]:
        """``W``/``b``-shaped views into a flat gradient buffer."""
        return self._views(grad)

    def init_he(self, rng: np.random.Generator) -> None:
        """He initialisation (std sqrt(2/fan_in)), suited to ReLU; biases start at zero."""
        for w in self.weights:
            w[...] = rng.standard_normal(w.shape, dtype=np.float64) * np.sqrt(2.0 / w.shape[0])
        for b in self.biases:
            b[...] = 0

    # -- forward / backward ---------------------------------------------------------------
    def workspace(self, batch_size: int) -> list[Array]:
        """Preallocated layer outputs for minibatches of up to ``batch_size`` rows, so the
        training loop allocates nothing per batch (pass it to ``forward`` as ``out``)."""
        return [np.empty((batch_size, n), dtype=self.dtype) for n in self.sizes[1:]]

    def forward(self, x: Array, rng: np.random.Generator | None = None, dropout: float = 0.0,
                input_dropout: float = 0.0,
                out: list[Array] | None = None) -> tuple[Array, ForwardCache]:
        """Logits ``(batch, classes)`` and the cache for backward. Dropout only when rng is given.

        ``out``: a ``workspace`` to write the layer outputs into (overwritten by the next call).
        """
        cache = ForwardCache()
        a = x
        n = len(x)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            rate = input_dropout if layer == 0 else dropout
            mask = None
            if rng is not None and rate > 0:
                mask = dropout_mask(rng, a.shape, rate, self.dtype)
                a = a * mask if layer == 0 else np.multiply(a, mask, out=a)
            cache.inputs.append(a)
            cache.masks.append(mask)
            z = np.matmul(a, w, out=None if out is None else out[layer][:n])  # (batch, out)
            z += b
            a = z if layer == self.n_layers - 1 else self.act(z, out=z)
        return a, cache

    def backward(self, cache: ForwardCache, dlogits: Array, grad: Array) -> Array:
        """Fill the flat ``grad`` with d(loss)/d(params), given d(loss)/d(logits)."""
        gw, gb = self.grad_views(grad)
        dz = dlogits  # (batch, sizes[l + 1])
        for layer in range(self.n_layers - 1, -1, -1):
            a = cache.inputs[layer]
            np.matmul(a.T, dz, out=gw[layer])  # (sizes[l], sizes[l + 1])
            np.sum(dz, axis=0, out=gb[layer])
            if layer == 0:
                break
            da = dz @ self.weights[layer].T  # (batch, sizes[l])
            mask = cache.masks[layer]
            if mask is not None:
                da *= mask
            # a is the masked activation; where the mask is 0, da is already 0.
            dz = self.act_backward(da, a)
        return grad

    def logits(self, x: Array, chunk: int = 8192) -> Array:
        """Inference logits in chunks (bounded memory), no dropout."""
        out = np.empty((len(x), self.sizes[-1]), dtype=self.dtype)
        for start in range(0, len(x), chunk):
            out[start:start + chunk] = self.forward(x[start:start + chunk])[0]
        return out
