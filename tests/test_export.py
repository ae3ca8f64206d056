"""Export: top-k checkpoints during the sweep, and every way into the exported model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import hpsearch
from conftest import wait_for_http
from hpsearch import datasets
from hpsearch.cli import main
from hpsearch.export import export_trial
from hpsearch.sweep import run_sweep
from hpsearch.tracking import resolve_tracking_uri

SPEC = """\
name: ex
data: {dataset: digits, seed: 0}
training: {max_epochs: 10, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 5, workers: 1}
sampler: {name: random, seed: 3}
pruner: none
checkpoints: {keep: 2}
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 8, high: 64, log: true}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One small finished sweep, shared by the tests below (each works in its directory)."""
    root = tmp_path_factory.mktemp("export")
    old = os.getcwd()
    os.chdir(root)
    try:
        (root / "ex.yaml").write_text(SPEC)
        run_sweep("ex.yaml", echo=lambda s: None)
        yield root
    finally:
        os.chdir(old)


@pytest.fixture()
def inside(swept, monkeypatch):
    monkeypatch.chdir(swept)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return swept


def test_only_the_top_k_checkpoints_stay(inside):
    from hpsearch.store import join_storage_study

    study = join_storage_study("ex")
    values = sorted((t.value, t.number) for t in study.trials if t.value is not None)
    top2 = {n for _, n in values[-2:]}
    kept = {int(p.name[6:]) for p in (inside / "mlruns" / "checkpoints" / "ex").iterdir()}
    assert kept == top2


def test_export_every_way_in(inside):
    from hpsearch.store import join_storage_study

    # A worse trial first: it becomes champion, then the best one takes the alias over.
    ranked = sorted((t for t in join_storage_study("ex").trials if (
        inside / "mlruns" / "checkpoints" / "ex" / f"trial-{t.number}").exists()),
        key=lambda t: t.value)
    first = export_trial("ex", ranked[0].number, out=inside / "exports" / "first")
    assert first.champion == first.version and "alias champion" in first.message
    result = export_trial("ex")
    assert result.champion == result.version != first.version
    out = result.path
    assert {"MLmodel", "MODEL_CARD.md", "learning_curve.png", "test_metrics.json"} <= {
        p.name for p in out.iterdir()}
    sp = datasets.split(datasets.load("digits"), 0.2, 0.2, seed=0)
    x_test, y_test = sp.test
    model = hpsearch.load(out)
    ckpt = hpsearch.load(inside / "mlruns" / "checkpoints" / "ex" / f"trial-{result.trial}")
    np.testing.assert_array_equal(model.predict_proba(x_test), ckpt.predict_proba(x_test))
    assert result.test_accuracy == pytest.approx(model.score(x_test, y_test))
    card = (out / "MODEL_CARD.md").read_text()
    assert f"{result.test_accuracy:.4f}" in card and "verdict" in card
    assert json.loads((out / "test_metrics.json").read_text())["test_samples"] == len(y_test)

    frame = pd.DataFrame(x_test.astype(np.float64),
                         columns=[f"pixel_{i}" for i in range(x_test.shape[1])])
    expected = model.predict(x_test)
    local = mlflow.pyfunc.load_model(str(out)).predict(frame)
    np.testing.assert_array_equal(local["label"].to_numpy(), expected)
    mlflow.set_registry_uri(resolve_tracking_uri(None))
    registry = mlflow.pyfunc.load_model("models:/ex@champion").predict(frame)
    np.testing.assert_array_equal(registry["label"].to_numpy(), expected)
    assert "champion" in result.message

    # A worse trial exported later is registered, but the champion stays; re-using a
    # directory does not change what an existing version serves.
    worse = export_trial("ex", ranked[0].number, out=out)
    assert worse.champion == result.version and "champion stays" in worse.message
    registry = mlflow.pyfunc.load_model("models:/ex@champion").predict(frame)
    np.testing.assert_array_equal(registry["label"].to_numpy(), expected)
    export_trial("ex", register=False)  # DIR holds the best trial again

    # hpsearch predict on a CSV of raw features.
    frame.head(20).to_csv(inside / "rows.csv", index=False)
    res = CliRunner().invoke(main, ["predict", str(out), str(inside / "rows.csv")])
    assert res.exit_code == 0, res.output
    preds = pd.read_csv(inside / "rows.predictions.csv")
    np.testing.assert_array_equal(preds["label"].to_numpy(), expected[:20])
    assert preds.filter(like="proba_").sum(axis=1).round(5).eq(1).all()


def test_export_errors(inside):
    from hpsearch.store import join_storage_study

    study = join_storage_study("ex")
    gone = next(t.number for t in study.trials if not
                (inside / "mlruns" / "checkpoints" / "ex" / f"trial-{t.number}").exists())
    cases = [(["export", "nosuch"], "no study named 'nosuch'"),
             (["export", "ex", "--trial", str(gone), "--no-register"],
              f"trial {gone}'s checkpoint is not in"),
             (["export", "ex", "--trial", "99"], "has no trial 99")]
    for args, message in cases:
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    # A tampered checkpoint: a pickled object instead of the weights.
    best = study.best_trial.number
    weights = inside / "mlruns" / "checkpoints" / "ex" / f"trial-{best}" / "weights.npz"
    saved = weights.read_bytes()
    try:
        with np.load(weights) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["W0"] = np.array([{"evil": 1}], dtype=object)
        np.savez(weights, **arrays)
        res = CliRunner().invoke(main, ["export", "ex", "--no-register", "--out", "tampered"])
        assert res.exit_code == 2 and "refused" in res.stderr
        assert not (inside / "tampered").exists()
    finally:
        weights.write_bytes(saved)
    res = CliRunner().invoke(main, ["predict", "exports/ex", "nowhere.csv"])
    assert res.exit_code == 2 and "nowhere.csv: CSV file not found" in res.stderr


def test_no_completed_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.yaml").write_text("name: f\ntraining: {max_epochs: 2}\n"
                                     "budget: {n_trials: 1, workers: 1}\n"
                                     "space: {warmup_epochs: -1}\n")
    run_sweep("f.yaml", echo=lambda s: None)
    res = CliRunner().invoke(main, ["export", "f"])
    assert res.exit_code == 2 and "has no completed trial" in res.stderr


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_same_predictions(inside):
    export_trial("ex", out=inside / "exports" / "served")
    sp = datasets.split(datasets.load("digits"), 0.2, 0.2, seed=0)
    x = sp.test[0][:25].astype(np.float64)
    expected = hpsearch.load(inside / "exports" / "served").predict(x)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # mlflow starts `uvicorn` from PATH: the virtual environment's bin must be on it, as it is
    # for a user who activated the environment.
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "MLFLOW_TRACKING_URI": resolve_tracking_uri(None),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                             "models:/ex@champion", "--env-manager", "local", "-h", "127.0.0.1",
                             "-p", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"dataframe_split": {
            "columns": [f"pixel_{i}" for i in range(x.shape[1])], "data": x.tolist()}}).encode()
        answer = json.loads(wait_for_http(f"http://127.0.0.1:{port}/invocations", proc, body))
        labels = [row["label"] for row in answer["predictions"]]
        assert labels == expected.tolist()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
