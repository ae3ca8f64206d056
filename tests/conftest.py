from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Under pytest-xdist (`make test` runs two test processes on two cores), one BLAS thread per test
# process and for every process it starts: two processes each with a BLAS pool the size of the
# machine spin against each other (a Fashion-MNIST test took 5x its serial time).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

ADMIN = os.environ.get("HPSEARCH_TEST_POSTGRES",
                       "postgresql://hpsearch:hpsearch@127.0.0.1:5432/postgres")
FASHION_DIR = Path(os.environ.get("HPSEARCH_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST IDX files not found in {FASHION_DIR}: "
                    "`make test` installs it (scripts/sysdeps.sh): apt-get install "
                    "dataset-fashion-mnist")
    return FASHION_DIR


class StatusServer:
    """An HTTP server on 127.0.0.1 that answers every request with one status code and counts
    the requests (a tracking server that is down behind its proxy, or refuses a password)."""

    def __init__(self, status: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.requests.append(f"{self.command} {self.path}")
                body = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "status server"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.requests: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect_admin() -> Any:
    """An autocommit connection to the test server's ``postgres`` database, or a failure that
    says how to start the server."""
    import psycopg  # in the dev extra: a missing driver fails, it is not skipped
    try:
        return psycopg.connect(ADMIN, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN} ({exc}). `make test` starts it "
                    f"(scripts/sysdeps.sh); by hand: bash scripts/postgres.sh")


@pytest.fixture(scope="module")
def databases():
    admin = connect_admin()
    names = [f"hps_{uuid.uuid4().hex[:8]}_{k}" for k in ("optuna", "mlflow")]
    with admin.cursor() as cur:
        for n in names:
            cur.execute(f"CREATE DATABASE {n}")
    base = ADMIN.rsplit("/", 1)[0]
    yield [f"{base}/{n}" for n in names]
    with admin.cursor() as cur:
        for n in names:
            cur.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")
    admin.close()


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory):
    """An MLflow tracking server on 127.0.0.1 over the module's second database."""
    artifacts = tmp_path_factory.mktemp("server-artifacts")
    port = free_port()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep +
           os.environ.get("PATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             databases[1], "--default-artifact-root", artifacts.as_uri(),
                             "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(url + "/health", proc).strip() == b"OK"
    except BaseException:
        proc.kill()
        raise
    yield url
    proc.terminate()
    proc.wait(timeout=30)


# -- waiting for observable state (never for a fixed time) ---------------------------------------
# The timeouts below are bounds on a hang, not synchronisation: every wait returns as soon as
# the state it waits for is there, on a machine of any speed.
HANG = 600.0


def wait_until(check: Callable[[], tuple[bool, Any]], what: str, timeout: float = HANG,
               proc: subprocess.Popen[str] | None = None, output: Lines | None = None) -> Any:
    """Poll ``check()`` (it returns ``(done, seen)``) until done; return what it saw. Fails with
    what was seen last, at once if ``proc`` exited meanwhile (with its output so far)."""
    end = time.monotonic() + timeout
    seen: Any = None
    while True:
        try:
            done, seen = check()
        except Exception as exc:  # a store not created yet, say: keep polling
            done, seen = False, f"{type(exc).__name__}: {exc}"
        if done:
            return seen
        exited = proc is not None and proc.poll() is not None
        if exited or time.monotonic() > end:
            why = f"the process exited with {proc.returncode}" if exited and proc else \
                f"{timeout:.0f} s passed"
            said = f"; its output:\n{output.text()}" if output is not None else ""
            pytest.fail(f"waiting for {what}: {why}; last seen: {seen}{said}")
        time.sleep(0.1)


def wait_for_http(url: str, proc: subprocess.Popen[Any], data: bytes | None = None) -> bytes:
    """The body of the first 200 answer from ``url`` (a POST when ``data`` is given), polling
    while the server process starts; fails at once if the process exits."""
    import urllib.request

    def check() -> tuple[bool, Any]:
        req = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return True, r.read()
        except OSError as exc:
            return False, f"{type(exc).__name__}: {exc}"
    return wait_until(check, f"an answer from {url}", proc=proc)


class Lines:
    """Collects a text stream's lines in a thread, so a test can wait for a line without
    blocking on the pipe (and the process never blocks on a full one)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, proc: subprocess.Popen[str] | None = None) -> str:
        """The first line containing ``needle``, once it is there."""
        def check() -> tuple[bool, Any]:
            hit = next((ln for ln in list(self.lines) if needle in ln), None)
            return hit is not None, hit or f"{len(self.lines)} lines without {needle!r}"
        return wait_until(check, f"a line with {needle!r}", proc=proc, output=self)

    def rest(self, proc: subprocess.Popen[str]) -> str:
        """Everything, once the process has ended and the stream is drained."""
        proc.wait(timeout=HANG)
        self.thread.join(timeout=HANG)
        return self.text()


def trials_running_with_epochs(load_trials: Callable[[], list[Any]], numbers: list[int],
                               proc: subprocess.Popen[str] | None = None,
                               output: Lines | None = None) -> None:
    """Wait until each of the trials ``numbers`` is RUNNING with at least one reported epoch
    (the sweep reports the objective to the storage after every epoch)."""
    def check() -> tuple[bool, Any]:
        trials = {t.number: t for t in load_trials()}
        seen = {n: (t.state.name, len(t.intermediate_values)) for n, t in trials.items()}
        ok = all(n in trials and trials[n].state.name == "RUNNING"
                 and trials[n].intermediate_values for n in numbers)
        return ok, seen
    wait_until(check, f"trials {numbers} RUNNING with a reported epoch (trial: (state, epochs))",
               proc=proc, output=output)


def default_stop_signals() -> None:
    """In the child: the stopping signals at their defaults, whatever the test runner inherited
    (a shell's background job starts with SIGINT ignored, `nohup` with SIGHUP ignored, and a
    signal ignored at start stays ignored, by design)."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
