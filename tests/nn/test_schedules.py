from __future__ import annotations

import math

import pytest

from hpsearch.nn import SCHEDULES, make_schedule


def rates(name: str, n: int = 6, **kw) -> list[float]:
    s = make_schedule(name, 1.0, **kw)
    return [s.rate(e) for e in range(n)]


def test_constant():
    assert rates("constant") == [1.0] * 6


def test_step():
    assert rates("step", step_size=2, gamma=0.5) == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_exponential():
    assert rates("exponential", 4, gamma=0.5) == [1, 0.5, 0.25, 0.125]


def test_cosine_reaches_min_lr_at_the_end():
    r = rates("cosine", 5, max_epochs=4, min_lr=0.1)
    assert r[0] == 1.0
    assert r[2] == pytest.approx(0.55)
    assert r[4] == pytest.approx(0.1)


def test_inverse_time():
    assert rates("inverse_time", 3, decay_rate=1.0) == [1.0, 0.5, pytest.approx(1 / 3)]


def test_warmup_then_schedule():
    assert rates("step", 6, warmup_epochs=3, step_size=2, gamma=0.5) == [
        0.25, 0.5, 0.75, 1.0, 1.0, 0.5]


def test_plateau_reduces_after_patience():
    s = make_schedule("plateau", 1.0, gamma=0.5, plateau_patience=2, min_lr=0.2)
    seen = []
    for value in [5, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3]:
        seen.append(s.rate(len(seen)))
        s.observe(value)
    assert seen == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_is_positive_and_never_above_lr(name):
    s = make_schedule(name, 0.1, warmup_epochs=2)
    for e in range(50):
        r = s.rate(e)
        s.observe(1.0)
        assert 0 <= r <= 0.1 + 1e-12 and math.isfinite(r)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("linear", 0.1)
