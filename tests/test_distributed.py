"""Distributed sweeps: Optuna on a real PostgreSQL server, MLflow on a real tracking server
(itself on PostgreSQL), three worker processes, all on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpsearch.search.sweep import run_sweep

SPEC = """\
name: dist
data: {dataset: digits, seed: 0}
training: {max_epochs: 8, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 9}
sampler: {name: random, seed: 2}
pruner: {name: median, n_startup_trials: 3, n_warmup_steps: 2}
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.05, log: true}
  hidden_size: {type: int, low: 16, high: 64, log: true}
"""


@pytest.mark.slow
def test_three_workers_on_postgresql_and_a_tracking_server(databases, mlflow_server, tmp_path,
                                                            monkeypatch):
    import optuna
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPSEARCH_CHECKPOINTS", str(tmp_path / "this-machine-only"))
    (tmp_path / "dist.yaml").write_text(SPEC)
    result = run_sweep("dist.yaml", workers=3, storage_url=databases[0],
                       tracking_uri=mlflow_server, echo=lambda s: None)
    assert not result.interrupted

    study = optuna.load_study(study_name="dist", storage=databases[0])
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(9)) and len(set(numbers)) == 9
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("dist")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpsearch.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("hpsearch.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["optuna.trial.number"]) for r in children) == list(range(9))
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == "FINISHED"
        epochs = int(run.data.metrics["epochs_run"])
        for key in ("train_loss", "val_accuracy", "test_accuracy", "learning_rate"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs + 1)), key
        assert {"history.csv", "diagnosis.json"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)}
    # The password of the storage URL is never recorded.
    assert "hpsearch:hpsearch@" not in str(parents[0].data.params)
    assert "***" in parents[0].data.params["storage"]

    # The kept checkpoints are logged models in the tracking server's artifact store: the top
    # checkpoints.keep (3) complete trials, each linked to its run at its best epoch.
    models = client.search_logged_models([exp.experiment_id])
    top = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)[:3]
    assert sorted(int(m.tags["optuna.trial.number"]) for m in models) == sorted(
        t.number for t in top)
    for m in models:
        run = next(r for r in children if r.info.run_id == m.source_run_id)
        assert m.status.name == "READY" and m.tags["hpsearch.best_epoch"] == str(
            study.trials[int(m.tags["optuna.trial.number"])].user_attrs["best_epoch"])
        assert {x.key for x in m.metrics} >= {"best_val_accuracy", "test_accuracy_at_best"}
        assert [i.dataset.name for i in run.inputs.dataset_inputs] == [
            "digits-training", "digits-validation", "digits-test"]

    # Export from another machine: an empty directory, no checkpoint on its disk, nothing but
    # the storage and the tracking server.
    import shutil

    shutil.rmtree(tmp_path / "this-machine-only")
    elsewhere = tmp_path / "fourth-machine"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HPSEARCH_CHECKPOINTS",)}
    done = subprocess.run([sys.executable, "-m", "hpsearch.cli", "export", "dist", "--storage",
                           databases[0], "--tracking-uri", mlflow_server], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"exported trial {top[0].number}" in done.stdout, done.stdout
    assert (elsewhere / "exports" / "dist" / "MLmodel").is_file()

