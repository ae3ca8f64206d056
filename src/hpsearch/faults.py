"""What goes wrong under a sweep that is not the user's spec: a full or read-only disk, a storage
server that goes away, a worker that dies. Each is turned into one clear line, and nothing already
recorded is damaged.

- ``SafeJournalBackend``: Optuna's journal file, but a write that fails half-way (disk full) is
  cut back, so the journal never ends in a broken line that would corrupt the next append.
- ``describe``: the one-line message for a disk or storage failure (``None`` for anything else).
- ``is_outage``: a lost connection to an RDB storage (retry with backoff, see ``sweep``).
- ``StaleTrialHandler``: Optuna's heartbeat retry, plus closing the dead trial's MLflow run.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

from .errors import first_line

DISK_ERRNOS = {errno.ENOSPC: "no space left on the device",
               errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied",
               errno.EPERM: "permission denied",
               errno.EDQUOT: "disk quota exceeded",
               errno.EIO: "input/output error"}
# SQLite's words for the same conditions (MLflow's embedded store, Optuna's sqlite:// storage).
SQLITE_DISK = {"database or disk is full": "no space left on the device",
               "disk i/o error": "input/output error (a full or failing disk?)",
               "attempt to write a readonly database": "the database is read-only",
               "unable to open database file": "cannot open the database (read-only directory?)",
               "readonly database": "the database is read-only"}
# Words of a lost or refused database connection (psycopg, SQLAlchemy).
OUTAGE_WORDS = ("connection refused", "could not connect", "server closed the connection",
                "connection timed out", "terminating connection", "connection is closed",
                "consuming input failed", "ssl syscall error", "connection reset",
                "the database system is shutting down", "the database system is starting up",
                "no connection to the server", "connection failed")
ENDLESS_ENV = "HPSEARCH_TEST_ENDLESS_TRIALS"
AFTERWARDS = ("nothing recorded is lost: free space (or make it writable), run `hpsearch recover "
              "<study>` if a trial was running, then the same command again")


def endless_trials() -> frozenset[int]:
    """Trial numbers that train without an epoch limit ($HPSEARCH_TEST_ENDLESS_TRIALS, e.g.
    ``0,1``): the fault tests' way of making the trial a fault must hit one that cannot finish
    before it, on a machine of any speed. Unset in normal use."""
    raw = os.environ.get(ENDLESS_ENV, "")
    return frozenset(int(n) for n in raw.split(",") if n.strip().isdigit())


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts (Optuna re-raises storage errors from handlers)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def describe(exc: BaseException) -> str | None:
    """One line for a disk failure under the stores (full, read-only, I/O error) or a lost
    storage connection; None when ``exc`` is something else."""
    from .tracking import mask_uri

    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            where = e.filename or "a file under the stores"
            return f"{where}: {DISK_ERRNOS[e.errno]}; {AFTERWARDS}"
        text = str(e).lower()
        for words, meaning in SQLITE_DISK.items():
            if words in text:
                return f"{meaning} (SQLite: {words}); {AFTERWARDS}"
        if is_outage(e):
            return f"storage connection lost: {mask_uri(first_line(e))}"
    return None


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection to a database server (not a disk problem, not a bug)."""
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - SQLAlchemy comes with Optuna
        return False
    for e in _chain(exc):
        if isinstance(e, DBAPIError):
            if e.connection_invalidated:
                return True
            text = str(e).lower()
            if any(w in text for w in OUTAGE_WORDS):
                return True
    return False


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file with one change: an append that fails part-way (ENOSPC, EIO) is
    truncated back to where it started before the error is raised, under the journal's lock.
    Optuna skips a trailing partial line on read but appends the next record to it, which would
    make both unreadable; this keeps every record written before the failure."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        from optuna.storages.journal._file import get_lock_file

        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs)
                + "\n").encode("utf-8")
        with get_lock_file(self._lock):
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError as exc:
                    if exc.filename is None:
                        exc.filename = self._file_path
                    try:
                        os.ftruncate(fd, size)
                    except OSError:
                        pass
                    raise
            finally:
                os.close(fd)


class StaleTrialHandler:
    """Called by Optuna for each trial it fails because its worker's heartbeat stopped: enqueue a
    retry (Optuna's RetryHeartbeatStaleTrialCallback, up to ``max_retry`` times) and, once a
    tracker is attached (``attach``), close the dead trial's MLflow run as KILLED."""

    def __init__(self, max_retry: int = 2) -> None:
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.close_run: Callable[[str, int, str], Any] | None = None

    def attach(self, close_run: Callable[[str, int, str], Any]) -> None:
        self.close_run = close_run

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.retry(study, trial)
        if self.close_run is not None:
            self.close_run(study.study_name, trial.number,
                           "worker stopped sending heartbeats (killed or lost); failed by "
                           "Optuna's stale-trial check and enqueued for a retry")


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool | None:
    """Mark a RUNNING trial FAIL and enqueue its parameters again (user attribute ``retry_of``).
    None when another process finished it first; else whether a retry was enqueued."""
    from optuna.trial import TrialState

    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, RuntimeError):
        return None
    if not trial.params:
        return False
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number},
                        skip_if_exists=False)
    return True
