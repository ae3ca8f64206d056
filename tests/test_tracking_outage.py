"""A tracking server that goes away during a trial, with real processes: an MLflow server
stopped while trial 2 trains and started again (same port, same store) once the sweep has said
it noticed. The trial it hit is failed and retried, not counted; the sweep goes on and ends with
exactly n_trials; every trial has one run, closed with the right state, none left RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Lines, free_port, trials_running_with_epochs, wait_for_http

SPEC = """\
name: outage
data: {dataset: digits, seed: 0}
training: {max_epochs: 6, batch_size: 64, early_stopping_patience: null}
budget: {n_trials: 6, workers: 1}
sampler: {name: random, seed: 1}
pruner: none
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 8, high: 32}
"""


class Server:
    """`mlflow server` on 127.0.0.1:port over a SQLite store in ``where``, startable again."""

    def __init__(self, where: Path) -> None:
        self.where, self.port = where, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep +
               os.environ.get("PATH", "")}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{self.where / 'server.db'}", "--default-artifact-root",
             (self.where / "artifacts").as_uri(), "--no-serve-artifacts", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert wait_for_http(self.url + "/health", self.proc).strip() == b"OK"

    def stop(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, 15)  # the server and its uvicorn worker
        self.proc.wait(timeout=120)


@pytest.mark.slow
def test_a_tracking_server_restarted_mid_trial_costs_that_trial_only(tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient

    from hpsearch.study.store import TrialKey, budget_counts, open_storage

    server = Server(tmp_path)
    server.start()
    (tmp_path / "outage.yaml").write_text(SPEC)
    release = tmp_path / "release"
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "HPSEARCH_TEST_ENDLESS_TRIALS": "2",
           "HPSEARCH_TEST_RELEASE": str(release)}
    env.pop("HPSEARCH_STORAGE", None)
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "sweep", "outage.yaml"],
                            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = Lines(proc.stdout)
    storage = open_storage(str(tmp_path / "mlruns" / "optuna.journal"))
    try:
        trials_running_with_epochs(
            lambda: optuna.load_study(study_name="outage", storage=storage).get_trials(),
            [2], proc, out)
        server.stop()  # trial 2 is training, and cannot end before it is released
        out.wait_for("tracking store not answering", proc)
        release.touch()  # trial 2 ends now, its run not writable: lost
        out.wait_for("waiting for the tracking store", proc)
        server.start()
        assert proc.wait(timeout=600) == 0, out.rest(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
    text = out.rest(proc)
    assert "trial 2: FAIL (tracking store lost during the trial (" in text, text
    assert "tracking store back after" in text, text

    study = optuna.load_study(study_name="outage", storage=storage)
    trials = study.get_trials()
    counted, _lost, _ = budget_counts(trials)
    by_state = {s: [t.number for t in trials if t.state.name == s] for s in
                ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    assert counted == 6 and not by_state["RUNNING"], by_state
    assert 2 in by_state["FAIL"]
    retry = next(t for t in trials if t.user_attrs.get(TrialKey.RETRY_OF) == 2)
    assert retry.state.name == "COMPLETE" and retry.params == trials[2].params

    server.start()
    try:
        client = MlflowClient(server.url)
        exp = client.get_experiment_by_name("outage")
        runs = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'",
                                  max_results=100)
        by_number: dict[int, list] = {}
        for r in runs:
            by_number.setdefault(int(r.data.tags["optuna.trial.number"]), []).append(r)
        assert sorted(by_number) == [t.number for t in trials]
        assert all(len(v) == 1 for v in by_number.values()), by_number  # no duplicate run
        for t in trials:
            run = by_number[t.number][0]
            expected = "FAILED" if t.state.name == "FAIL" else "FINISHED"
            assert run.info.status == expected, (t.number, run.info.status)
        lost = by_number[2][0].data.tags
        assert lost["optuna.trial.state"] == "FAIL"
        assert lost["optuna.trial.reason"].startswith("tracking store lost during the trial")
        assert lost.get("hpsearch.retried_as") == str(retry.number)
    finally:
        server.stop()
