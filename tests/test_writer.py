"""The machine's MLflow writer (tracking/writer.py), a real process on a real SQLite store: the
sweep process's calls made in order with the trial messages before them, a store's error as
the Tracker raises it, the runs of a worker closed when it closes, a writer killed under its
workers, and a sweep killed with SIGKILL taking its workers and its writer with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from conftest import HANG, Lines, trials_running_with_epochs, wait_until
from hpsearch.cli import main
from hpsearch.errors import StorageError
from hpsearch.search.signals import spawn_context
from hpsearch.study.store import open_storage, resolve_storage_url
from hpsearch.tracking.backend import resolve_tracking_uri
from hpsearch.tracking.writer import MachineWriter


@pytest.fixture
def writer(tmp_path):
    machine = MachineWriter(f"sqlite:///{tmp_path / 'mlflow.db'}", 2, spawn_context())
    yield machine
    try:
        machine.stop()
    except StorageError:
        pass


def test_calls_come_after_the_trial_messages_before_them(writer):
    tracker = writer.tracker()
    exp = tracker.experiment("w")
    parent = tracker.create_parent(exp, "w", "w.yaml", "name: w", {}, "unknown")
    log = writer.log()
    log.start(exp, parent, "w", 0, {"hidden_size": 8}, {})
    log.metrics(0, [("val_accuracy", 0.5, 0, 1), ("val_accuracy", 0.75, 0, 2)])
    log.finish(0, "COMPLETE", {"best_val_accuracy": 0.75}, {}, [{"epoch": 1.0}])
    # no close, no wait: the call is made after the messages sent before it
    run_id = tracker.trial_run_id("w", 0)
    assert run_id is not None
    tracker.set_status(parent, "FINISHED")
    log.close()
    writer.stop()
    client = MlflowClient(writer.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["hidden_size"] == "8"
    assert [m.value for m in client.get_metric_history(run_id, "val_accuracy")] == [0.5, 0.75]
    assert run.data.metrics["best_val_accuracy"] == 0.75
    assert client.get_run(parent).info.status == "FINISHED"


def test_a_store_error_is_raised_by_the_call_as_the_tracker_raises_it(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    machine = MachineWriter(f"sqlite:///{blocked / 'mlflow.db'}", 1, spawn_context())
    with pytest.raises(StorageError) as err:
        machine.tracker().experiment("w")
    assert str(blocked) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(StorageError) as err:  # the writer's own error, in one line too
        machine.stop()
    assert "\n" not in str(err.value)
    assert not machine.alive()


def test_a_closed_log_leaves_no_run_of_its_worker_open(writer):
    tracker = writer.tracker()
    exp = tracker.experiment("w")
    parent = tracker.create_parent(exp, "w", "w.yaml", "name: w", {}, "unknown")
    log = writer.log()
    log.start(exp, parent, "w", 0, {}, {})
    log.start(exp, parent, "w", 1, {}, {})
    log.finish(1, "PRUNED", {}, {"optuna.trial.reason": "pruned at epoch 2"}, [])
    log.close()  # trial 0 never got its finish (a second Ctrl-C)
    client = MlflowClient(writer.uri)
    left = client.get_run(tracker.trial_run_id("w", 0))
    assert left.info.status == "KILLED"
    assert "stopped before this trial's run was closed" in left.data.tags["optuna.trial.reason"]
    assert client.get_run(tracker.trial_run_id("w", 1)).info.status == "FINISHED"


def test_a_killed_writer_stops_its_workers_with_one_line(writer):
    tracker = writer.tracker()
    exp = tracker.experiment("w")
    log = writer.log()
    os.kill(writer.process.pid, signal.SIGKILL)
    writer.process.join(HANG)
    with pytest.raises(StorageError, match="MLflow writer is gone"):
        log.start(exp, "", "w", 0, {}, {})
    with pytest.raises(StorageError, match="MLflow writer is gone"):
        log.close()  # returns: it does not wait for an answer that cannot come
    with pytest.raises(StorageError, match="MLflow writer is gone"):
        tracker.trial_run_id("w", 0)


SPEC = """\
name: machine
data: {dataset: digits, seed: 0}
training: {max_epochs: 3, batch_size: 64, early_stopping_patience: null}
budget: {n_trials: 4, workers: 2}
sampler: {name: random, seed: 0}
pruner: none
space:
  hidden_size: {type: int, low: 8, high: 32}
"""


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return {int(p) for p in out.split()}


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie, killed and not yet reaped, is not)."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def sweep_in_endless_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[
        subprocess.Popen[str], Lines, optuna.storages.BaseStorage]:
    """`hpsearch sweep` of SPEC (two workers) in tmp_path, once trials 0 and 1 train (endless:
    a fault cannot miss them); the process, its output and the study's storage."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "machine.yaml").write_text(SPEC)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HPSEARCH_TEST_ENDLESS_TRIALS": "0,1"}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", "machine.yaml"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    output = Lines(proc.stdout)
    storage = open_storage(resolve_storage_url(None))
    trials_running_with_epochs(lambda: optuna.load_study(
        study_name="machine", storage=storage).get_trials(), [0, 1], proc, output)
    return proc, output, storage


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_takes_its_workers_and_writer(tmp_path, monkeypatch):
    """Two workers in endless trials, the sweep process SIGKILLed: its writer and both workers
    go with it (nothing writes to the study or the store any more), the trial runs stay
    RUNNING as a killed process leaves them, and recover + resume end with exactly n_trials."""
    proc, output, storage = sweep_in_endless_trials(tmp_path, monkeypatch)
    helpers = children(proc.pid)
    client = MlflowClient(resolve_tracking_uri(None))
    exp = client.get_experiment_by_name("machine")
    wait_until(lambda: (len(runs := client.search_runs(
        [exp.experiment_id], "tags.`hpsearch.role` = 'trial'")) == 2, runs),
        "both trial runs written")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=HANG)
    # the writer and two workers (and multiprocessing's resource tracker, which exits when
    # the last of them has)
    assert len(helpers) >= 3, helpers
    wait_until(lambda: (not alive(helpers), alive(helpers)),
               "the writer and the workers gone with the sweep")
    runs = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'")
    assert sorted(r.info.status for r in runs) == ["RUNNING", "RUNNING"]

    result = CliRunner().invoke(main, ["recover", "machine"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["sweep", "machine.yaml"])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="machine", storage=storage).get_trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4 + ["FAIL"] * 2
    runs = client.search_runs([exp.experiment_id], "tags.`hpsearch.role` = 'trial'")
    assert len(runs) == 6 and all(r.info.status != "RUNNING" for r in runs)


@pytest.mark.slow
def test_workers_stop_when_the_writer_dies_under_them(tmp_path, monkeypatch):
    """The writer process killed while two workers train (endless trials): the sweep process
    sees it die and tells the workers, which stop instead of waiting for answers that cannot
    come; the sweep ends with one `error:` line, nothing hangs."""
    proc, output, storage = sweep_in_endless_trials(tmp_path, monkeypatch)
    writer = [pid for pid in children(proc.pid)
              if Path(f"/proc/{pid}/comm").read_text().strip() == "hpsearch-writer"]
    assert len(writer) == 1, children(proc.pid)
    os.kill(writer[0], signal.SIGKILL)
    assert proc.wait(timeout=HANG) == 2, output.rest(proc)
    errors = [line for line in output.rest(proc).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MLflow writer is gone" in errors[0], errors
