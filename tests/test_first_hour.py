"""Rough edges a new user met in the first hour (issue 37), each fixed and held here: a sweep
piped into `head`, one sample given to `predict`, the UI hint outside hpsearch's checkout, and a
reseed trial that turns out a twin of an earlier one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from click.testing import CliRunner

import hpsearch
from hpsearch.cli import main
from hpsearch.search.sweep import run_sweep
from hpsearch.search.trial import objective
from hpsearch.search.worker import join_study
from hpsearch.study.store import TrialKey, join_storage_study
from hpsearch.tracking.backend import resolve_tracking_uri

SPEC = """\
name: fh
data: {dataset: digits, seed: 0}
training: {max_epochs: 4, batch_size: 64}
budget: {n_trials: 4, workers: 1}
sampler: {name: random, seed: 0}
pruner: none
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 8, high: 32}
"""


@pytest.fixture()
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "fh.yaml").write_text(SPEC)
    return tmp_path


def pipe(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in bash with pipefail: the exit status is hpsearch's unless head fails."""
    hp = f"{sys.executable} -m hpsearch"
    return subprocess.run(["bash", "-c", "set -o pipefail; " + command.replace("hpsearch", hp)],
                          cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sweep_piped_into_head_runs_its_budget_without_a_traceback(here, workers):
    done = pipe(f"hpsearch sweep fh.yaml --workers {workers} | head -n 1", here)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sweep fh: 0 of 4 trials done") and \
        len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stderr.count("note: the output was closed (broken pipe)") == 1, done.stderr
    study = join_storage_study("fh")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    done = pipe("hpsearch status fh | head -n 1", here)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_predict_takes_one_sample_as_a_row(here):
    run_sweep("fh.yaml", echo=lambda s: None)
    r = CliRunner().invoke(main, ["export", "fh", "--no-register"])
    assert r.exit_code == 0, r.output
    model = hpsearch.load(here / "exports" / "fh")
    X, _ = hpsearch.datasets.split(hpsearch.datasets.load("digits"), 0.2, 0.2, seed=0).test
    assert model.predict(X[0]).tolist() == model.predict(X[:1]).tolist()
    assert model.predict(list(X[0])).shape == (1,)
    np.testing.assert_array_equal(model.predict_proba(X[3]), model.predict_proba(X[3:4]))
    with pytest.raises(ValueError, match="one sample of 5 values; the model takes 64 features"):
        model.predict(X[0][:5])
    pyfunc = mlflow.pyfunc.load_model(str(here / "exports" / "fh"))  # served: the same
    assert pyfunc.predict(X[0])["label"].tolist() == model.predict(X[0]).tolist()


def test_the_ui_hint_fits_where_the_sweep_runs(here):
    r = CliRunner().invoke(main, ["sweep", "fh.yaml", "--trials", "1"])
    assert "look: hpsearch ui (MLflow UI on http://127.0.0.1:5000)" in r.output, r.output
    (here / "Makefile").write_text("ui: ## the MLflow UI\n\thpsearch ui\n")  # hpsearch's own
    r = CliRunner().invoke(main, ["sweep", "fh.yaml", "--trials", "2"])
    assert "look: make ui (MLflow UI" in r.output, r.output
    r = CliRunner().invoke(main, ["sweep", "fh.yaml", "--trials", "3", "--tracking-uri",
                                  "none"])
    assert "look: hpsearch status fh" in r.output, r.output


def test_a_reseed_twin_is_not_trained_and_leaves_no_run(here):
    run_sweep("fh.yaml", echo=lambda s: None)
    ctx = join_study("fh", echo=lambda s: None)
    original = ctx.study.best_trial
    attrs = {TrialKey.RESEED_OF: original.number, TrialKey.MODEL_SEED: 7}
    for _ in range(2):  # two workers began the reseed trials at the same moment
        ctx.study.enqueue_trial(original.params, user_attrs=attrs)
    ctx.study.optimize(lambda t: objective(ctx, t), n_trials=2)
    ctx.log.close()
    first, twin = ctx.study.trials[-2:]
    assert first.state.name == "COMPLETE" and twin.state.name == "PRUNED"
    assert twin.user_attrs[TrialKey.STATUS] == "duplicate"
    assert f"the same configuration and seed as trial {first.number}" in \
        twin.user_attrs[TrialKey.REASON]
    client = mlflow.MlflowClient(resolve_tracking_uri(None))
    exp = client.get_experiment_by_name("fh")
    runs = client.search_runs([exp.experiment_id],
                              f"tags.`hpsearch.reseed_of` = '{original.number}'")
    assert [r.data.tags["optuna.trial.number"] for r in runs] == [str(first.number)]
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in ctx.study.trials}
