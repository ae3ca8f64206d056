"""A worker killed with SIGKILL mid-trial, on the journal storage: recover, then finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from conftest import HANG, Lines, trials_running_with_epochs
from hpsearch.cli import main
from hpsearch.study.store import open_storage, resolve_storage_url
from hpsearch.tracking.backend import resolve_tracking_uri

SPEC = """\
name: killed
training: {max_epochs: 300, batch_size: 16, early_stopping_patience: null}
budget: {n_trials: 3, workers: 1}
pruner: none
sampler: {name: random, seed: 0}
space:
  hidden_size: {type: int, low: 200, high: 256}
"""


@pytest.mark.slow
def test_kill_9_then_recover_then_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "killed.yaml").write_text(SPEC)
    # trial 0 trains without an epoch limit: the kill lands inside it on a machine of any speed
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HPSEARCH_TEST_ENDLESS_TRIALS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", "killed.yaml"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = Lines(proc.stdout)
    journal = tmp_path / "mlruns" / "optuna.journal"
    trials_running_with_epochs(lambda: optuna.load_study(
        study_name="killed", storage=open_storage(resolve_storage_url(str(journal)))
    ).get_trials(), [0], proc, output)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=HANG)

    study = optuna.load_study(study_name="killed",
                              storage=open_storage(resolve_storage_url(None)))
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]
    client = MlflowClient(resolve_tracking_uri(None))
    exp = client.get_experiment_by_name("killed")
    runs = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'")
    assert [r.info.status for r in runs] == ["RUNNING"]

    # resumed before `recover`, the sweep names the trial still RUNNING and what to do (here
    # with a total of 1, which that trial holds: nothing else runs)
    result = CliRunner().invoke(main, ["sweep", "killed.yaml", "--trials", "1"])
    assert result.exit_code == 0, result.output
    assert ("note: trial(s) 0 RUNNING already: another worker's, or left by a killed sweep "
            "(then, with no worker running, `hpsearch recover killed` fails and retries them, "
            "and this command resumes)") in result.output, result.output
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]

    result = CliRunner().invoke(main, ["recover", "killed"])
    assert result.exit_code == 0, result.output
    assert "trial 0: FAIL" in result.output and "enqueued" in result.output
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "KILLED" and run.data.tags["optuna.trial.state"] == "FAIL"
    assert "worker died" in run.data.tags["optuna.trial.reason"]

    # Resume: the lost trial does not count: the study finishes with 3 complete trials beside
    # it, the first of them a retry of trial 0's parameters.
    (tmp_path / "killed.yaml").write_text(SPEC.replace("max_epochs: 300", "max_epochs: 3"))
    result = CliRunner().invoke(main, ["sweep", "killed.yaml"])
    assert result.exit_code == 0, result.output
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params
    runs = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'")
    assert len(runs) == 4 and all(r.info.status != "RUNNING" for r in runs)
    lost = [r for r in runs if r.data.tags["optuna.trial.number"] == "0"][0]
    assert lost.data.tags["hpsearch.retried_as"] == "1"
    status = CliRunner().invoke(main, ["status", "killed"])
    assert "lost to faults: 1 trial(s) (0 -> 1)" in status.output, status.output
