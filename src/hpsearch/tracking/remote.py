"""A worker's side of the machine's MLflow writer (writer.py): ``Link`` (what a worker needs to
reach it, picklable when a worker process is spawned), ``Outage`` (the writer's tracking outage
and whether it is gone, in shared memory) and ``RemoteTrialLog`` (a trial log whose calls are
messages to the writer)."""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import StorageError
from .messages import Message, TrialLogFront

#: How long a call or a close waits after a Ctrl-C, in seconds (as AsyncTrialLog's).
GRACE_AFTER_INTERRUPT = 60.0

GONE = ("the sweep process's MLflow writer is gone (killed?); the trials it had not written "
        "are closed by `hpsearch recover` or when the sweep resumes")


@dataclass
class Link:
    """What a worker needs to reach the machine's writer (picklable when a process is
    spawned): the tracking URI, the writer's request queue, this worker's reply queue and
    number, and the pid of the sweep process when that is the worker's parent (the writer dies
    with it: a worker whose parent is gone stops instead of sending into nothing)."""

    uri: str
    requests: Any
    replies: Any
    sender: int
    outage: Outage
    parent: int | None = None

    def alive(self) -> bool:
        return not self.outage.gone.value and (self.parent is None or
                                               os.getppid() == self.parent)


class Outage:
    """The writer's tracking outage, in memory shared with every worker of the machine: set by
    the writer before it says so, so that a trial which ends after the line ends as lost. Since
    when (monotonic clock, system-wide; 0: no outage) and why; and whether the writer is gone
    (the sweep process, its parent, sees it die and says so here)."""

    def __init__(self, context: Any) -> None:
        self.since = context.Value("d", 0.0, lock=False)
        self.why = context.Array("c", 400, lock=False)
        self.gone = context.Value("b", 0, lock=False)  # set by the sweep: the writer died

    def set(self, outage: tuple[float, str] | None) -> None:
        if outage is None:
            self.since.value = 0.0
        else:
            self.why.value = outage[1].encode()[:399]
            self.since.value = outage[0]

    def get(self) -> tuple[float, str] | None:
        since = self.since.value
        return None if since == 0.0 else (since, self.why.value.decode(errors="replace"))


class RemoteTrialLog(TrialLogFront):
    """A worker's trial log written by the machine's writer: the calls of AsyncTrialLog, each a
    message sent over ``link``; the writer's errors are raised by the next call, its outages
    are seen in ``outage``; ``close`` waits until the writer has written all this worker sent
    (and closed as interrupted any run of it that never got its ``finish``)."""

    #: How long ``close`` goes on waiting after a Ctrl-C, in seconds (as AsyncTrialLog's).
    grace_after_interrupt = GRACE_AFTER_INTERRUPT

    def __init__(self, link: Link, alive: Callable[[], bool] | None = None) -> None:
        self.uri = link.uri
        self.link = link
        self._alive = alive or link.alive
        self._errors: list[str] = []
        self._closed = False

    def _send(self, message: Message) -> None:
        self.check()
        if not self._alive():
            raise StorageError(GONE)
        self.link.requests.put((self.link.sender, message))

    def _read(self, timeout: float | None = None) -> None:
        """Take in what the writer answered; wait up to ``timeout`` s for the first answer."""
        while True:
            try:
                kind, value = (self.link.replies.get(timeout=timeout) if timeout else
                               self.link.replies.get_nowait())
            except queue.Empty:
                return
            timeout = None
            if kind == "error":
                self._errors.append(value)
            elif kind == "closed":
                self._closed = True

    @property
    def outage(self) -> tuple[float, str] | None:  # type: ignore[override]
        return self.link.outage.get()

    def check(self) -> None:
        self._read()
        if self._errors:
            raise StorageError(self._errors.pop(0))

    def wait_back(self) -> float | None:
        outage = self.outage
        started = outage[0] if outage else time.monotonic()
        self._read()
        while self.outage is not None and not self._errors and self._alive():
            self._read(0.2)
        if self._errors or self.outage is not None or not self._alive():
            return None
        return time.monotonic() - started

    def close(self) -> None:
        """As AsyncTrialLog.close: a Ctrl-C during the wait does not abandon the writes of
        trials that are over; the wait goes on ``grace_after_interrupt`` s more at most."""
        self._closed = False
        self.link.requests.put((self.link.sender, None))
        interrupted, deadline = False, float("inf")
        while not self._closed and time.monotonic() < deadline:
            if not self._alive():
                self._errors.append(GONE)
                break
            try:
                self._read(min(0.5, max(0.01, deadline - time.monotonic())))
            except KeyboardInterrupt:
                interrupted = True
                deadline = min(deadline, time.monotonic() + self.grace_after_interrupt)
        if not self._closed and self._alive():
            self._errors.append(f"tracking writes still pending {self.grace_after_interrupt:g} "
                                f"s after the interrupt were abandoned; `hpsearch recover` "
                                f"closes the runs left RUNNING")
        if interrupted:
            for message in self._errors:
                print(f"error: {message}", file=sys.stderr)
            self._errors.clear()
            raise KeyboardInterrupt
        self.check()
