"""Many workers on one PostgreSQL, for real: 32 worker processes of one sweep, each holding at most
two connections (its pool and heartbeat thread; pg_stat_activity names each hpsearch-<pid>);
the same sweep's workers through `hpsearch storage-proxy`, where only the proxy connects; and a
database whose connection slots are taken, in one line naming the setting."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import ADMIN, connect_admin, free_port

SPEC = """\
name: many
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 2, batch_size: 64, early_stopping_patience: null}}
budget: {{n_trials: {trials}}}
sampler: {{name: random, seed: 0}}
pruner: none
space:
  learning_rate: {{type: float, low: 1.0e-3, high: 0.1, log: true}}
  hidden_size: {{type: int, low: 8, high: 32}}
"""


class Peaks(threading.Thread):
    """The peak connections to database ``db`` (in all, and of one hpsearch process)."""

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db, self.total, self.per_process = db, 0, 0
        self.processes: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        con = connect_admin()
        while not self.done.is_set():
            rows = [r[0] for r in con.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                (self.db,)).fetchall()]
            ours = collections.Counter(a for a in rows if a.startswith("hpsearch-"))
            self.total = max(self.total, len(rows))
            self.per_process = max([self.per_process, *ours.values()])
            self.processes |= set(ours)
            time.sleep(0.05)
        con.close()


def run_sweep_cli(tmp_path, storage: str, workers: int, trials: int, db: str,
                  study: str = "many") -> Peaks:
    (tmp_path / "many.yaml").write_text(SPEC.format(trials=trials))
    peaks = Peaks(db)
    peaks.start()
    env = {**os.environ, "HPSEARCH_STORAGE": storage, "MLFLOW_TRACKING_URI": "none"}
    try:
        done = subprocess.run([sys.executable, "-m", "hpsearch", "sweep", "many.yaml",
                               "--workers", str(workers), "--study", study], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1200)
    finally:
        peaks.done.set()
        peaks.join()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return peaks


def check_trials(storage: str, trials: int, study: str = "many") -> None:
    import optuna

    from hpsearch.study.store import budget_counts, open_storage

    store = open_storage(storage)
    found = optuna.load_study(study_name=study, storage=store).get_trials()
    # this process's pooled connection must not stay open into the next test's count
    store.engine.dispose()  # type: ignore[attr-defined]
    counted, _, _ = budget_counts(found)
    states = collections.Counter(t.state.name for t in found)
    assert counted == trials and states["RUNNING"] == 0, states


@pytest.mark.slow
def test_32_workers_hold_two_connections_each(databases, tmp_path):
    db = databases[0].rsplit("/", 1)[1]
    peaks = run_sweep_cli(tmp_path, databases[0], 32, 64, db)  # 2 trials a worker
    check_trials(databases[0], 64)
    assert len(peaks.processes) >= 8, peaks.processes  # many workers held connections at once
    assert peaks.per_process <= 2, peaks.per_process
    assert peaks.total <= 2 * 33 + 2, peaks.total  # 32 workers and the sweep process


@pytest.mark.slow
def test_workers_behind_the_storage_proxy(databases, tmp_path):
    db = databases[0].rsplit("/", 1)[1]
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "hpsearch", "storage-proxy", "--storage",
                              databases[0], "--port", str(port), "--threads", "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()  # said once it serves
        assert f"storage proxy on grpc://127.0.0.1:{port} for postgresql://hpsearch:***@" \
            in line, line + proxy.stderr.read() if proxy.stderr else line
        peaks = run_sweep_cli(tmp_path, f"grpc://127.0.0.1:{port}", 8, 32, db, "proxied")
        check_trials(databases[0], 32, "proxied")
        # only the proxy connects: its pool (3 threads, plus one), whatever the workers
        assert len(peaks.processes) == 1 and peaks.total <= 4, (peaks.processes, peaks.total)
    finally:
        os.killpg(proxy.pid, 15)
        proxy.wait(timeout=60)


def test_taken_connection_slots_are_one_line_naming_the_setting(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hpsearch.cli import main
    from hpsearch.errors import describe

    admin = connect_admin()
    name = f"hps_full_{os.getpid()}"
    admin.execute(f"CREATE DATABASE {name} CONNECTION LIMIT 0")
    try:
        (tmp_path / "many.yaml").write_text(SPEC.format(trials=2))
        monkeypatch.chdir(tmp_path)
        r = CliRunner().invoke(main, ["sweep", "many.yaml", "--tracking-uri", "none",
                                      "--storage", f"{ADMIN.rsplit('/', 1)[0]}/{name}"])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: storage postgresql://"), r.output
        assert f"/{name}: PostgreSQL refused a connection: too many connections for database " \
            in lines[0]
        assert "the database's CONNECTION LIMIT (ALTER DATABASE) is reached" in lines[0]
        assert "hpsearch:hpsearch@" not in r.output
    finally:
        admin.execute(f"DROP DATABASE {name}")
        admin.close()
    # the server's own limit, in the words PostgreSQL uses for it
    message = describe(RuntimeError("connection failed: FATAL:  sorry, too many clients "
                                    "already"))
    assert message is not None and "max_connections (postgresql.conf)" in message
