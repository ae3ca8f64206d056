"""Export: top-k checkpoints during the sweep, and every way into the exported model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import hpsearch
from conftest import wait_for_http
from hpsearch.cli import main
from hpsearch.export.export import export_trial
from hpsearch.search.sweep import run_sweep
from hpsearch.spec import datasets
from hpsearch.tracking.backend import resolve_tracking_uri

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
    from hpsearch.study.store import join_storage_study

    study = join_storage_study("ex")
    values = sorted((t.value, t.number) for t in study.trials if t.value is not None)
    top2 = {n for _, n in values[-2:]}
    kept = {int(p.name[6:]) for p in (inside / "mlruns" / "checkpoints" / "ex").iterdir()}
    assert kept == top2


def test_kept_checkpoints_are_logged_models_that_export_needs_no_local_copy(inside, tmp_path):
    """The top k checkpoints are MLflow 3 logged models of their runs (step = best epoch, the
    best epoch's metrics linked to the validation and test datasets); `models:/<id>` loads;
    with mlruns/checkpoints gone, export fetches the checkpoint from the tracking store."""
    import shutil

    from mlflow.tracking import MlflowClient

    from hpsearch.study.store import join_storage_study

    study = join_storage_study("ex")
    top2 = {n for _, n in sorted((t.value, t.number) for t in study.trials
                                 if t.value is not None)[-2:]}
    client = MlflowClient(resolve_tracking_uri(None))
    exp = client.get_experiment_by_name("ex")
    assert exp.tags["hpsearch.dataset"] == "digits" and exp.tags["hpsearch.spec"] == "ex.yaml"
    assert "ex.yaml" in exp.tags["mlflow.note.content"]
    models = client.search_logged_models([exp.experiment_id])
    assert {int(m.tags["optuna.trial.number"]) for m in models} == top2
    sp = datasets.split(datasets.load("digits"), 0.2, 0.2, seed=0)
    mlflow.set_tracking_uri(resolve_tracking_uri(None))  # models:/<id> is read from the store
    for m in models:
        number = int(m.tags["optuna.trial.number"])
        trial = study.trials[number]
        assert m.tags["hpsearch.best_epoch"] == str(trial.user_attrs["best_epoch"])
        metrics = {x.key: x for x in m.metrics}
        assert metrics["best_val_accuracy"].value == pytest.approx(trial.value)
        assert metrics["best_val_accuracy"].dataset_name == "digits-validation"
        assert metrics["test_accuracy_at_best"].dataset_name == "digits-test"
        assert metrics["test_accuracy_at_best"].value == pytest.approx(
            trial.user_attrs["test_accuracy_at_best"])
        assert metrics["best_val_accuracy"].step == trial.user_attrs["best_epoch"]
        run = client.get_run(m.source_run_id)
        assert run.data.tags["optuna.trial.number"] == str(number)
        contexts = [(i.dataset.name, i.tags[0].value) for i in run.inputs.dataset_inputs]
        assert contexts == [("digits-training", "training"), ("digits-validation", "validation"),
                            ("digits-test", "test")]
        pyfunc = mlflow.pyfunc.load_model(f"models:/{m.model_id}")
        local = hpsearch.load(inside / "mlruns" / "checkpoints" / "ex" / f"trial-{number}")
        np.testing.assert_array_equal(pyfunc.predict(sp.test[0])["label"].to_numpy(),
                                      local.predict(sp.test[0]))

    cache = inside / "mlruns" / "checkpoints"
    saved = tmp_path / "cache"
    shutil.copytree(cache, saved)
    shutil.rmtree(cache)
    try:
        result = export_trial("ex", out=tmp_path / "from-store", register=False)
        assert result.trial == max(top2, key=lambda n: study.trials[n].value)
        assert result.test_accuracy == pytest.approx(
            study.trials[result.trial].user_attrs["test_accuracy_at_best"])
    finally:
        shutil.copytree(saved, cache)


def test_export_every_way_in(inside):
    from hpsearch.study.store import join_storage_study

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
    expected_proba = model.predict_proba(x_test)
    pyfunc = mlflow.pyfunc.load_model(str(out))
    # every form users hold their data in: the same labels and probabilities
    images = x_test.reshape(len(x_test), 8, 8)  # digits as 8x8 images
    for form in (frame, x_test, x_test.astype(np.float32), x_test.tolist(), images,
                 frame[frame.columns[::-1]]):  # columns found by name, whatever their order
        got = pyfunc.predict(form)
        np.testing.assert_array_equal(got["label"].to_numpy(), expected)
        np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), expected_proba,
                                   rtol=1e-5, atol=1e-8)  # float32 input: rounding only
    with pytest.raises(mlflow.exceptions.MlflowException,
                       match=r"expected 64 features per sample, received 63"):
        pyfunc.predict(x_test[:, :63])
    local = pyfunc.predict(frame)
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

    # The same trial refit on train + validation: a version of its own, tagged, and the plain
    # version (the champion) still serves the plain model: the two share no artifact.
    refit = export_trial("ex", result.trial, out=inside / "exports" / "refit", refit=True)
    client = mlflow.MlflowClient(resolve_tracking_uri(None))
    plain_v, refit_v = (client.get_model_version("ex", v) for v in (result.version, refit.version))
    assert refit_v.source != plain_v.source
    assert (plain_v.tags["hpsearch.refit"], refit_v.tags["hpsearch.refit"]) == ("false", "true")
    assert "champion stays" in refit.message  # the same validation score does not beat itself
    served = mlflow.pyfunc.load_model("models:/ex@champion").predict(frame)
    np.testing.assert_allclose(served.filter(like="proba_").to_numpy(), expected_proba,
                               rtol=1e-5, atol=1e-8)
    served = mlflow.pyfunc.load_model(f"models:/ex/{refit.version}").predict(frame)
    np.testing.assert_allclose(served.filter(like="proba_").to_numpy(),
                               hpsearch.load(refit.path).predict_proba(x_test), rtol=1e-5,
                               atol=1e-8)

    # hpsearch predict on a CSV of raw features.
    frame.head(20).to_csv(inside / "rows.csv", index=False)
    res = CliRunner().invoke(main, ["predict", str(out), str(inside / "rows.csv")])
    assert res.exit_code == 0, res.output
    preds = pd.read_csv(inside / "rows.predictions.csv")
    np.testing.assert_array_equal(preds["label"].to_numpy(), expected[:20])
    assert preds.filter(like="proba_").sum(axis=1).round(5).eq(1).all()
    # without a header row every row is a sample: none is taken for the header
    frame.head(20).to_csv(inside / "bare.csv", index=False, header=False)
    res = CliRunner().invoke(main, ["predict", str(out), str(inside / "bare.csv")])
    assert res.exit_code == 0, res.output
    bare = pd.read_csv(inside / "bare.predictions.csv")
    pd.testing.assert_frame_equal(bare, preds)
    # the header pandas writes for an array's columns (0, 1, ...) stays a header
    pd.DataFrame(frame.head(20).to_numpy()).to_csv(inside / "numbered.csv", index=False)
    res = CliRunner().invoke(main, ["predict", str(out), str(inside / "numbered.csv")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_csv(inside / "numbered.predictions.csv"), preds)


def test_export_errors(inside):
    from hpsearch.study.store import join_storage_study

    study = join_storage_study("ex")
    gone = next(t.number for t in study.trials if not
                (inside / "mlruns" / "checkpoints" / "ex" / f"trial-{t.number}").exists())
    cases = [(["export", "nosuch"], "no study named 'nosuch'"),
             (["export", "ex", "--trial", str(gone), "--no-register"],
              f"trial {gone}'s checkpoint is neither in"),
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
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        body = json.dumps({"dataframe_split": {
            "columns": [f"pixel_{i}" for i in range(x.shape[1])], "data": x.tolist()}}).encode()
        answer = json.loads(wait_for_http(url, proc, body))
        labels = [row["label"] for row in answer["predictions"]]
        assert labels == expected.tolist()
        proba = hpsearch.load(inside / "exports" / "served").predict_proba(x)
        for payload in ({"inputs": x.tolist()}, {"instances": x.tolist()},
                        {"inputs": x.reshape(len(x), 8, 8).tolist()}):
            answer = json.loads(wait_for_http(url, proc, json.dumps(payload).encode()))
            rows = answer["predictions"]
            assert [r["label"] for r in rows] == expected.tolist(), payload.keys()
            got = np.array([[r[k] for k in r if k.startswith("proba_")] for r in rows])
            np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-8)
        bad = urllib.request.Request(url, data=json.dumps({"inputs": x[:, :60].tolist()}).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=60)
        assert info.value.code == 400
        message = info.value.read().decode()
        assert "expected 64 features per sample, received 60" in message, message
    finally:
        proc.terminate()
        proc.wait(timeout=30)
