"""Optimizers over a flat parameter vector, with their state in plain attributes.

``step(params, grad, lr)`` updates ``params`` in place. The learning rate is passed on each step
because the schedule owns it. Scratch buffers are allocated once, so a step allocates nothing.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


class Optimizer:
    """Base class: subclasses implement ``step``. ``n_decay`` is the length of the weight prefix
    (biases excluded) that decoupled weight decay applies to."""

    name = "base"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None) -> None:
        self.n_params = n_params
        self.dtype = np.dtype(dtype)
        self.n_decay = n_params if n_decay is None else n_decay
        self.t = 0

    def _zeros(self) -> Array:
        return np.zeros(self.n_params, dtype=self.dtype)

    def step(self, params: Array, grad: Array, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p <- p - lr * g"""

    name = "sgd"

    def step(self, params: Array, grad: Array, lr: float) -> None:
        self.t += 1
        params -= self.dtype.type(lr) * grad


class Momentum(Optimizer):
    """Classical momentum, v <- mu v - lr g; p <- p + v.

    Nesterov: p <- p + mu v - lr g (the look-ahead form of Sutskever et al., 2013).
    """

    name = "momentum"

    def __init__(self, n_params: int, dtype: np.dtype, n_decay: int | None = None,
                 momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__(n_params, dtype, n_decay)
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = self._zeros()
        self._tmp = self._zeros()

    def step(self, params: Array, grad: Array, lr: float) -> None:
        self.t += 1
        lr_g = np.multiply(grad, self.dtype.type(lr), out=self._tmp)
        self.velocity *= self.dtype.type(self.momentum)
        self.velocity -= lr_g
        if self.nesterov:
            params += self.dtype.type(self.momentum) * self.velocity
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
        self.square_avg = self._zeros()
        self._tmp = self._zeros()

    def step(self, params: Array, grad: Array, lr: float) -> None:
        self.t += 1
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
        self.m_sum = self._zeros()
        self.v_sum = self._zeros()
        self._tmp = self._zeros()

    @property
    def m(self) -> Array:
        """First moment estimate (biased), as in the paper."""
        return (1 - self.beta1) * self.m_sum

    @property
    def v(self) -> Array:
        """Second moment estimate (biased), as in the paper."""
        return (1 - self.beta2) * self.v_sum

    def _adam_update(self, grad: Array, lr: float) -> Array:
        """Advance the moments and return the update (in a scratch buffer) to subtract.
        Ten passes over the parameters, no allocation: this runs once per minibatch."""
        self.t += 1
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

    def step(self, params: Array, grad: Array, lr: float) -> None:
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

    def step(self, params: Array, grad: Array, lr: float) -> None:
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
