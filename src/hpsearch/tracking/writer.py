"""One MLflow writer per machine for `hpsearch sweep`: a process of its own, started first
(its ~2 s of imports and the store's opening on the core the sweep's own imports leave idle),
which writes every trial run of the sweep's workers and makes the sweep process's own MLflow
calls, so that no other process of the sweep opens the tracking store.

Each writer of a trial log costs its process ~1 s of CPU to open the store (MLflow's SQL store
module, SQLAlchemy), the first logged model's template and matplotlib, and its Python holds the
GIL that training needs. One writer per machine pays this once, beside the training.

- ``MachineWriter``: the sweep process's side: starts the writer, gives each worker a ``Link``,
  ``tracker()`` for its own calls (``TrackerProxy``), and ``stop()`` once the workers are done.
- ``remote.RemoteTrialLog``: a worker's trial log that sends each message over its link (the
  writer's errors and the end of a worker's writes come back on its reply queue, the writer's
  outage in shared memory).
- ``serve``: the writer, one ``AsyncTrialLog`` for the machine's trials (their numbers are
  unique in the study); its ``Mark`` tells a worker that all it sent is written, its ``Call``
  makes a Tracker call in order with the trial messages.

This module is light to import (no MLflow): the sweep command starts the writer before its own
imports. `hpsearch worker` (a launched worker, alone on its node) keeps its own AsyncTrialLog.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import StorageError, first_line, install_masking
from .messages import Call, Finish, Mark, Start
from .remote import GONE, GRACE_AFTER_INTERRUPT, Link, Outage, RemoteTrialLog

CALLER = -2  # the sender number of the sweep process's own Tracker calls


def serve(uri: str, requests: Any, replies: list[Any], calls: Any, finished: Any,
          outage: Outage, echo: Callable[[str], None] | None, parent: int) -> None:
    """The machine's writer. Requests are ``(sender, message)``, ``(sender, None)`` when that
    worker closes its log, ``(CALLER, (name, args))`` for a Tracker call (answered on
    ``calls``) and ``(None, None)`` to stop once everything is written. The trial log's errors
    go to every worker, its outages into ``outage`` (they share the store); the writer's own
    last error, or None, goes to ``finished`` when it stops. When ``parent`` (the sweep
    process) is gone, the writer goes too, writing nothing more, as a thread of it would."""
    # MLflow: imported here, in the writer's process only (the sweep command starts it first)
    from .trial_log import AsyncTrialLog

    log = AsyncTrialLog(uri, echo)
    # kept models are logged at once while a core is free of training (the trials run in the
    # sweep process, or a worker has ended), else after AsyncTrialLog.model_delay as usual
    cores, training = os.cpu_count() or 1, set[int]()
    log.on_outage = outage.set
    log.warm_up()  # the store opens while the sweep process imports and loads its data
    lock = threading.Lock()
    open_runs: dict[int, set[int]] = defaultdict(set)  # each worker's runs without a finish

    unheard: list[str] = []  # errors met while no worker was there to raise them

    def tell_errors() -> None:
        with lock:  # so that an error taken by one thread is put before the other's "closed"
            for message in log.take_errors():
                if not training:
                    unheard.append(message)
                for reply in replies:
                    reply.put(("error", message))

    def closed(sender: int) -> None:
        tell_errors()  # the errors met before this point reach the worker before "closed"
        replies[sender].put(("closed", None))

    def answer(seq: int, result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            try:  # MLflow's own exceptions do not all come back from a pickle
                pickle.loads(pickle.dumps(exc))
            except Exception:
                exc = StorageError(first_line(exc, 500))
        calls.put((seq, result, exc))

    last: str | None = None
    try:
        while True:
            try:
                sender, message = requests.get(timeout=0.25)
            except queue.Empty:
                sender, message = -1, None
            tell_errors()
            if os.getppid() != parent:
                os._exit(1)  # killed with the sweep: leave its runs as a killed process would
            if sender == -1:
                continue
            if sender is None:
                break
            if sender != CALLER:  # a worker's message, or its close
                if message is None:
                    training.discard(sender)
                else:
                    training.add(sender)
                log.eager_models = len(training) < cores
            if sender == CALLER:
                seq, name, args = message
                # with no worker training, the kept models waiting are written first: the
                # sweep's end (the top k's clean-up, the parent run closed) comes after them
                log.put(Call(name, args, partial(answer, seq), flush=not training))
            elif message is None:  # a worker closes its log: its writes done, then told
                numbers = tuple(sorted(open_runs.pop(sender, ())))
                log.put(Mark(numbers, lambda s=sender: closed(s)))  # type: ignore[misc]
            else:
                if isinstance(message, Start):
                    open_runs[sender].add(message.number)
                elif isinstance(message, Finish):
                    open_runs[sender].discard(message.number)
                log.put(message)
    except Exception as exc:  # the writer's own bug: one line, not a traceback
        last = f"the MLflow writer stopped: {first_line(exc, 400)}"
    finally:
        try:
            log.close()
        except Exception as exc:
            last = last or first_line(exc, 500)
        training.clear()
        tell_errors()
        finished.put(last or (unheard[0] if unheard else None))


def writer_process(uri: str, requests: Any, replies: list[Any], calls: Any, finished: Any,
                   outage: Outage, parent: int) -> None:
    """Entry point of the writer's process: it dies with the sweep process (a SIGKILL of the
    sweep leaves the same runs as before), ignores the stopping signals (the sweep process
    tells it to stop once its trials are closed, and it writes those closing records), and
    masks secrets in what it prints."""
    die_with_parent()
    try:  # `ps -o comm` and top name it (Linux)
        ctypes.CDLL(None, use_errno=True).prctl(15, b"hpsearch-writer")  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    install_masking()
    serve(uri, requests, replies, calls, finished, outage, lambda line: print(line, flush=True),
          parent)
    for q in (finished, calls):  # their last answers reach the pipes before the exit
        q.close()
        q.join_thread()
    for q in replies:  # a dead worker's queue may be full: never wait for it
        q.cancel_join_thread()
    sys.stdout.flush()
    os._exit(0)  # everything is written; skip the teardown of MLflow's modules


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (else ``serve`` and the links poll
    the parent's pid)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TrackerProxy:
    """The sweep process's Tracker, its calls made by the machine's writer in order with the
    trial messages before them (the parent run closed after the last trial's run, say): each
    method call waits for its answer, and an error is raised here as the Tracker raised it."""

    def __init__(self, writer: MachineWriter) -> None:
        self._writer = writer
        self._uri: str | None = None

    @property
    def uri(self) -> str:
        if self._uri is None:
            self._uri = str(self._writer.call("uri", ()))
        return self._uri

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._writer.call(name, args)


class MachineWriter:
    """The sweep process's side of the machine's writer (its own process) for ``senders``
    trial logs: this process's trials (sender 0) or its worker processes' (0 .. senders-1).
    ``context``: multiprocessing's spawn context (search.signals.spawn_context)."""

    grace_after_interrupt = GRACE_AFTER_INTERRUPT

    def __init__(self, uri: str, senders: int, context: Any) -> None:
        self.uri = uri  # as given; the writer's Tracker resolves it (``tracker().uri``)
        self.requests = context.Queue()
        self.replies = [context.Queue() for _ in range(senders)]
        self.calls = context.Queue()
        self.finished = context.Queue()
        self.outage = Outage(context)
        self._call_lock = threading.Lock()  # one call at a time
        self._seq = 0  # numbers the calls: an answer to a call a Ctrl-C abandoned is skipped
        self._stopped = False
        self.process = context.Process(
            target=writer_process, name="hpsearch-writer", daemon=True,
            args=(uri, self.requests, self.replies, self.calls, self.finished, self.outage,
                  os.getpid()))
        # at the latest when this process exits normally (an error before the sweep's own
        # stop): the writer ignores multiprocessing's SIGTERM to its daemons at exit
        atexit.register(self._stop_quietly)
        self.process.start()

    def _stop_quietly(self) -> None:
        try:
            self.stop()
        except BaseException:
            pass

    def alive(self) -> bool:
        """Whether the writer runs; when it does not, every worker's link says so too."""
        if self.process.is_alive():
            return True
        self.outage.gone.value = 1
        return False

    def tracker(self) -> TrackerProxy:
        return TrackerProxy(self)

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        """``Tracker.<name>(*args)`` in the writer, after every message sent before it."""
        with self._call_lock:
            self._seq += 1
            self.requests.put((CALLER, (self._seq, name, args)))
            while True:
                try:
                    seq, result, exc = self.calls.get(timeout=0.5)
                except queue.Empty:
                    if not self.alive():
                        raise StorageError(GONE) from None
                    continue
                if seq == self._seq:
                    break
        if exc is not None:
            raise exc
        return result

    def link(self, sender: int) -> Link:
        """Worker process ``sender``'s link (this process is its parent)."""
        return Link(self.uri, self.requests, self.replies[sender], sender, self.outage,
                    os.getpid())

    def log(self) -> RemoteTrialLog:
        """The trial log of the trials run in this process."""
        return RemoteTrialLog(Link(self.uri, self.requests, self.replies[0], 0, self.outage),
                              self.alive)

    def stop(self) -> None:
        """Write everything sent, close the runs no worker closed (a worker that was killed), and
        end the writer; its last error is raised here, in one line. Idempotent."""
        if self._stopped:
            return
        if self.process.pid is None:  # never started
            self._stopped = True
            return
        self.requests.put((None, None))
        self._stopped = True
        atexit.unregister(self._stop_quietly)
        interrupted, deadline, last = False, float("inf"), None
        while time.monotonic() < deadline:
            try:
                last = self.finished.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.alive():
                    last = GONE
                    break
            except KeyboardInterrupt:
                interrupted = True
                deadline = min(deadline, time.monotonic() + self.grace_after_interrupt)
        self.process.join(timeout=10)
        if self.process.is_alive():  # given up after an interrupt: it must not outlive us
            self.process.kill()
            self.process.join(timeout=10)
        for q in (self.requests, self.calls, self.finished, *self.replies):
            q.close()
            if last == GONE or interrupted:
                q.cancel_join_thread()  # nobody reads the other end any more
        if interrupted:
            if last:
                print(f"error: {last}", file=sys.stderr)
            raise KeyboardInterrupt
        if last:
            raise StorageError(last)
