"""Datasets: real files, honest splits, and a one-line DataError for every kind of bad data."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from hpsearch import DataError, MLPClassifier
from hpsearch.spec import datasets, idx

STEMS = list(idx.IDX_FILES.values())


def assert_stratified(whole: np.ndarray, parts: list[np.ndarray]) -> None:
    """Per class, every part's count is within one sample of its share of the whole."""
    total = sum(len(p) for p in parts)
    for c in np.unique(whole):
        n_c = np.sum(whole == c)
        for p in parts:
            share = n_c * len(p) / total
            assert abs(np.sum(p == c) - share) <= 1 + 1e-9, (c, np.sum(p == c), share)


def test_digits_splits_are_stratified_disjoint_and_seeded():
    ds = datasets.load("digits")
    sp = datasets.split(ds, val_fraction=0.15, test_fraction=0.2, seed=3)
    parts = [sp.train[1], sp.val[1], sp.test[1]]
    assert sum(map(len, parts)) == len(ds.y)
    assert_stratified(ds.y, parts)
    rows = {tuple(r) for r in sp.train[0]} & {tuple(r) for r in sp.test[0]}
    dup_rows = len(ds.X) - len({tuple(r) for r in ds.X})
    assert len(rows) <= dup_rows  # disjoint, up to duplicate images in digits itself
    again = datasets.split(ds, val_fraction=0.15, test_fraction=0.2, seed=3)
    other = datasets.split(ds, val_fraction=0.15, test_fraction=0.2, seed=4)
    assert again.fingerprint == sp.fingerprint != other.fingerprint
    np.testing.assert_array_equal(again.val[0], sp.val[0])


def test_fashion_mnist_from_debian_files(fashion_dir):
    ds = datasets.load("fashion-mnist", data_dir=fashion_dir)
    assert ds.X.shape == (60000, 784) and ds.X.dtype == np.uint8
    assert ds.X_test.shape == (10000, 784)
    sp = datasets.split(ds, val_fraction=0.2, seed=0)
    assert len(sp.train[1]) == 48000 and len(sp.val[1]) == 12000
    np.testing.assert_array_equal(sp.test[1], ds.y_test)  # the official test split
    assert_stratified(ds.y, [sp.train[1], sp.val[1]])


def test_lookup_order_env_then_system(tmp_path, monkeypatch, fashion_dir):
    mine = tmp_path / "fashion-mnist"
    mine.mkdir()
    for stem in STEMS:  # raw (not gzipped) copies are read as well
        (mine / stem).write_bytes(gzip.decompress((fashion_dir / f"{stem}.gz").read_bytes()))
    monkeypatch.setenv("HPSEARCH_DATA", str(tmp_path))
    assert idx.find_idx_dir("fashion-mnist") == mine
    assert datasets.load("fashion-mnist").source == str(mine)
    monkeypatch.setenv("HPSEARCH_DATA", str(tmp_path / "empty"))
    assert idx.find_idx_dir("fashion-mnist") == Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture()
def mirror(tmp_path, fashion_dir):
    """A real HTTP server on 127.0.0.1 serving the Fashion-MNIST files."""
    root = tmp_path / "mirror"
    root.mkdir()
    for stem in STEMS:
        shutil.copy(fashion_dir / f"{stem}.gz", root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_checksums(mirror, tmp_path, monkeypatch):
    root, url = mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HPSEARCH_MIRROR", url)
    dest = idx.download_idx("fashion-mnist", idx.cache_dir("fashion-mnist"))
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    ds = datasets.load_idx("fashion-mnist", dest)
    assert ds.X.shape == (60000, 784)

    # A file that is not the official one is refused and not kept.
    bad = tmp_path / "cache2"
    monkeypatch.setenv("XDG_CACHE_HOME", str(bad))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(8)))
    with pytest.raises(DataError, match="checksum mismatch"):
        idx.download_idx("fashion-mnist", idx.cache_dir("fashion-mnist"))
    assert not (idx.cache_dir("fashion-mnist") / "t10k-labels-idx1-ubyte.gz").exists()


def test_download_unreachable_says_how_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HPSEARCH_MIRROR", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(DataError, match="cannot download .* HPSEARCH_DATA"):
        idx.download_idx("mnist", tmp_path / "mnist")


# -- bad IDX files ------------------------------------------------------------------------
@pytest.fixture()
def idx_dir(tmp_path, fashion_dir):
    d = tmp_path / "idx"
    d.mkdir()
    for stem in STEMS:
        shutil.copy(fashion_dir / f"{stem}.gz", d)
    return d


def test_missing_idx_file(idx_dir):
    (idx_dir / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing fashion-mnist file.*t10k-images-idx3-ubyte"):
        datasets.load("fashion-mnist", data_dir=idx_dir)


def test_truncated_gzip(idx_dir):
    f = idx_dir / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: truncated or corrupt gzip"):
        datasets.load("fashion-mnist", data_dir=idx_dir)


def test_truncated_raw_idx(idx_dir):
    f = idx_dir / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.unlink()
    (idx_dir / "t10k-labels-idx1-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: truncated: header says \[10000\]"):
        datasets.load("fashion-mnist", data_dir=idx_dir)


def test_wrong_magic(idx_dir):
    f = idx_dir / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[3] = 3
    f.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="wrong magic number 0x00000803"):
        datasets.load("fashion-mnist", data_dir=idx_dir)


def test_image_label_count_mismatch(idx_dir):
    f = idx_dir / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    fewer = b"\x00\x00\x08\x01" + (9000).to_bytes(4, "big") + raw[8:8 + 9000]
    f.write_bytes(gzip.compress(fewer))
    with pytest.raises(DataError, match="10000 images but t10k-labels-idx1-ubyte.gz has 9000"):
        datasets.load("fashion-mnist", data_dir=idx_dir)


# -- CSV ------------------------------------------------------------------------------------
def write_csv(path: Path, text: str) -> str:
    path.write_text(text)
    return f"csv:{path}"


def test_csv_loads_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["a,b,species"] + [f"{rng.normal():.3f},{rng.normal():.3f},{'xy'[i % 2]}"
                               for i in range(60)]
    name = write_csv(tmp_path / "ok.csv", "\n".join(lines))
    ds = datasets.load(name, target="species")
    assert ds.X.shape == (60, 2) and set(ds.y) == {"x", "y"}
    sp = datasets.split(ds, 0.2, 0.2, seed=0)
    assert len(sp.test[1]) == 12


@pytest.mark.parametrize("text,target,match", [
    ("a,b,label\n1,2,x\n3,oops,y\n", "label", r"column 'b' is not numeric \(e.g. 'oops' in line 3"),
    ("a,b,label\n1,2,x\n3,,y\n", "label", "column 'b' has 1 missing value"),
    ("a,b,label\n1,2,x\n3,4,y\n", "class", "unknown target column 'class'"),
    ("a,b,label\n1,2,x\n3,4,x\n", "label", "target column 'label' has 1 class"),
    ("a,label\n1,x\n2,\n", "label", "target column 'label' has 1 missing"),
])
def test_bad_csv(tmp_path, text, target, match):
    name = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=match) as info:
        datasets.load(name, target=target)
    assert "bad.csv" in str(info.value) and "\n" not in str(info.value)


def test_unknown_dataset_and_missing_csv(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        datasets.load("cifar")
    with pytest.raises(DataError, match="nope.csv: CSV file not found"):
        datasets.load(f"csv:{tmp_path}/nope.csv", target="y")


# -- accuracy floors on real data ---------------------------------------------------------
@pytest.mark.slow
def test_fashion_mnist_784_128_10_adam_reaches_085_in_5_epochs(fashion_dir):
    sp = datasets.split(datasets.load("fashion-mnist", data_dir=fashion_dir), 0.2, seed=0)
    m = MLPClassifier(hidden_sizes=(128,), optimizer="adam", max_epochs=5,
                      preprocessing="scale", random_state=0)
    m.fit(*sp.train, eval_sets={"val": sp.val})
    assert m.score(*sp.test) >= 0.85
    assert len(m.history_) == 5


@pytest.mark.slow
def test_weight_averaging_lifts_every_epoch_on_fashion_mnist(fashion_dir):
    """784-128-10, Adam at a constant 1e-3, three seeds: with ema_decay=0.999 every epoch's
    validation accuracy is higher on average than without (measured: +0.2 to +1.0 points)."""
    sp = datasets.split(datasets.load("fashion-mnist", data_dir=fashion_dir), 0.2, seed=0)
    for seed in (0, 1, 2):
        curves = {}
        for ema in (0.0, 0.999):
            m = MLPClassifier(hidden_sizes=(128,), max_epochs=5, preprocessing="scale",
                              random_state=seed, ema_decay=ema, monitor="val_accuracy")
            m.fit(*sp.train, eval_sets={"val": sp.val})
            curves[ema] = np.array([r["val_accuracy"] for r in m.history_])
        assert (curves[0.999] - curves[0.0]).mean() > 0.002, (seed, curves)


def test_digits_reaches_095():
    sp = datasets.split(datasets.load("digits"), 0.15, 0.2, seed=0)
    m = MLPClassifier(hidden_sizes=(128,), max_epochs=40, random_state=0)
    m.fit(*sp.train, eval_sets={"val": sp.val})
    assert m.score(*sp.test) >= 0.95
