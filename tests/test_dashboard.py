"""`hpsearch dashboard`: optuna-dashboard over a sweep's storage (a journal file, PostgreSQL
with a password), read back over its HTTP API: the study's trials as the storage holds them,
the objective named, a note that says what hpsearch's attributes mean, no password shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner

from conftest import Lines, free_port, wait_for_http
from hpsearch.cli import main
from hpsearch.search.sweep import run_sweep
from hpsearch.study.store import StudyKey, open_storage

SPEC = """\
name: dash
data: {dataset: digits, seed: 0}
training: {max_epochs: 3, batch_size: 64}
budget: {n_trials: 3, workers: 1}
sampler: {name: random, seed: 0}
pruner: none
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 8, high: 32}
"""


def start(args: list[str], cwd, env=None) -> tuple[subprocess.Popen[str], Lines, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch", "dashboard", *args, "--port",
                             str(port)], cwd=cwd, env=env or os.environ.copy(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, Lines(proc.stdout), port


def read_back(port: int, proc: subprocess.Popen[str], name: str) -> dict:
    studies = json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/studies", proc))
    ours = next(s for s in studies["study_summaries"] if s["study_name"] == name)
    return json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/studies/{ours['study_id']}",
                                    proc)) | {"study_id": ours["study_id"]}


def check_study(detail: dict, study: optuna.Study) -> None:
    trials = {t["number"]: t for t in detail["trials"]}
    assert sorted(trials) == [t.number for t in study.trials]
    for t in study.trials:
        shown = trials[t.number]
        assert shown["state"] == t.state.name.capitalize()
        assert shown["values"] == [t.value]
        assert {p["name"]: p["param_external_value"] for p in shown["params"]} == {
            k: str(v) for k, v in t.params.items()}
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        assert attrs["fit.verdict"] == t.user_attrs["fit.verdict"]
        assert len(shown["intermediate_values"]) == len(t.intermediate_values)
    assert detail["objective_names"] == ["val_accuracy"]  # not "Objective 0"
    assert all(a["key"] != StudyKey.SPEC for a in detail["user_attrs"])  # no wall of YAML
    assert "## hpsearch study `dash`" in detail["note"]["body"]
    assert "`noise` | standard error of the trial's value" in detail["note"]["body"]


def test_the_dashboard_reads_a_sweep_on_the_journal_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dash.yaml").write_text(SPEC)
    run_sweep("dash.yaml", echo=lambda s: None)
    proc, out, port = start(["dash"], tmp_path)
    try:
        detail = read_back(port, proc, "dash")
        line = out.wait_for("optuna-dashboard on", proc)
        assert f"http://127.0.0.1:{port}/dashboard/studies/{detail['study_id']}" in line
        study = optuna.load_study(study_name="dash",
                                  storage=open_storage("mlruns/optuna.journal"))
        check_study(detail, study)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    r = CliRunner().invoke(main, ["dashboard", "nosuch", "--port", str(free_port())])
    assert r.exit_code == 2 and r.output.startswith("error: no study named 'nosuch'"), r.output


def test_no_study_yet_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    r = CliRunner().invoke(main, ["dashboard"])
    assert r.exit_code == 2
    assert r.output == f"error: {tmp_path}/mlruns/optuna.journal: no study yet (run a sweep " \
                       f"first, or pass --storage)\n"


@pytest.mark.slow
def test_the_dashboard_on_postgresql_never_shows_the_password(databases, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dash.yaml").write_text(SPEC)
    storage = databases[0]
    assert ":hpsearch@" in storage  # the test role's password is in the URL
    run_sweep("dash.yaml", storage_url=storage, echo=lambda s: None)
    env = {**os.environ, "HPSEARCH_STORAGE": storage}
    proc, out, port = start([], tmp_path, env)
    try:
        detail = read_back(port, proc, "dash")
        line = out.wait_for("optuna-dashboard on", proc)
        assert f"http://127.0.0.1:{port}/dashboard (storage postgresql://hpsearch:***@" in line
        args = open(f"/proc/{proc.pid}/cmdline").read()
        assert ":hpsearch@" not in args  # the URL came by the environment, not argv
        check_study(detail, optuna.load_study(study_name="dash", storage=open_storage(storage)))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert ":hpsearch@" not in out.text()
