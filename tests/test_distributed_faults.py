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
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import free_port

# Trials of a few seconds each (300 epochs of small batches), so that a fault lands mid-trial.
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
    full |= {"PYTHONUNBUFFERED": "1", "HPSEARCH_HEARTBEAT": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", f"{name}.yaml",
                             "--storage", storage], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_first_epochs(proc: subprocess.Popen[str], name: str) -> list[str]:
    out = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        if line.startswith(f"sweep {name}:"):
            break
    time.sleep(4)  # data loaded, well inside trial 0
    return out


def sweep_through_proxy(url: str, cwd: Path, name: str, retries: int):
    """A sweep whose storage connections pass through a fresh proxy, once trial 0 runs."""
    proxy = Proxy(urlsplit(url).port or 5432)
    proxy.start()
    storage = via(url, proxy.port)
    proc = start_sweep(cwd, name, storage, HPSEARCH_STORAGE_RETRIES=str(retries))
    return proxy, storage, proc, wait_for_first_epochs(proc, name)


def hpsearch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["HPSEARCH_HEARTBEAT"] = "1"
    return subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def trial_runs(cwd: Path, name: str):
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return {int(r.data.tags["optuna.trial.number"]): r for r in runs
            if r.data.tags.get("hpsearch.role") == "trial"}, runs


def check_finished_with_one_retry(cwd: Path, name: str, storage: str) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["retry_of"] == 0
    by_number, runs = trial_runs(cwd, name)
    assert sorted(by_number) == [0, 1, 2]
    assert by_number[0].info.status in ("FAILED", "KILLED")
    assert by_number[0].data.tags["optuna.trial.state"] == "FAIL"
    assert by_number[1].data.tags["hpsearch.retry_of"] == "0"
    assert len(by_number[1].data.metrics) > 0
    assert all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.slow
def test_kill_9_on_postgresql_heartbeat_fails_and_retries(databases, tmp_path):
    storage = databases[0]
    proc = start_sweep(tmp_path, "pgkill", storage)
    wait_for_first_epochs(proc, "pgkill")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    study = optuna.load_study(study_name="pgkill", storage=storage)
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    assert trial_runs(tmp_path, "pgkill")[0][0].info.status == "RUNNING"

    time.sleep(4)  # more than the grace period (3 heartbeats of 1 s)
    again = hpsearch(tmp_path, "sweep", "pgkill.yaml", "--storage", storage)
    assert again.returncode == 0, again.stderr
    check_finished_with_one_retry(tmp_path, "pgkill", storage)
    run = trial_runs(tmp_path, "pgkill")[0][0]
    assert run.info.status == "KILLED" and "heartbeat" in run.data.tags["optuna.trial.reason"]


@pytest.mark.slow
def test_storage_drop_then_back_the_sweep_goes_on(databases, tmp_path):
    proxy, storage, proc, head = sweep_through_proxy(databases[0], tmp_path, "pgdrop", 5)
    proxy.stop()
    time.sleep(3)
    proxy.start()
    out, err = proc.communicate(timeout=600)
    proxy.stop()
    out = "".join(head) + out
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    assert "storage lost" in out and "storage back after" in out, out
    assert "trial 0: FAIL (storage lost while it ran)" in out, out
    check_finished_with_one_retry(tmp_path, "pgdrop", databases[0])
    run = trial_runs(tmp_path, "pgdrop")[0][0]
    assert "storage lost" in run.data.tags["optuna.trial.reason"]


@pytest.mark.slow
def test_storage_gone_for_good_stops_cleanly_then_recovers(databases, tmp_path):
    proxy, storage, proc, _ = sweep_through_proxy(databases[0], tmp_path, "pggone", 2)
    proxy.stop()
    started = time.time()
    out, err = proc.communicate(timeout=300)
    assert time.time() - started < 60
    assert proc.returncode == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: storage unreachable"), err
    assert "hpsearch recover pggone" in lines[0] and ":hpsearch@" not in lines[0], lines[0]
    by_number, runs = trial_runs(tmp_path, "pggone")
    assert by_number[0].info.status == "FAILED"  # closed by the worker, storage or not
    assert all(r.info.status != "RUNNING" for r in runs)

    proxy.start()  # back: recover fails and retries the trial, the same command finishes
    time.sleep(4)
    recovered = hpsearch(tmp_path, "recover", "pggone", "--storage", storage)
    assert recovered.returncode == 0 and "trial 0: FAIL" in recovered.stdout, recovered
    again = hpsearch(tmp_path, "sweep", "pggone.yaml", "--storage", storage)
    proxy.stop()
    assert again.returncode == 0, again.stderr
    check_finished_with_one_retry(tmp_path, "pggone", databases[0])
