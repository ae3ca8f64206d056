"""Faults on the PostgreSQL storage: a worker killed with SIGKILL (heartbeat, stale-trial retry),
and the storage connection dropping mid-sweep (backoff, then going on or stopping cleanly).

The drop is a real one: the worker talks to PostgreSQL through a TCP proxy on 127.0.0.1 that the
test closes (every connection reset, new ones refused) and opens again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import HANG, Lines, free_port, trials_running_with_epochs, wait_until

# Trial 0 trains without an epoch limit (HPSEARCH_TEST_ENDLESS_TRIALS=0, below), so that the fault
# lands inside it on a machine of any speed; the others (its retry included) take 300 epochs.
SPEC = """\
name: {name}
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 300, batch_size: 16, early_stopping_patience: null}}
budget: {{n_trials: 3, workers: 1}}
pruner: none
sampler: {{name: random, seed: 0}}
space:
  hidden_size: {{type: int, low: 200, high: 256}}
"""


class Proxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target that can be cut and restored."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        assert self.listener is not None
        for s in [self.listener, *self.sockets]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets = []


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{port}"))


def start_sweep(cwd: Path, name: str, storage: str, **env: str) -> subprocess.Popen[str]:
    (cwd / f"{name}.yaml").write_text(SPEC.format(name=name))
    full = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full |= {"PYTHONUNBUFFERED": "1", "HPSEARCH_HEARTBEAT": "1",
             "HPSEARCH_TEST_ENDLESS_TRIALS": "0", **env}
    return subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", f"{name}.yaml",
                             "--storage", storage], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_inside_trial_0(proc: subprocess.Popen[str], name: str, url: str) -> Lines:
    """Once trial 0 runs and has reported an epoch (read through ``url``, not the proxy)."""
    output = Lines(proc.stdout)
    trials_running_with_epochs(
        lambda: optuna.load_study(study_name=name, storage=url).get_trials(), [0], proc, output)
    return output


def wait_heartbeat_stale(url: str, number: int, grace: float = 3.0) -> None:
    """Until trial ``number``'s last heartbeat is older than the grace period (3 heartbeats of
    HPSEARCH_HEARTBEAT=1 s), as Optuna's stale-trial check measures it: by the server's clock."""
    import psycopg

    def check():
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT EXTRACT(EPOCH FROM (now()::timestamp - h.heartbeat)) FROM "
                "trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
                "WHERE t.number = %s AND t.state = 'RUNNING'", (number,)).fetchone()
        age = None if row is None else float(row[0])
        return age is not None and age > grace, f"heartbeat age {age} s"
    wait_until(check, f"trial {number}'s heartbeat to go stale")


def sweep_through_proxy(url: str, cwd: Path, name: str, retries: int):
    """A sweep whose storage connections pass through a fresh proxy, once trial 0 runs."""
    proxy = Proxy(urlsplit(url).port or 5432)
    proxy.start()
    storage = via(url, proxy.port)
    proc = start_sweep(cwd, name, storage, HPSEARCH_STORAGE_RETRIES=str(retries))
    return proxy, storage, proc, wait_inside_trial_0(proc, name, url)


def hpsearch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["HPSEARCH_HEARTBEAT"] = "1"
    return subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HANG)


def trial_runs(cwd: Path, name: str):
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return {int(r.data.tags["optuna.trial.number"]): r for r in runs
            if r.data.tags.get("hpsearch.role") == "trial"}, runs


def check_finished_with_one_retry(cwd: Path, name: str, storage: str) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    # the lost trial does not count towards n_trials (3): three complete trials beside it
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["retry_of"] == 0
    by_number, runs = trial_runs(cwd, name)
    assert sorted(by_number) == [0, 1, 2, 3]
    assert by_number[0].info.status in ("FAILED", "KILLED")
    assert by_number[0].data.tags["optuna.trial.state"] == "FAIL"
    assert by_number[1].data.tags["hpsearch.retry_of"] == "0"
    assert by_number[0].data.tags["hpsearch.retried_as"] == "1"
    assert len(by_number[1].data.metrics) > 0
    assert all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.slow
def test_kill_9_on_postgresql_heartbeat_fails_and_retries(databases, tmp_path):
    storage = databases[0]
    proc = start_sweep(tmp_path, "pgkill", storage)
    wait_inside_trial_0(proc, "pgkill", storage)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=HANG)
    study = optuna.load_study(study_name="pgkill", storage=storage)
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    assert trial_runs(tmp_path, "pgkill")[0][0].info.status == "RUNNING"

    wait_heartbeat_stale(storage, 0)
    again = hpsearch(tmp_path, "sweep", "pgkill.yaml", "--storage", storage)
    assert again.returncode == 0, again.stderr
    check_finished_with_one_retry(tmp_path, "pgkill", storage)
    run = trial_runs(tmp_path, "pgkill")[0][0]
    assert run.info.status == "KILLED" and "heartbeat" in run.data.tags["optuna.trial.reason"]


@pytest.mark.slow
def test_storage_drop_then_back_the_sweep_goes_on(databases, tmp_path):
    proxy, storage, proc, output = sweep_through_proxy(databases[0], tmp_path, "pgdrop", 5)
    proxy.stop()
    output.wait_for("storage lost", proc)  # the worker saw the outage: now bring it back
    proxy.start()
    out = output.rest(proc)
    err = proc.stderr.read()
    proxy.stop()
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    assert "storage lost" in out and "storage back after" in out, out
    assert "trial 0: FAIL (storage lost while it ran)" in out, out
    check_finished_with_one_retry(tmp_path, "pgdrop", databases[0])
    run = trial_runs(tmp_path, "pgdrop")[0][0]
    assert "storage lost" in run.data.tags["optuna.trial.reason"]


@pytest.mark.slow
def test_storage_gone_for_good_stops_cleanly_then_recovers(databases, tmp_path):
    proxy, storage, proc, output = sweep_through_proxy(databases[0], tmp_path, "pggone", 2)
    proxy.stop()
    out = output.rest(proc)
    err = proc.stderr.read()
    assert proc.returncode == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: storage unreachable"), err
    # two retries, 1 + 2 s of backoff: no minutes of waiting against a storage that is gone
    assert "unreachable for 3 s after 2 retries" in lines[0], lines[0]
    assert "hpsearch recover pggone" in lines[0] and ":hpsearch@" not in lines[0], lines[0]
    by_number, runs = trial_runs(tmp_path, "pggone")
    assert by_number[0].info.status == "FAILED"  # closed by the worker, storage or not
    assert all(r.info.status != "RUNNING" for r in runs)

    proxy.start()  # back: recover fails and retries the trial, the same command finishes
    wait_heartbeat_stale(databases[0], 0)
    recovered = hpsearch(tmp_path, "recover", "pggone", "--storage", storage)
    assert recovered.returncode == 0 and "trial 0: FAIL" in recovered.stdout, recovered
    again = hpsearch(tmp_path, "sweep", "pggone.yaml", "--storage", storage)
    proxy.stop()
    assert again.returncode == 0, again.stderr
    check_finished_with_one_retry(tmp_path, "pggone", databases[0])
