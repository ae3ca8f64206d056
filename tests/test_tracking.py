"""The background trial log (``AsyncTrialLog``) on a real MLflow SQLite store: what Ctrl-C does
to the writes it has queued, and to runs whose trial never reached ``finish``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import pytest

from hpsearch.tracking import trial_log
from hpsearch.tracking.tracker import Tracker
from hpsearch.tracking.trial_log import AsyncTrialLog


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri)
    exp = tracker.experiment("log")
    parent = tracker.create_parent(exp, "log", "log.yaml", "name: log", {}, "unknown")
    return uri, tracker, exp, parent


def run_of(tracker: Tracker, number: int):
    return tracker.client.get_run(tracker.trial_run_id("log", number))


def slow_finish(monkeypatch, release: threading.Event) -> threading.Event:
    """The thread's `finish` waits for ``release`` (a slow store, a large learning curve);
    the event returned is set once the thread is inside it."""
    real = trial_log.finish_trial_with_files
    entered = threading.Event()

    def finish(*args, **kwargs):
        entered.set()
        release.wait(600)
        return real(*args, **kwargs)

    monkeypatch.setattr(trial_log, "finish_trial_with_files", finish)
    return entered


def closing(log: AsyncTrialLog) -> threading.Event:
    """Set once ``log.close()`` waits for the thread (its first wait on the done event)."""
    inside, wait = threading.Event(), log._done.wait

    def waiting(timeout=None):
        inside.set()
        return wait(timeout)

    log._done.wait = waiting  # type: ignore[method-assign]
    return inside


@pytest.fixture
def interrupted():
    """SIGINT raises KeyboardInterrupt as usual, and sets the event returned when it did."""
    raised = threading.Event()

    def handler(signum, frame):
        raised.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    yield raised
    signal.signal(signal.SIGINT, previous)


def interrupt_when(*ready: threading.Event, then: Callable[[], object] | None = None,
                   raised: threading.Event | None = None) -> threading.Thread:
    """Ctrl-C to the main thread once every ``ready`` event is set; then, once the interrupt
    was raised, ``then()``. Waits on state, never on time (bounded: 600 s)."""
    def run() -> None:
        for event in ready:
            assert event.wait(600)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        if then is not None and raised is not None:
            assert raised.wait(600)
            then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_while_closing_still_writes_the_finished_trial(store, monkeypatch, interrupted):
    """The trial is over and its `finish` is queued; Ctrl-C arrives while `close` waits for the
    thread: the run must still be closed (it stayed RUNNING before)."""
    uri, tracker, exp, parent = store
    release = threading.Event()
    entered = slow_finish(monkeypatch, release)
    log = AsyncTrialLog(uri)
    log.start(exp, parent, "log", 0, {"hidden_size": 8}, {})
    log.finish(0, "COMPLETE", {"best_val_accuracy": 0.5}, {}, [])
    # the store answers only after the interrupt
    interrupt_when(entered, closing(log), then=release.set, raised=interrupted)
    with pytest.raises(KeyboardInterrupt):
        log.close()
    run = run_of(tracker, 0)
    assert run.info.status == "FINISHED"
    assert run.data.tags["optuna.trial.state"] == "COMPLETE"
    assert run.data.metrics["best_val_accuracy"] == 0.5


def test_a_run_never_finished_is_closed_as_killed(store):
    """A second Ctrl-C can land between a trial's end and its `finish`: `close` kills the run."""
    uri, tracker, exp, parent = store
    log = AsyncTrialLog(uri)
    log.start(exp, parent, "log", 0, {}, {})
    log.start(exp, parent, "log", 1, {}, {})
    log.finish(1, "PRUNED", {}, {"optuna.trial.reason": "pruned at epoch 2"}, [])
    log.close()
    left, pruned = run_of(tracker, 0), run_of(tracker, 1)
    assert left.info.status == "KILLED"
    assert left.data.tags["optuna.trial.state"] == "FAIL"
    assert "stopped before this trial's run was closed" in left.data.tags["optuna.trial.reason"]
    assert pruned.info.status == "FINISHED"
    assert pruned.data.tags["optuna.trial.reason"] == "pruned at epoch 2"


def test_a_hung_store_after_ctrl_c_is_given_up_with_one_line(store, monkeypatch, capsys,
                                                              interrupted):
    uri, tracker, exp, parent = store
    release = threading.Event()
    entered = slow_finish(monkeypatch, release)
    log = AsyncTrialLog(uri)
    log.grace_after_interrupt = 0.5
    log.start(exp, parent, "log", 0, {}, {})
    log.finish(0, "COMPLETE", {}, {}, [])
    thread = log._thread
    interrupt_when(entered, closing(log))
    try:
        with pytest.raises(KeyboardInterrupt):
            log.close()  # gives up after the grace period (0.5 s), not the default minute
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith("error: tracking writes still pending 0.5 s after the interrupt")
        assert "hpsearch recover" in err[0]
        assert run_of(tracker, 0).info.status == "RUNNING"
    finally:
        release.set()
        assert thread is not None
        thread.join(30)
    assert run_of(tracker, 0).info.status == "FINISHED"  # written once the store answered
