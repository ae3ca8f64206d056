"""No password ever reaches a terminal or a file: every command, against every kind of failing
store that has a password in its URL, ends in one line, exit 2, and the password is nowhere in
stdout, stderr or the files the command wrote. Real processes, real servers on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ADMIN, HANG, StatusServer, connect_admin, free_port

PASSWORD = "hunter2pw"
SPEC = """\
name: {name}
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 2, batch_size: 64}}
budget: {{n_trials: 2, workers: 1}}
sampler: {{name: random, seed: 0}}
space:
  hidden_size: {{type: int, low: 16, high: 32}}
"""


def hpsearch(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE")} | env
    return subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=HANG)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A directory with two studies swept with tracking off: ``done`` (one complete trial, a
    checkpoint to export) and ``open`` (no trial yet, for a worker to join)."""
    cwd = tmp_path_factory.mktemp("creds")
    for name, args in (("done", ["--trials", "1"]), ("open", ["--timeout", "0.001"])):
        (cwd / f"{name}.yaml").write_text(SPEC.format(name=name))
        done = hpsearch(cwd, "sweep", f"{name}.yaml", "--tracking-uri", "none", *args)
        assert done.returncode == 0, done.stderr
    return cwd


def files_containing(root: Path, secret: str) -> list[str]:
    needles = {secret.encode(), quote(secret).encode()}
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and any(n in path.read_bytes() for n in needles):
            hits.append(str(path.relative_to(root)))
    return hits


def assert_one_masked_line(done: subprocess.CompletedProcess[str], root: Path) -> str:
    shown = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert PASSWORD not in done.stdout + done.stderr, shown
    assert done.returncode == 2, shown
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert not files_containing(root, PASSWORD), files_containing(root, PASSWORD)
    return lines[0]


def tracking_commands(uri: str) -> list[list[str]]:
    return [["sweep", "done.yaml", "--study", "fresh", "--tracking-uri", uri],
            ["worker", "open", "--tracking-uri", uri],
            ["report", "done", "--tracking-uri", uri],
            ["export", "done", "--tracking-uri", uri],
            ["recover", "done", "--tracking-uri", uri]]


def storage_commands(url: str) -> list[list[str]]:
    return [["sweep", "done.yaml", "--storage", url, "--tracking-uri", "none"],
            ["worker", "done", "--storage", url],
            ["status", "done", "--storage", url],
            ["report", "done", "--storage", url],
            ["export", "done", "--storage", url],
            ["recover", "done", "--storage", url]]


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["refused", 401, 403])
def test_tracking_server_with_a_password_is_never_shown(studies, answer):
    server = None
    if answer == "refused":
        port = free_port()  # nothing listens there
    else:
        server = StatusServer(int(answer))
        port = server.port
    uri = f"http://bob:{PASSWORD}@127.0.0.1:{port}"
    try:
        for args in tracking_commands(uri):
            line = assert_one_masked_line(hpsearch(studies, *args), studies)
            assert "bob:***@" in line or "tracking" in line or "registry" in line, (args, line)
    finally:
        if server is not None:
            server.close()
    if server is not None:
        assert server.requests, "the commands never reached the server"


@pytest.mark.slow
def test_password_from_the_environment_is_never_shown(studies):
    """MLFLOW_TRACKING_PASSWORD, the way to pass a password without putting it in a URI: a
    server refusing it (401) is reported in one line, without the password."""
    server = StatusServer(401)
    try:
        done = hpsearch(studies, "report", "done", "--tracking-uri",
                        f"http://127.0.0.1:{server.port}", MLFLOW_TRACKING_USERNAME="bob",
                        MLFLOW_TRACKING_PASSWORD=PASSWORD)
    finally:
        server.close()
    assert_one_masked_line(done, studies)
    assert server.requests


@pytest.mark.slow
@pytest.mark.parametrize("where", ["unreachable", "wrong password"])
def test_postgresql_with_a_password_is_never_shown(studies, where):
    if where == "unreachable":
        url = f"postgresql://bob:{PASSWORD}@127.0.0.1:{free_port()}/hps"
    else:  # the live server of the distributed tests, with a password that is not the role's
        connect_admin().close()  # the server is up: a refusal below is the password's
        base = ADMIN.rsplit("@", 1)[1]
        url = f"postgresql://hpsearch:{PASSWORD}@{base}"
    for args in storage_commands(url):
        line = assert_one_masked_line(hpsearch(studies, *args), studies)
        assert "storage" in line, (args, line)
    if where == "wrong password":
        assert "password authentication failed" in line, line


def test_mask_covers_urls_dsns_query_strings_and_registered_secrets():
    from hpsearch.errors import mask, register_secret

    assert mask("API request to http://bob:pw1@h:9/api failed") == \
        "API request to http://bob:***@h:9/api failed"
    assert mask("host=h password=pw2 user=u") == "host=h password=*** user=u"
    assert mask("http://h/x?password=pw3&y=1") == "http://h/x?password=***&y=1"
    register_secret("p@ss-word")  # as MLFLOW_TRACKING_PASSWORD would be, and its quoted form
    assert mask("auth failed for p@ss-word, p%40ss-word") == "auth failed for ***, ***"
    # a password in a URL is masked where it stands, not as a word elsewhere
    assert mask("postgresql://hpsearch:hpsearch@h/db: run `hpsearch recover x`") == \
        "postgresql://hpsearch:***@h/db: run `hpsearch recover x`"
    assert mask("sqlite:///mlruns/mlflow.db and journal:/x/y.journal") == \
        "sqlite:///mlruns/mlflow.db and journal:/x/y.journal"


@pytest.mark.slow
def test_every_command_works_on_a_study_swept_without_tracking(studies):
    """`--tracking-uri none`: the study records it, and status, report, export, recover and a
    worker all work from the Optuna storage and the local checkpoints alone."""
    for args in (["status", "done"], ["report", "done"], ["export", "done"],
                 ["recover", "done"], ["worker", "open"]):
        done = hpsearch(studies, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
    assert (studies / "reports" / "done" / "index.html").is_file()
    assert (studies / "exports" / "done" / "MLmodel").is_file()
    assert "not registered (tracking is off)" in hpsearch(studies, "export", "done").stdout
