"""Datasets and honest splits.

- ``digits``: scikit-learn's 8x8 digits, embedded (the quick default).
- ``fashion-mnist`` and ``mnist``: IDX files (``.gz`` or raw), looked for in an explicit data
  directory, then ``$HPSEARCH_DATA`` (``$HPSEARCH_DATA/<name>`` or ``$HPSEARCH_DATA`` itself), then
  ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``), then the cache directory
  (``$XDG_CACHE_HOME/hpsearch/<name>``); when absent, downloaded from the dataset's public mirror
  (``$HPSEARCH_MIRROR`` overrides it) into the cache and verified against known checksums.
- ``csv:<path>`` and ``parquet:<path>``: a table with a named target column; the other columns
  are the features, numeric or made so by the spec's column plan (``tables``: drop, one_hot,
  fill), which ``hpsearch init`` proposes.

``split`` makes stratified, seeded train/validation/test splits; a dataset's official test split is
used as the test split. Only the training split is ever used to fit preprocessing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..model.columns import ColumnPlan, plan_json
from ..model.columns import apply as apply_plan
from . import tables
from .idx import (
    IDX_FILES,
    MIRRORS,
    cache_dir,
    download_idx,
    find_file,
    find_idx_dir,
    how_to_get,
    read_idx,
)

if TYPE_CHECKING:
    from .schema import DataSpec

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(d) for d in range(10)],
    "digits": [str(d) for d in range(10)],
}
BUILTIN = ("digits", "fashion-mnist", "mnist")
TABLES = ("csv", "parquet")  # <kind>:<path> datasets: a table with a target column
NAMES = (*BUILTIN, *(f"{kind}:<path>" for kind in TABLES))


@dataclass(frozen=True)
class Dataset:
    """Raw features and labels, plus the official test split where the dataset has one."""

    name: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    preprocessing: str = "standardize"  # what suits the features: "scale" for pixels
    source: str = ""
    class_names: list[str] | None = None
    feature_names: list[str] | None = None  # column names; pixel_<i> for images


@dataclass(frozen=True)
class Splits:
    """Stratified train/validation/test splits of one dataset, with a fingerprint to log."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    fingerprint: str
    preprocessing: str
    seed: int
    info: dict[str, object] = field(default_factory=dict)
    source: str = ""  # where the data came from (the dataset's)
    feature_names: list[str] | None = None
    columns: dict[str, Any] | None = None  # a table's target and plan (columns.plan_json)


# -- loading ----------------------------------------------------------------------------------
def load(name: str, data_dir: str | Path | None = None, target: str | None = None,
         download: bool = True, columns: ColumnPlan | None = None, sep: str = ",") -> Dataset:
    """Load dataset ``name`` (see module docstring); DataError with a one-line reason otherwise."""
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return Dataset("digits", bunch.data.astype(np.float32), bunch.target.astype(np.int64),
                       preprocessing="standardize", source="sklearn.datasets.load_digits",
                       class_names=CLASS_NAMES["digits"],
                       feature_names=[f"pixel_{i}" for i in range(64)])
    if name in MIRRORS:
        return load_idx(name, data_dir, download=download)
    kind, _, path = name.partition(":")
    if kind in TABLES and path:
        if not target:
            raise DataError(f"{name}: a {kind} dataset needs the name of its target column")
        return load_table(path, target, columns, sep, kind)
    raise DataError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")


def load_idx(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    directory = find_idx_dir(name, data_dir)
    if directory is None:
        if not download:
            raise DataError(f"{name}: IDX files not found. " + how_to_get(name))
        directory = download_idx(name, cache_dir(name))
    paths = {key: find_file(directory, stem) for key, stem in IDX_FILES.items()}
    arrays = {}
    for key, path in paths.items():
        assert path is not None
        arrays[key] = read_idx(path, 3 if key.endswith("images") else 1)
    for part in ("train", "test"):
        n_img, n_lab = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_img != n_lab:
            raise DataError(f"{paths[f'{part}_images']}: {n_img} images but "
                            f"{paths[f'{part}_labels'].name} has {n_lab} labels")  # type: ignore
    flat = {k: v.reshape(len(v), -1) if k.endswith("images") else v.astype(np.int64)
            for k, v in arrays.items()}
    return Dataset(name, flat["train_images"], flat["train_labels"], flat["test_images"],
                   flat["test_labels"], preprocessing="scale", source=str(directory),
                   class_names=CLASS_NAMES[name],
                   feature_names=[f"pixel_{i}" for i in range(flat["train_images"].shape[1])])


def load_table(path: str | Path, target: str, columns: ColumnPlan | None = None,
               sep: str = ",", kind: str = "csv") -> Dataset:
    """A CSV or parquet table: ``target`` is the label column, the features are the other
    columns as ``columns`` (the spec's drop / one_hot / fill) makes them."""
    path = Path(path)
    frame = tables.read_table(path, sep)
    y = tables.labels(frame, target, path)
    X, names = apply_plan(frame, columns, path, target)
    return Dataset(f"{kind}:{path}", X, y, preprocessing="standardize", source=str(path),
                   feature_names=names)


# -- splitting --------------------------------------------------------------------------------
def _apportion(counts: np.ndarray, fractions: list[float], rng: np.random.Generator) -> np.ndarray:
    """Per class, split ``counts[c]`` into len(fractions) whole parts, each within one of
    ``fractions[k] * counts[c]`` (largest-remainder rounding, ties broken at random)."""
    ideal = np.outer(counts, fractions)  # (classes, parts)
    parts = np.floor(ideal).astype(np.int64)
    for c in range(len(counts)):
        left = int(counts[c] - parts[c].sum())
        if left:
            frac = ideal[c] - parts[c] + rng.random(len(fractions)) * 1e-9
            parts[c, np.argsort(-frac)[:left]] += 1
    return parts


def _stratified_indices(y: np.ndarray, fractions: list[float],
                        rng: np.random.Generator) -> list[np.ndarray]:
    classes, y_idx = np.unique(y, return_inverse=True)
    counts = np.bincount(y_idx, minlength=len(classes))
    parts = _apportion(counts, fractions, rng)
    out: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(y_idx == c))
        bounds = np.cumsum(parts[c])[:-1]
        for k, chunk in enumerate(np.split(members, bounds)):
            out[k].append(chunk)
    return [np.sort(np.concatenate(chunks)) for chunks in out]


def fingerprint(*arrays: np.ndarray, extra: str = "") -> str:
    """A short SHA-256 over the arrays' bytes, shapes and dtypes (and any extra text)."""
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def split(ds: Dataset, val_fraction: float = 0.2, test_fraction: float = 0.2,
          seed: int = 0) -> Splits:
    """Stratified, seeded splits. With an official test split, ``val_fraction`` is taken from
    the official training data and ``test_fraction`` is ignored; otherwise both fractions are
    of the whole dataset. Per class, every split's count is within one sample of its share."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction={val_fraction}: must be in (0, 1)")
    rng = np.random.default_rng(seed)
    if ds.X_test is not None and ds.y_test is not None:
        train_idx, val_idx = _stratified_indices(ds.y, [1 - val_fraction, val_fraction], rng)
        test = (ds.X_test, ds.y_test)
        test_note = "official"
    else:
        if not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise DataError(f"test_fraction={test_fraction}, val_fraction={val_fraction}: each "
                            f"must be in (0, 1) and together below 1")
        fracs = [1 - val_fraction - test_fraction, val_fraction, test_fraction]
        train_idx, val_idx, test_idx = _stratified_indices(ds.y, fracs, rng)
        test = (ds.X[test_idx], ds.y[test_idx])
        test_note = f"{test_fraction:g} of the data"
    train, val = (ds.X[train_idx], ds.y[train_idx]), (ds.X[val_idx], ds.y[val_idx])
    for part, (_, labels) in (("train", train), ("validation", val), ("test", test)):
        if len(labels) == 0 or len(np.unique(labels)) < 2:
            raise DataError(f"{ds.name}: the {part} split would have fewer than 2 classes "
                            f"({len(labels)} samples); use more data or other fractions")
    fp = fingerprint(*train, *val, *test, extra=f"{ds.name}|{seed}|{val_fraction}|{test_note}")
    info = {"n_train": len(train[1]), "n_val": len(val[1]), "n_test": len(test[1]),
            "val_fraction": val_fraction, "test": test_note, "source": ds.source}
    return Splits(ds.name, train, val, test, fp, ds.preprocessing, seed, info, ds.source,
                  ds.feature_names)


def load_splits(data: DataSpec) -> Splits:
    """A spec's ``data`` section loaded and split: what every worker trained on and what the
    export evaluates (the same fingerprint)."""
    ds = load(data.dataset, data_dir=data.data_dir, target=data.target, columns=data.columns,
              sep=data.sep)
    splits = split(ds, data.val_fraction, data.test_fraction, data.seed)
    if data.target is None:  # not a table
        return splits
    return dataclasses.replace(splits, columns=plan_json(data.columns, data.target,
                                                         splits.feature_names))
