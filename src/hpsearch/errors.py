"""Errors a user can cause (the CLI prints them as one line ``error: ...`` and exits with 2),
and the one boundary that keeps credentials out of every message: ``mask`` for a text,
``install_masking`` for everything a process writes to its terminal or its logs. And the
words for what fails under the stores (``describe``: a full or read-only disk, a lost storage
connection; ``is_outage``: the connection kind, which a worker retries with backoff).

A leaf module: everyone may import it."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import re
import sys
import threading
from typing import Any, TextIO
from urllib.parse import quote


class HpsearchError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class SpecError(HpsearchError):
    """A sweep spec is malformed or invalid."""


class DataError(HpsearchError):
    """A dataset is missing, corrupt or unusable."""


class CheckpointError(HpsearchError):
    """A checkpoint is missing, corrupt or tampered with."""


class StorageError(HpsearchError):
    """An Optuna storage or MLflow tracking store is unreachable or unusable."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when empty), masked, cut at
    ``limit``."""
    return mask((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:limit]


# -- credentials --------------------------------------------------------------------------------
# user:password@ in any URL (postgresql://, http://, mysql+pymysql://, ...).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@\s/]*)@")
# password=... in a libpq DSN ("host=h password=x"), a query string (?password=x&...) or a
# JSON-ish text ("password": "x").
_KEYVALUE = re.compile(r"(?P<key>\b(?:password|passwd|pwd|token|secret)\b[\"']?\s*[=:]\s*[\"']?)"
                       r"(?P<value>[^\s&;,'\"}]+)", re.IGNORECASE)
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD",
              "DATABRICKS_TOKEN", "AWS_SECRET_ACCESS_KEY")
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-quoted form) wherever it appears from now on. For secrets
    that no pattern finds, those of SECRET_ENV; a password in a URL is found by its place
    (``user:***@``), and masking it as a bare word too would hide words like a program's name
    where a password is one (the test role's is "hpsearch")."""
    if value and len(value) >= 3:
        _secrets.update({value, quote(value, safe="")})


def mask(text: str) -> str:
    """``text`` with every credential replaced by ***: passwords in URLs, ``password=`` pairs,
    and the secrets registered (SECRET_ENV's values)."""
    for name in SECRET_ENV:
        register_secret(os.environ.get(name))
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:***@" if m.group("pw") != "***"
                         else m.group(0), text)
    text = _KEYVALUE.sub(lambda m: m.group("key") + "***", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by ***, for messages and logs."""
    return mask(uri)


class MaskingStream:
    """A text stream that masks credentials in what is written through it (stdout, stderr).

    When its reader goes away (``hpsearch sweep ... | head``), what follows goes to /dev/null
    and the work goes on: a broken pipe is no reason to lose a running trial, nor to print a
    traceback. A long command says so once on stderr (``note_when_output_closes``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(mask(text))
        except BrokenPipeError:
            self._reader_gone()
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # the buffered rest, too, goes nowhere
            os.close(devnull)
        except (OSError, ValueError):
            pass
        global _closed_note
        if _closed_note and self._stream is sys.__stdout__:
            note, _closed_note = _closed_note, None
            if multiprocessing.parent_process() is None:  # the command's own process says it
                print(f"note: {note}", file=sys.stderr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_closed_note: str | None = None


def note_when_output_closes(note: str) -> None:
    """What the process says on stderr if its standard output's reader goes away."""
    global _closed_note
    _closed_note = note


_install_lock = threading.Lock()
_record_factory = logging.getLogRecordFactory()


def _masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _record_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report
        return record
    record.msg, record.args = mask(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    return record


def install_masking() -> None:
    """The boundary: from now on this process's stdout and stderr, and every log record of
    every library (MLflow, SQLAlchemy, psycopg, urllib3, requests, Optuna), are masked.
    Idempotent; called by the CLI and by each worker process."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, MaskingStream):
                setattr(sys, name, MaskingStream(stream))
        if logging.getLogRecordFactory() is not _masked_record:
            logging.setLogRecordFactory(_masked_record)


# -- failures of the machine under the stores (a full disk, a lost server) ---------------------
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
# PostgreSQL's words when its connection slots are taken, and the setting that limits them.
CONNECTION_LIMITS = {
    "too many clients already": "the server's max_connections (postgresql.conf)",
    "remaining connection slots are reserved": "the server's max_connections (postgresql.conf)",
    "too many connections for role": "the role's CONNECTION LIMIT (ALTER ROLE)",
    "too many connections for database": "the database's CONNECTION LIMIT (ALTER DATABASE)",
}
# Words of a tracking server that is down, restarting or behind a proxy that says so.
TRACKING_OUTAGE_WORDS = ("connection refused", "max retries exceeded", "failed to establish",
                         "connection aborted", "remote end closed connection", "read timed out",
                         "connection reset", "temporarily_unavailable", "service unavailable",
                         "bad gateway", "gateway timeout", "too many 503", "too many 502",
                         "too many 504")


def storage_retries() -> int:
    """Reconnection attempts after a storage or tracking-store outage ($HPSEARCH_STORAGE_RETRIES,
    default 6: waits of 1, 2, 4, 8, 16 and 32 s, about a minute in all)."""
    raw = os.environ.get("HPSEARCH_STORAGE_RETRIES", "6")
    if not raw.isdigit():
        raise StorageError(f"HPSEARCH_STORAGE_RETRIES={raw!r}: expected a whole number")
    return int(raw)


class TrackingOutage(StorageError):
    """The tracking store is unreachable for now (a server down or restarting): the writer
    retries with backoff, and the trial it lost is retried, not counted."""


def is_tracking_outage(exc: BaseException) -> bool:
    """A tracking server that does not answer (connection refused or reset, a gateway's 502,
    503 or 504), not a store that refuses us or a bad request."""
    if isinstance(exc, TrackingOutage):
        return True
    text = " ".join(str(e).lower() for e in _chain(exc))
    return any(w in text for w in TRACKING_OUTAGE_WORDS)


AFTERWARDS = ("nothing recorded is lost: free space (or make it writable), run `hpsearch recover "
              "<study>` if a trial was running, then the same command again")


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
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            where = e.filename or "a file under the stores"
            return f"{where}: {DISK_ERRNOS[e.errno]}; {AFTERWARDS}"
        text = str(e).lower()
        for words, meaning in SQLITE_DISK.items():
            if words in text:
                return f"{meaning} (SQLite: {words}); {AFTERWARDS}"
        for words, setting in CONNECTION_LIMITS.items():
            if words in text:
                return (f"PostgreSQL refused a connection: {words} ({setting} is reached; each "
                        f"hpsearch worker holds up to 2 connections): start fewer workers, "
                        f"raise {setting}, or put the storage behind `hpsearch storage-proxy`")
        lost = _outage(e)
        if lost is not None:  # its own words, not those of what Optuna raised around it
            return f"storage connection lost: {mask_uri(first_line(lost))}"
    return None


def _outage(exc: BaseException) -> BaseException | None:
    """The database error in ``exc``'s chain that says the connection is lost or refused."""
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - SQLAlchemy comes with Optuna
        return None
    for e in _chain(exc):
        if isinstance(e, DBAPIError):
            if e.connection_invalidated or any(w in str(e).lower() for w in OUTAGE_WORDS):
                return e
    return None


def is_outage(exc: BaseException) -> bool:
    """A lost or refused connection to a database server (not a disk problem, not a bug)."""
    return _outage(exc) is not None
