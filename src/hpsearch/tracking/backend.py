"""The tracking store behind the MLflow client: which URI (the argument, $MLFLOW_TRACKING_URI or
the embedded SQLite file under mlruns/), the embedded file made ready (WAL mode, a full or
read-only disk found at once), a tracking server's timeouts, and what a run records of the code
and the libraries that ran."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import StorageError, describe, mask_uri

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI to use: the argument, else $MLFLOW_TRACKING_URI, else the embedded store. A
    relative SQLite path is made absolute here (MLflow caches stores by URI string, and worker
    processes may start elsewhere)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def git_commit() -> str:
    """The commit of the hpsearch source that runs (an editable install's checkout), else of
    the current directory, else "unknown"."""
    for where in (Path(__file__).resolve().parent, Path.cwd()):
        try:
            out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                 capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return "unknown"


def versions() -> dict[str, str]:
    """The versions of the libraries a sweep runs on, read from their installed metadata: the
    machine's MLflow writer records them without importing scikit-learn and Optuna (~0.8 s)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "hpsearch": __version__}
    for name in ("numpy", "scikit-learn", "optuna", "mlflow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


_PRAGMAS_SET = False


def sqlite_wal() -> None:
    """Put every SQLite database this process opens in WAL mode with synchronous=NORMAL: readers
    (the MLflow UI, `hpsearch status`) no longer block writers, and a commit costs one write
    instead of several fsyncs (creating a trial run went from 65 ms to 14 ms). Durable across
    process crashes; only a power cut can lose the last commits."""
    global _PRAGMAS_SET
    if _PRAGMAS_SET:
        return

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _PRAGMAS_SET = True


def check_sqlite(db: Path) -> None:
    """Open the embedded store once as MLflow will (WAL mode): a full or read-only disk fails
    here in one line, instead of after MLflow's two minutes of connection retries."""

    if os.statvfs(db.parent).f_flag & os.ST_RDONLY:
        raise StorageError(f"tracking store {db}: {db.parent} is on a read-only file system; "
                           f"nothing recorded is lost: make it writable (or pass another "
                           f"--tracking-uri), then the same command again")
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL").fetchall()
            con.execute("BEGIN IMMEDIATE")  # takes the write lock: fails when read-only
            con.rollback()
        finally:
            con.close()
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"tracking store {db}: {describe(exc) or exc}") from None


def store_template() -> Path | None:
    """An empty MLflow database at the installed MLflow's schema, made once per MLflow version
    in the cache directory (None where it cannot be). A new store copied from it skips MLflow's
    schema migrations, about 2 s of every fresh directory's first sweep."""
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hpsearch"
    template = cache / f"mlflow-{mlflow.__version__}-store.db"
    if template.is_file():
        return template
    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="store-", dir=cache))
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(f"sqlite:///{work / 'store.db'}").search_experiments()  # migrates
            con = sqlite3.connect(work / "store.db")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            os.replace(work / "store.db", template)  # whole, or not at all
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except Exception:  # a cache that cannot be written: MLflow creates the store itself
        return None
    return template


def seed_sqlite(db: Path) -> None:
    """Create the new store ``db`` as a copy of ``store_template()``, with its Default
    experiment's artifacts where MLflow would have put them. Never over an existing file."""
    template = store_template()
    if template is None or db.exists():
        return
    staged = db.with_name(f".{db.name}.{os.getpid()}")
    try:
        shutil.copyfile(template, staged)
        con = sqlite3.connect(staged)
        with con:
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                        (os.path.abspath(os.path.join("mlruns", "0")),))
        con.close()
        os.link(staged, db)  # fails if another process made the store meanwhile: that one wins
    except OSError:
        pass  # a full or read-only disk is reported by check_sqlite
    finally:
        staged.unlink(missing_ok=True)


def check_scheme(uri: str) -> None:
    """StorageError unless ``uri`` is a tracking URI MLflow can use; for a tracking server, the
    timeouts that make a server that is down fail in seconds."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise StorageError(f"tracking URI {mask_uri(uri)!r}: unsupported scheme {scheme!r} "
                           f"(use sqlite:///path, http(s)://host:port or a database URL; "
                           f"'none' switches tracking off)")
    if scheme in ("http", "https"):
        # Fail in seconds, not minutes, when the server is down (MLflow's defaults retry ~2 min).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        # MLflow prints "View run ... at: URL" on every closed run of a tracking server.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def prepare_backend(uri: str) -> str:
    """Make the store of resolved ``uri`` ready for a client and return ``uri``: the embedded
    SQLite file's directory created and the file opened once (one-line errors), WAL mode for
    every SQLite connection, MLflow's logging of schema migrations and database errors quiet."""
    if uri.startswith("sqlite:"):
        sqlite_wal()
    for name in ("mlflow", "alembic"):  # schema-migration chatter on first use
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow logs a traceback for each database error before raising it; Tracker._call reports it.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"tracking store {uri}: cannot create {db.parent} "
                               f"({exc.strerror})") from None
        seed_sqlite(db)
        check_sqlite(db)
    return uri
