"""One hand-worked update per optimizer, and a contract every optimizer must meet."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hpsearch.nn import OPTIMIZERS, make_optimizer
from hpsearch.nn.optimizers import PARAM_FLUSH_EVERY

P0 = np.array([1.0, -2.0])
G = np.array([0.5, -1.0])
LR = 0.1


def two_steps(name: str, **hyper) -> tuple[np.ndarray, np.ndarray, object]:
    opt = make_optimizer(name, 2, np.float64, **hyper)
    p = P0.copy()
    opt.step(p, G.copy(), LR)
    first = p.copy()
    opt.step(p, G.copy(), LR)
    return first, p, opt


def test_sgd_by_hand():
    first, second, _ = two_steps("sgd")
    np.testing.assert_allclose(first, [0.95, -1.9])
    np.testing.assert_allclose(second, [0.90, -1.8])


def test_momentum_by_hand():
    first, second, opt = two_steps("momentum", momentum=0.9)
    # v1 = -0.1*g = [-0.05, 0.1]; v2 = 0.9 v1 - 0.1 g = [-0.095, 0.19]
    np.testing.assert_allclose(first, [0.95, -1.9])
    np.testing.assert_allclose(second, [0.855, -1.71])
    np.testing.assert_allclose(opt.velocity, [-0.095, 0.19])


def test_nesterov_by_hand():
    first, second, _ = two_steps("momentum", momentum=0.9, nesterov=True)
    # p1 = p0 + 0.9 v1 - 0.1 g = p0 + [-0.045, 0.09] + [-0.05, 0.1]
    np.testing.assert_allclose(first, [0.905, -1.81])
    # v2 = [-0.095, 0.19]; p2 = p1 + 0.9 v2 - 0.1 g = p1 + [-0.0855, 0.171] + [-0.05, 0.1]
    np.testing.assert_allclose(second, [0.7695, -1.539])


def test_rmsprop_by_hand():
    first, _, opt = two_steps("rmsprop", rho=0.9, eps=1e-8)
    # s1 = 0.1 g^2 = [0.025, 0.1]; step = 0.1 g / sqrt(s1) = 0.1 * [0.5/0.1581, -1/0.3162]
    expected = P0 - LR * G / (np.sqrt(0.1 * G**2) + 1e-8)
    np.testing.assert_allclose(first, expected)
    np.testing.assert_allclose(first, [1 - 0.316227766, -2 + 0.316227766], rtol=1e-7)
    np.testing.assert_allclose(opt.square_avg, 0.9 * 0.1 * G**2 + 0.1 * G**2)


def test_adam_by_hand():
    first, second, opt = two_steps("adam", beta1=0.9, beta2=0.999, eps=1e-8)
    # t=1: m_hat = g, v_hat = g^2, so the step is lr * sign(g) (up to eps).
    np.testing.assert_allclose(first, [0.9, -1.9], rtol=1e-7)
    # t=2 with the same g: m = 0.19 g, v = 0.001999 g^2; m_hat = g, v_hat = g^2 again.
    np.testing.assert_allclose(second, [0.8, -1.8], rtol=1e-7)
    np.testing.assert_allclose(opt.m, 0.19 * G)
    np.testing.assert_allclose(opt.v, (0.999 * 0.001 + 0.001) * G**2)
    assert opt.t == 2


def test_adamw_decays_weights_not_biases():
    opt = make_optimizer("adamw", 2, np.float64, n_decay=1, weight_decay=0.5)
    p = P0.copy()
    opt.step(p, G.copy(), LR)
    # weight: p0 * (1 - lr*wd) - lr*sign(g); bias: no decay
    np.testing.assert_allclose(p, [1.0 * 0.95 - 0.1, -2.0 + 0.1], rtol=1e-7)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_optimizer_minimises_a_quadratic(name, dtype):
    """Contract: in place, dtype kept, state advances, a convex bowl gets minimised."""
    target = np.linspace(-1, 1, 10).astype(dtype)
    p = np.zeros(10, dtype=dtype)
    opt = make_optimizer(name, 10, dtype)
    lr = 0.05 if name in ("adam", "adamw", "rmsprop") else 0.2
    for k in range(300):
        # A decaying rate, as the schedules give: sign-like optimizers then settle too.
        opt.step(p, (p - target).astype(dtype), lr * 0.99**k)
    assert p.dtype == dtype
    assert opt.t == 300
    tol = 0.05 if name == "adamw" else 0.02  # adamw's decay pulls weights slightly to 0
    np.testing.assert_allclose(p, target, atol=tol)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        make_optimizer("adagrad", 3, np.float32)


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam", "adamw"])
def test_decaying_state_never_goes_subnormal(name):
    """A parameter whose gradient stops (a dead ReLU unit) must not leave subnormal state behind:
    subnormal arithmetic is what made Adam cost 60 % of a Fashion-MNIST step before the flush."""
    opt = make_optimizer(name, 4, np.float32, beta1=0.5, momentum=0.5, rho=0.5)
    p = np.ones(4, np.float32)
    opt.step(p, np.full(4, 1e-3, np.float32), 1e-3)
    tiny = np.finfo(np.float32).tiny
    for _ in range(400):  # 0.5**400: far below the subnormal range without the flush
        opt.step(p, np.zeros(4, np.float32), 1e-3)
        for state, _ in opt._decaying:
            assert not np.any((state != 0) & (np.abs(state) < tiny))
    assert np.all(np.isfinite(p))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameters_never_go_subnormal(name):
    """Weights that shrink geometrically (coupled L2 through Adam drives a dead unit's weights to
    zero) must not stay subnormal: epochs of a Fashion-MNIST trial ran 10-15x slower so."""
    opt = make_optimizer(name, 4, np.float32)
    tiny = np.finfo(np.float32).tiny
    p = np.array([1.0, -1.0, 1e-31, -1e-31], np.float32)  # the last two: below the threshold
    for _ in range(PARAM_FLUSH_EVERY):
        opt.step(p, np.zeros(4, np.float32), 1e-3)
    assert p[2] == 0 and p[3] == 0 and abs(p[0]) > 0.9 and abs(p[1]) > 0.9
    for _ in range(200):  # the gradient is the weight itself: p shrinks 10x a step with SGD
        opt.step(p, p / 1e-3 * 0.9 if name == "sgd" else p.copy(), 1e-3)
        assert not np.any((p != 0) & (np.abs(p) < tiny)), p
    assert np.all(np.isfinite(p))


# Every optimizer of the table, and Nesterov's variant of momentum (its own code path).
EVERY_OPTIMIZER: list[tuple[str, dict[str, bool]]] = [
    *[(name, {}) for name in sorted(OPTIMIZERS)], ("momentum", {"nesterov": True})]


@pytest.mark.parametrize("name,hyper", EVERY_OPTIMIZER,
                         ids=[name + "-nesterov" * bool(h) for name, h in EVERY_OPTIMIZER])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_allocate_no_parameter_sized_array(name, hyper, dtype):
    """Contract: the step runs once per minibatch, so every buffer it writes (scratch included)
    exists from __init__; the subnormal flush, which some steps run, allocates nothing either."""
    n = 100_000
    rng = np.random.default_rng(0)
    opt = make_optimizer(name, n, dtype, n_decay=n // 2, **hyper)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    opt.step(p, g, 1e-3)  # the first step may set things up; none does today
    tracemalloc.start()
    try:
        for _ in range(5):
            opt.step(p, g, 1e-3)
        opt.flush_subnormal()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * p.itemsize // 4, f"{name}: {peak} bytes traced during 5 steps"
