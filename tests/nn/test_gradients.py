"""Central-difference gradient checks: every layer, the loss, the penalties, a dropout mask."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hpsearch.nn import Network
from hpsearch.nn.functional import (
    cross_entropy,
    l1_penalty,
    l1_penalty_grad,
    l2_penalty,
    l2_penalty_grad,
    softmax_cross_entropy_grad,
)


def numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in range(x.size):
        old = x.flat[i]
        x.flat[i] = old + h
        up = f()
        x.flat[i] = old - h
        down = f()
        x.flat[i] = old
        g.flat[i] = (up - down) / (2 * h)
    return g


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    loss, grad = softmax_cross_entropy_grad(logits.copy(), y)
    assert loss == pytest.approx(cross_entropy(logits, y))
    np.testing.assert_allclose(grad, numeric_grad(lambda: cross_entropy(logits, y), logits),
                               rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    assert cross_entropy(logits, np.array([0, 1])) == pytest.approx(0.0)
    assert np.isfinite(cross_entropy(logits, np.array([1, 0])))


@pytest.mark.parametrize("penalty,grad_fn", [(l2_penalty, l2_penalty_grad),
                                             (l1_penalty, l1_penalty_grad)])
def test_penalty_gradients(penalty, grad_fn):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(20) + 0.1  # keep away from the L1 kink at 0
    analytic = grad_fn(w, 0.3, np.zeros_like(w))
    np.testing.assert_allclose(analytic, numeric_grad(lambda: penalty(w, 0.3), w), rtol=1e-6)


@pytest.mark.parametrize("grad_fn,reference", [
    (l2_penalty_grad, lambda w, s: s * w),
    (l1_penalty_grad, lambda w, s: s * np.sign(w)),
], ids=["l2", "l1"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalty_grads_with_scratch_allocate_nothing(grad_fn, reference, dtype):
    """The training loop's path: ``tmp`` given, ``out`` a view of the gradient. The result is
    exactly out + strength * (w or sign(w)) in the weights' dtype, and no parameter-sized array is
    allocated (the loop runs this once per minibatch)."""
    n = 100_000
    rng = np.random.default_rng(4)
    w = rng.standard_normal(n).astype(dtype)
    w[:10] = 0  # sign(0) = 0: no L1 pull on a zero weight
    grad = rng.standard_normal(n + 7).astype(dtype)  # weights first, then "biases"
    expected = grad.copy()
    expected[:n] += reference(w, np.dtype(dtype).type(1e-4))
    tmp = np.empty_like(w)
    tracemalloc.start()
    try:
        result = grad_fn(w, 1e-4, grad[:n], tmp=tmp)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.shares_memory(result, grad)
    np.testing.assert_array_equal(grad, expected)
    assert peak < n * w.itemsize // 4


@pytest.mark.parametrize("sizes", [[6, 5, 3], [6, 7, 5, 4]])
@pytest.mark.parametrize("dropout,input_dropout", [(0.0, 0.0), (0.3, 0.2)])
def test_network_gradients_every_layer(sizes, dropout, input_dropout):
    rng = np.random.default_rng(2)
    net = Network(sizes, dtype=np.float64)
    net.init_he(rng)
    net.params[net.n_weights:] = rng.standard_normal(net.n_params - net.n_weights) * 0.1
    x = rng.standard_normal((8, sizes[0]))
    y = rng.integers(0, sizes[-1], 8)

    def loss() -> float:
        # The same seed every call gives the same dropout masks: a fixed mask.
        logits, _ = net.forward(x, np.random.default_rng(7), dropout, input_dropout)
        return cross_entropy(logits, y)

    logits, cache = net.forward(x, np.random.default_rng(7), dropout, input_dropout)
    if dropout:
        assert any(m is not None and (m == 0).any() for m in cache.masks)
    _, dlogits = softmax_cross_entropy_grad(logits, y)
    grad = net.backward(cache, dlogits, np.zeros_like(net.params))
    numeric = numeric_grad(loss, net.params)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_dropout_mask_is_inverted_and_off_at_inference():
    rng = np.random.default_rng(3)
    net = Network([50, 40, 3])
    net.init_he(rng)
    x = rng.standard_normal((200, 50)).astype(np.float32)
    a, _ = net.forward(x)
    b, _ = net.forward(x)
    np.testing.assert_array_equal(a, b)  # no rng, no dropout: deterministic
    from hpsearch.nn.functional import dropout_mask

    mask = dropout_mask(rng, (1000, 100), 0.25, np.float32)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    assert mask.mean() == pytest.approx(1.0, abs=0.02)
