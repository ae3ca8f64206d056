"""Checkpoints: exact round trip, and every kind of tampering refused without unpickling."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import hpsearch
from hpsearch import CheckpointError, MLPClassifier
from hpsearch.model import checkpoint


@pytest.fixture(scope="module")
def fitted():
    x, y = load_digits(return_X_y=True)
    m = MLPClassifier(hidden_sizes=(24, 12), max_epochs=5, random_state=0)
    m.fit(x[:1000], y[:1000], eval_sets={"val": (x[1000:], y[1000:])})
    return m, x


def test_round_trip_predicts_exactly(fitted, tmp_path):
    m, x = fitted
    m.save(tmp_path / "ck")
    loaded = hpsearch.load(tmp_path / "ck")
    np.testing.assert_array_equal(loaded.predict_proba(x), m.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    assert loaded.get_params() == m.get_params()
    assert loaded.history_ == m.history_ and loaded.best_epoch_ == m.best_epoch_
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["hpsearch_version"] == hpsearch.__version__


def test_the_format_knows_no_model(fitted, tmp_path):
    """checkpoint.py writes and reads (meta, arrays) and imports nothing of the estimator; the
    names other modules import from it still give the same model."""
    tree = ast.parse(Path(checkpoint.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert not {m for m in imported if m and "estimator" in m}, imported
    m, x = fitted
    meta, arrays = m.checkpoint_state()
    checkpoint.write(tmp_path / "w", {**meta, "note": "kept"}, arrays)
    read_meta, read_arrays = checkpoint.read(tmp_path / "w")
    assert read_meta["format"] == checkpoint.FORMAT and read_meta["note"] == "kept"
    assert read_arrays.keys() == arrays.keys()
    assert all(np.array_equal(read_arrays[k], v) for k, v in arrays.items())
    for loaded in (checkpoint.load_model(tmp_path / "w"), checkpoint.load(tmp_path / "w"),
                   MLPClassifier.from_checkpoint_state(read_meta, read_arrays, "w")):
        assert isinstance(loaded, MLPClassifier)
        np.testing.assert_array_equal(loaded.predict_proba(x), m.predict_proba(x))


def test_round_trip_string_classes(tmp_path):
    x, y = load_digits(return_X_y=True)
    labels = np.array(list("abcdefghij"))[y]
    m = MLPClassifier(hidden_sizes=(8,), max_epochs=2, random_state=0).fit(x, labels)
    loaded = MLPClassifier.load(m.save(tmp_path / "s"))
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))


def _save(fitted, tmp_path):
    m, _ = fitted
    return m.save(tmp_path / "ck")


def _rewrite(path, **changes):
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for key in [k for k, v in arrays.items() if v is None]:
        del arrays[key]
    np.savez(path / "weights.npz", **arrays)


def test_shape_mismatch(fitted, tmp_path):
    p = _save(fitted, tmp_path)
    _rewrite(p, W0=np.zeros((64, 5), np.float32))
    with pytest.raises(CheckpointError, match="W0 has shape"):
        hpsearch.load(p)


def test_wrong_dtype(fitted, tmp_path):
    p = _save(fitted, tmp_path)
    _rewrite(p, b1=np.zeros(12, np.float64))
    with pytest.raises(CheckpointError, match="b1 has dtype float64"):
        hpsearch.load(p)


def test_pickled_object_refused(fitted, tmp_path):
    p = _save(fitted, tmp_path)
    with np.load(p / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["W0"] = np.array([{"evil": 1}], dtype=object)
    np.savez(p / "weights.npz", **arrays)  # np.savez pickles object arrays
    with pytest.raises(CheckpointError, match="refused"):
        hpsearch.load(p)


def test_missing_files_and_arrays(fitted, tmp_path):
    p = _save(fitted, tmp_path)
    _rewrite(p, W2=None)
    with pytest.raises(CheckpointError, match="do not match the layers"):
        hpsearch.load(p)
    (p / "weights.npz").unlink()
    with pytest.raises(CheckpointError, match="weights.npz: missing"):
        hpsearch.load(p)
    with pytest.raises(CheckpointError, match="nowhere: no such directory"):
        hpsearch.load(tmp_path / "nowhere")


def test_corrupt_files(fitted, tmp_path):
    p = _save(fitted, tmp_path)
    (p / "weights.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        hpsearch.load(p)
    (p / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        hpsearch.load(p)
