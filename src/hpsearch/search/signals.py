"""Stopping a worker: SIGINT, SIGTERM and SIGHUP take one path (the interrupt), so that the
running trial is closed in both stores and retried, and the process exits 128 + the signal.

- ``Interrupted`` and ``stop_signals``: the signals raised where Ctrl-C's KeyboardInterrupt
  would be ("immediate"), or at the next safe point of the training loop ("cooperative":
  ``StopCallback``, ``check_stop``).
- ``spawn_context``: child processes whose helper survives a closed terminal's SIGHUP.
- ``endless_trials``: the fault tests' hook for a trial that cannot finish before its fault.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from typing import Any

ENDLESS_ENV = "HPSEARCH_TEST_ENDLESS_TRIALS"


def endless_trials() -> frozenset[int]:
    """Trial numbers that train without an epoch limit ($HPSEARCH_TEST_ENDLESS_TRIALS, e.g.
    ``0,1``): the fault tests' way of making the trial a fault must hit one that cannot finish
    before it, on a machine of any speed. Unset in normal use."""
    raw = os.environ.get(ENDLESS_ENV, "")
    return frozenset(int(n) for n in raw.split(",") if n.strip().isdigit())


RELEASE_ENV = "HPSEARCH_TEST_RELEASE"


def released(record: dict[str, Any]) -> bool:
    """An endless trial's callback: it ends (completed) once the file $HPSEARCH_TEST_RELEASE
    exists, so that a fault test can make it end after its fault (a tracking store restarted)."""
    release = os.environ.get(RELEASE_ENV)
    return bool(release) and os.path.exists(release)  # type: ignore[arg-type]


# -- stopping signals --------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stopping signal, raised where Ctrl-C's KeyboardInterrupt would be: timeout(1), systemd,
    Slurm and Kubernetes stop a job with SIGTERM, a closed terminal sends SIGHUP. Every path that
    closes an interrupted trial catches KeyboardInterrupt, so all three take it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt (a plain KeyboardInterrupt is SIGINT's)."""
    return int(getattr(exc, "signum", signal.SIGINT))


def exit_status(exc: BaseException) -> int:
    """128 + the signal number, as a shell reports a process stopped by that signal."""
    return 128 + signal_of(exc)


class _StopRequest:
    """The stopping signal received in ``cooperative`` mode and not acted on yet."""

    signum: int | None = None


STOP = _StopRequest()


def check_stop() -> None:
    """Raise ``Interrupted`` if a stopping signal arrived (cooperative mode): called at safe
    points, after each minibatch and before each trial."""
    if STOP.signum is not None:
        raise Interrupted(STOP.signum)


class StopCallback:
    """Training callback: honours a stopping signal after the current minibatch."""

    def on_batch_end(self) -> None:
        check_stop()

    def on_epoch_end(self, record: dict[str, float]) -> None:
        check_stop()


@contextmanager
def stop_signals(mode: str = "immediate") -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP stop the process through ``Interrupted``;
    the previous handlers come back afterwards, and a signal ignored on entry stays ignored.

    - ``immediate``: the handler raises at once (a coordinator that only waits).
    - ``cooperative``: the handler only records the signal; ``check_stop()`` raises it at the
      next safe point (after a minibatch, before a trial, at the end of the block), so that no
      storage write is cut in the middle. A second signal raises at once (Ctrl-C twice).
    - ``worker``: cooperative, and later signals are ignored: a worker process gets Ctrl-C
      twice, from the terminal and from the sweep process, and a second interrupt would cut
      short the closing of the first.

    Outside the main thread (where Python allows no handlers) it changes nothing."""

    def handler(signum: int, frame: Any) -> None:
        if mode == "immediate" or (mode == "cooperative" and STOP.signum is not None):
            raise Interrupted(signum)
        if STOP.signum is None:
            STOP.signum = signum

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            # A signal ignored when the process started stays ignored: `nohup` ignores SIGHUP,
            # a shell's background job SIGINT, and both mean "do not stop on this one".
            if signal.getsignal(s) is not signal.SIG_IGN:
                previous[s] = signal.signal(s, handler)
    try:
        yield
        if mode != "immediate":
            check_stop()  # a signal that came after the last safe point
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        if mode != "immediate":
            STOP.signum = None


def spawn_context() -> Any:
    """multiprocessing's spawn context, its resource tracker started deaf to SIGHUP.

    The tracker (the process that frees the queues' semaphores) ignores SIGINT and SIGTERM
    only: a closed terminal's SIGHUP to the whole process group killed it, and the next queue
    this process closed started a new one, which printed a KeyError traceback. A signal blocked
    when a process starts stays blocked through exec, and the tracker unblocks only those two:
    blocked here while it starts, SIGHUP never reaches it. In this thread a SIGHUP is only held
    until the tracker has started. Nothing here may have started the tracker before: then
    this changes nothing (nothing in hpsearch does)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return mp.get_context("spawn")
