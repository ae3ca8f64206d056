"""Optimizers over a flat parameter vector, with their state in plain attributes.

``step(params, grad, lr)`` updates ``params`` in place. The learning rate is passed on each step
because the schedule owns it. Every buffer a step writes, scratch included, is allocated in
``__init__``, so a step (the periodic subnormal flush too) allocates no array: it runs once per
minibatch. tests/nn/test_optimizers.py checks this for every entry of ``OPTIMIZERS``.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray
# Steps between the parameters' flushes (bench/subnormal_weights.py, a trial whose weights go
# subnormal: CPU time 0.17x the unflushed run's at every step, 0.25x at every 4th, 0.32x at every
# 16th). A flush is 3 passes over the parameters, ~6 % of an Adam step on 784-256-10 at every
# step (Adam's 10 passes are ~0.54 ms of a ~2 ms step): every 4th step costs ~1.5 % on every
# trial, and a weight falling 10x a step stays normal between two flushes.
PARAM_FLUSH_EVERY = 4


class Optimizer:
    """Base class: subclasses implement ``_step``. ``n_decay`` is the length of the weight prefix
    (biases excluded) that decoupled weight decay applies to.

    Decaying state (momentum, squared-gradient averages) of parameters whose gradient is zero,
    such as the weights of a dead ReLU unit, shrinks geometrically into the subnormal range,
    where x86 arithmetic is up to a hundred times slower: measured here, a few thousand subnormal
    Adam moments after three Fashion-MNIST epochs made the update cost 60 % of a training step.
    So every ``flush_every`` steps, state below ``tiny * 1e8`` is set to zero (such values have
    no effect on any update: they are 1e-30 in float32). The parameters themselves can shrink
    there too (coupled L2 through Adam's normalisation drives the weights of dead units towards
    zero geometrically; measured on a Fashion-MNIST trial after its learning-rate step: 80,000
    subnormal first-layer weights, epochs 10-15x slower), so every ``PARAM_FLUSH_EVERY`` steps
    the same is done to them (``flush``; the training loop calls it on its weight average too).

    Scratch: ``_tmp`` (parameter-sized, free for ``_step`` to overwrite) and the mask
    ``_below`` that the flushes write after ``_step`` has returned.
    """

    name = "base"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None) -> None:
        self.n_params = n_params
        self.dtype = np.dtype(dtype)
        self.n_decay = n_params if n_decay is None else n_decay
        self.t = 0
        self._decaying: list[tuple[Array, float]] = []  # (state, decay factor per step)
        self._below = np.zeros(n_params, dtype=bool)  # the flush's mask
        self._tmp = self._zeros()
        self._threshold = np.finfo(self.dtype).tiny * 1e8

    def _zeros(self, decay: float | None = None) -> Array:
        """A parameter-sized zero array; with ``decay``, state that the flush keeps normal."""
        state = np.zeros(self.n_params, dtype=self.dtype)
        if decay is not None:
            self._decaying.append((state, float(decay)))
        return state

    def step(self, params: Array, grad: Array, lr: float) -> None:
        """One update of ``params`` in place, given the gradient and the learning rate."""
        self.t += 1
        self._step(params, grad, lr)
        if self._decaying and self.t % self._flush_every() == 0:
            self.flush_subnormal()
        if self.t % PARAM_FLUSH_EVERY == 0:
            self.flush(params)

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        raise NotImplementedError

    def _flush_every(self) -> int:
        # Steps for the fastest-decaying state to fall by 1e8 (from the threshold to subnormal).
        fastest = min(d for _, d in self._decaying)
        if not 0 < fastest < 1:
            return 1_000_000
        return max(1, int(np.log(1e8) / -np.log(fastest)))

    def flush_subnormal(self) -> None:
        """Zero every decaying state value below ``tiny * 1e8`` in magnitude, in place."""
        for state, _ in self._decaying:
            self.flush(state)

    def flush(self, values: Array) -> None:
        """Zero the entries of the parameter-sized ``values`` below ``tiny * 1e8`` in magnitude,
        in place, through the scratch buffers (``_tmp`` is free once ``_step`` has returned)."""
        np.less(np.abs(values, out=self._tmp), self._threshold, out=self._below)
        np.copyto(values, 0, where=self._below)


class SGD(Optimizer):
    """p <- p - lr * g (lr * g goes through the scratch buffer)."""

    name = "sgd"

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        params -= np.multiply(grad, self.dtype.type(lr), out=self._tmp)


class Momentum(Optimizer):
    """Classical momentum, v <- mu v - lr g; p <- p + v.

    Nesterov: v as above, then p <- p + mu v - lr g with the new v: Sutskever et al.'s (2013)
    Nesterov momentum written for the look-ahead parameters (Bengio et al., 2013), so the
    gradient is the one at ``params``. It needs a second scratch buffer, for mu v.
    """

    name = "momentum"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                 momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__(n_params, dtype, n_decay)
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = self._zeros(decay=momentum)
        self._mu_v = self._zeros() if nesterov else None

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        lr_g = np.multiply(grad, self.dtype.type(lr), out=self._tmp)
        self.velocity *= self.dtype.type(self.momentum)
        self.velocity -= lr_g
        if self.nesterov:
            assert self._mu_v is not None, "nesterov must be chosen when the optimizer is made"
            params += np.multiply(self.velocity, self.dtype.type(self.momentum), out=self._mu_v)
            params -= lr_g
        else:
            params += self.velocity


class RMSProp(Optimizer):
    """s <- rho s + (1 - rho) g^2; p <- p - lr g / (sqrt(s) + eps)"""

    name = "rmsprop"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                 rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(n_params, dtype, n_decay)
        self.rho = rho
        self.eps = eps
        self.square_avg = self._zeros(decay=rho)

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        f = self.dtype.type
        tmp = np.multiply(grad, grad, out=self._tmp)
        tmp *= f(1 - self.rho)
        self.square_avg *= f(self.rho)
        self.square_avg += tmp
        np.sqrt(self.square_avg, out=tmp)
        tmp += f(self.eps)
        np.divide(grad, tmp, out=tmp)
        tmp *= f(lr)
        params -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction:
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)

    The state is kept as exponentially decayed *sums*, ``m_sum = m / (1-b1)`` and
    ``v_sum = v / (1-b2)`` (so ``m_sum <- b1 m_sum + g``), which saves two of the twelve passes
    over the parameters that the textbook form costs; ``m`` and ``v`` give the textbook moments.
    The update is the same: with a1 = (1-b1)/(1-b1^t) and a2 = (1-b2)/(1-b2^t),
    lr a1 m_sum / (sqrt(a2 v_sum) + eps) = (lr a1/sqrt(a2)) m_sum / (sqrt(v_sum) + eps/sqrt(a2)).
    """

    name = "adam"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__(n_params, dtype, n_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m_sum = self._zeros(decay=beta1)
        self.v_sum = self._zeros(decay=beta2)

    @property
    def m(self) -> Array:
        """First moment estimate (biased), as in the paper."""
        return (1 - self.beta1) * self.m_sum

    @property
    def v(self) -> Array:
        """Second moment estimate (biased), as in the paper."""
        return (1 - self.beta2) * self.v_sum

    def _adam_update(self, grad: Array, lr: float) -> Array:
        """Advance the moments and return the update (in the scratch buffer) to subtract.
        Nine passes over the parameters (the subtraction is the tenth), no allocation: this runs
        once per minibatch."""
        f = self.dtype.type
        b1, b2 = self.beta1, self.beta2
        tmp = self._tmp
        self.m_sum *= f(b1)
        self.m_sum += grad
        np.multiply(grad, grad, out=tmp)
        self.v_sum *= f(b2)
        self.v_sum += tmp
        a1 = (1 - b1) / (1 - b1 ** self.t)
        root_a2 = np.sqrt((1 - b2) / (1 - b2 ** self.t))
        np.sqrt(self.v_sum, out=tmp)
        tmp += f(self.eps / root_a2)
        np.divide(self.m_sum, tmp, out=tmp)
        tmp *= f(lr * a1 / root_a2)
        return tmp

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        params -= self._adam_update(grad, lr)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    p <- p - lr * weight_decay * p (weights only) before the Adam update."""

    name = "adamw"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(n_params, dtype, n_decay, beta1, beta2, eps)
        self.weight_decay = weight_decay

    def _step(self, params: Array, grad: Array, lr: float) -> None:
        update = self._adam_update(grad, lr)
        if self.weight_decay:
            params[: self.n_decay] *= self.dtype.type(1 - lr * self.weight_decay)
        params -= update


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, RMSProp, Adam, AdamW)
}

# The hyperparameters each optimizer takes, by their usual names (the estimator passes only these).
OPTIMIZER_PARAMS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum", "nesterov"),
    "rmsprop": ("rho", "eps"),
    "adam": ("beta1", "beta2", "eps"),
    "adamw": ("beta1", "beta2", "eps", "weight_decay"),
}


def make_optimizer(name: str, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                   **hyper: float | bool) -> Optimizer:
    """Build optimizer ``name`` with the hyperparameters that apply to it (others ignored)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}")
    kwargs = {k: hyper[k] for k in OPTIMIZER_PARAMS[name] if k in hyper}
    return OPTIMIZERS[name](n_params, dtype, n_decay, **kwargs)  # type: ignore[arg-type]
