"""What an older hpsearch wrote still loads: a study, its MLflow store and an exported model
written by the flat layout (commit 2aed80a, before the modules moved into subpackages).

tests/fixtures/flat-layout-2aed80a.tar.xz was written by that commit's code, not by hand:

    mkdir /tmp/compat && cd /tmp/compat   # the spec is tiny.yaml inside the archive
    hpsearch sweep tiny.yaml && hpsearch export tiny --out exports/tiny
    tar cJf flat-layout-2aed80a.tar.xz tiny.yaml mlruns exports

Its exported model carries that commit's code (``code/hpsearch/``, flat) and a ``serving.py``
that imports ``hpsearch.checkpoint`` and ``hpsearch.estimator``; the MLflow database holds the
absolute artifact paths of /tmp/compat, which ``moved`` rewrites to the test's directory (what
an operator does who moves a store).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import hpsearch
from hpsearch.spec import datasets

FIXTURE = Path(__file__).parent / "fixtures" / "flat-layout-2aed80a.tar.xz"
WRITTEN_IN = "/tmp/compat"
TEST_ACCURACY = 0.8715  # what the export printed when the fixture was written


@pytest.fixture()
def moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    db = sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")
    with db:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                              ("logged_models", "artifact_location"),
                              ("model_versions", "source"), ("model_versions", "storage_location")):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                       (WRITTEN_IN, str(tmp_path)))
    db.close()
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    # MLflow puts a loaded model's code/ (here the flat layout's hpsearch) first on sys.path for
    # good: worker processes that later tests of this process spawn would import it
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    sp = datasets.split(datasets.load("digits"), 0.2, 0.2, seed=0)
    return sp.test


def hp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True,
                          text=True, timeout=600)


def test_an_exported_model_of_the_flat_layout_loads_every_way(moved):
    """hpsearch.load, and MLflow's pyfunc in a process where today's hpsearch is imported
    already (its serving.py imports the flat modules' names) and in a fresh one."""
    X, y = digits_test_split()
    model = hpsearch.load(moved / "exports" / "tiny")
    assert model.score(X, y) == pytest.approx(TEST_ACCURACY, abs=5e-5)
    pyfunc = mlflow.pyfunc.load_model(str(moved / "exports" / "tiny"))
    np.testing.assert_array_equal(pyfunc.predict(X)["label"].to_numpy(), model.predict(X))

    code = ("import sys, mlflow, numpy as np; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "print(m.predict(np.load(sys.argv[2]))['label'].tolist())")
    np.save(moved / "x.npy", X)
    done = subprocess.run([sys.executable, "-c", code, str(moved / "exports" / "tiny"),
                           str(moved / "x.npy")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert eval(done.stdout.strip().splitlines()[-1]) == model.predict(X).tolist()

    pd.DataFrame(X).to_csv(moved / "x.csv", index=False)
    done = hp("predict", "exports/tiny", "x.csv", "--out", "pred.csv")
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(moved / "pred.csv")["label"].tolist() == model.predict(X).tolist()


def test_the_registered_model_of_the_flat_layout_loads_from_the_store(moved):
    store = f"sqlite:///{moved / 'mlruns' / 'mlflow.db'}"
    # models:/ is read from the registry URI, which another test of this process may have set
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        pyfunc = mlflow.pyfunc.load_model("models:/tiny@champion")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    X, _ = digits_test_split()
    np.testing.assert_array_equal(pyfunc.predict(X)["label"].to_numpy(),
                                  hpsearch.load(moved / "exports" / "tiny").predict(X))


@pytest.mark.slow
def test_a_study_of_the_flat_layout_is_read_exported_and_resumed(moved):
    done = hp("status", "tiny")
    assert done.returncode == 0, done.stderr
    assert sum(line.split()[1:2] == ["COMPLETE"] for line in done.stdout.splitlines()) == 3, \
        done.stdout

    done = hp("report", "tiny")
    assert done.returncode == 0, done.stderr
    assert "trial 0" in (moved / "reports" / "tiny" / "report.md").read_text()

    done = hp("next", "tiny")
    assert done.returncode == 0, done.stderr
    assert (moved / "sweeps" / "tiny-next.yaml").is_file()

    # the kept checkpoint is read from the store (a logged model), not from the local cache
    for ckpt in (moved / "mlruns" / "checkpoints").rglob("weights.npz"):
        os.remove(ckpt)
    done = hp("export", "tiny", "--out", "again", "--no-register")
    assert done.returncode == 0, done.stderr
    X, y = digits_test_split()
    assert hpsearch.load(moved / "again").score(X, y) == pytest.approx(TEST_ACCURACY, abs=5e-5)

    done = hp("sweep", "tiny.yaml", "--trials", "4")
    assert done.returncode == 0, done.stderr
    assert "3 of 4 trials done, 1 to run" in done.stdout, done.stdout
    done = hp("status", "tiny")
    assert sum(line.split()[1:2] == ["COMPLETE"] for line in done.stdout.splitlines()) == 4, \
        done.stdout
