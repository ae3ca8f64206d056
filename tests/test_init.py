"""A sweep on a user's own table without writing YAML: `hpsearch init`, `hpsearch sweep DATA
--target COLUMN` and `hpsearch.sweep(X, y)`, on CSVs written from scikit-learn's bundled data
sets, a table with text, missing values and a row number, a parquet file, and bad tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine

import hpsearch
from hpsearch import SpecError
from hpsearch.cli import main
from hpsearch.spec.config import load_spec
from hpsearch.study.store import join_storage_study


def bundled(loader, target: str = "species") -> pd.DataFrame:
    b = loader(as_frame=True)
    frame = b.frame.drop(columns=["target"])
    frame[target] = [str(b.target_names[i]) for i in b.target]
    return frame


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture()
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.mark.parametrize("loader,rows,features,classes,metric", [
    (load_breast_cancer, 569, 30, 2, "val_loss"),
    (load_digits, 1797, 61, 10, "val_accuracy"),  # 3 of the 64 pixels are always 0: dropped
    (load_wine, 178, 13, 3, "val_loss"),
    (load_iris, 150, 4, 3, "val_loss"),
])
def test_init_writes_a_spec_sized_from_the_table(here, loader, rows, features, classes, metric):
    bundled(loader).to_csv("data.csv", index=False)
    r = run("init", "data.csv", "--target", "species")
    assert r.exit_code == 0, r.output
    assert f"data.csv: {rows} rows, {features} features, {classes} classes" in r.output
    assert "wrote sweeps/data.yaml; run it: hpsearch sweep sweeps/data.yaml" in r.output
    spec = load_spec("sweeps/data.yaml")
    assert spec.name == "data" and spec.data.target == "species"
    assert spec.data.dataset == "csv:data.csv"  # relative to the spec, shown from here
    assert spec.objective.metric == metric  # a small validation split decides on the loss
    high = {p.name: p.high for p in spec.space}["hidden_size"]
    assert high == {61: 128, 30: 128, 13: 64, 4: 32}[features]
    text = (here / "sweeps" / "data.yaml").read_text()
    assert text.startswith("# Written by `hpsearch init data.csv --target species`")
    again = run("init", "data.csv", "--target", "species")
    assert again.exit_code == 2 and "sweeps/data.yaml: exists already" in again.output


def mixed_table(n: int = 400) -> pd.DataFrame:
    """Text categories, missing numbers, a row number and a constant, with a signal in each
    of the kept columns."""
    rng = np.random.default_rng(0)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    label = np.where((color == "red") ^ (size > 0.3), "yes", "no")
    size[::9] = np.nan
    return pd.DataFrame({"id": np.arange(1, n + 1), "color": color, "size": size,
                         "site": "north", "label": label})


def test_a_table_with_text_and_gaps_is_swept_exported_and_predicted_from_raw_rows(here):
    mixed_table().to_csv("mixed.csv", index=False)
    r = run("sweep", "mixed.csv", "--target", "label", "--trials", "3")
    assert r.exit_code == 0, r.output
    for line in ("drop 'id': a row number", "drop 'site': constant",
                 "one-hot 'color': 3 categories (blue, green, red)",
                 "fill 'size': 45 missing value(s) take the median", "wrote sweeps/mixed.yaml",
                 "sweep mixed: 0 of 3 trials done"):
        assert line in r.output, r.output
    data = yaml.safe_load((here / "sweeps" / "mixed.yaml").read_text())["data"]
    assert data["drop"] == ["id", "site"] and data["one_hot"] == {"color": ["blue", "green",
                                                                           "red"]}
    # the same command resumes with the spec it wrote
    r = run("sweep", "mixed.csv", "--target", "label", "--trials", "4")
    assert r.exit_code == 0 and "using sweeps/mixed.yaml" in r.output, r.output
    assert "3 of 4 trials done, 1 to run" in r.output

    r = run("export", "mixed", "--no-register")
    assert r.exit_code == 0, r.output
    raw = mixed_table().drop(columns=["label"]).iloc[:50]
    raw.to_csv("new.csv", index=False)
    r = run("predict", "exports/mixed", "new.csv")
    assert r.exit_code == 0, r.output
    predicted = pd.read_csv(here / "new.predictions.csv")
    assert set(predicted["label"]) <= {"yes", "no"} and len(predicted) == 50

    import mlflow

    served = mlflow.pyfunc.load_model(str(here / "exports" / "mixed")).predict(raw)
    assert served["label"].tolist() == predicted["label"].tolist()
    loaded = hpsearch.load(here / "exports" / "mixed")  # the model keeps its table's plan
    assert loaded.predict(raw).tolist() == predicted["label"].tolist()
    assert loaded.columns_["features"] == ["color=blue", "color=green", "color=red", "size"]
    raw.to_csv("semi.csv", index=False, sep=";")
    r = run("predict", "exports/mixed", "semi.csv", "--sep", ";", "--out", "semi.out.csv")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(here / "semi.out.csv")["label"].tolist() == predicted["label"].tolist()
    raw.to_parquet("new.parquet")
    r = run("predict", "exports/mixed", "new.parquet")
    assert r.exit_code == 0, r.output
    r = run("predict", "exports/mixed", "mixed.csv")  # the label column is left out
    assert r.exit_code == 0, r.output
    bad = raw.drop(columns=["color"])
    bad.to_csv("bad.csv", index=False)
    r = run("predict", "exports/mixed", "bad.csv")
    assert r.exit_code == 2 and "bad.csv: no column 'color'" in r.output, r.output


def test_a_parquet_table(here):
    bundled(load_wine, "cultivar").to_parquet("wine.parquet", index=False)
    r = run("sweep", "wine.parquet", "--target", "cultivar", "--trials", "2")
    assert r.exit_code == 0, r.output
    assert load_spec("sweeps/wine.yaml").data.dataset == "parquet:wine.parquet"
    assert len(join_storage_study("wine").trials) == 2


def write(here, name: str, text: str) -> str:
    (here / name).write_text(text)
    return name


@pytest.mark.parametrize("case,message", [
    ("missing target", "bad.csv: unknown target column 'species'; the columns are a, b, kind"),
    ("one class", "bad.csv: target column 'species' has 1 class ('x' in every row)"),
    ("text column", "bad.csv: text with more distinct values than categories (at most 50) in "
                    "10000 rows, an identifier or free text: column 'note' (10000 distinct); "
                    "drop it with --drop note"),
    ("empty file", "bad.csv: the file is empty"),
    ("semicolon", "bad.csv: one column read, and its header holds ';': the file looks "
                  "';'-separated; pass --sep ';'"),
    ("header only", "bad.csv: no rows (a header only)"),
    ("regression target", "bad.csv: target column 'species' holds non-integer numbers"),
])
def test_bad_tables_end_in_one_line(here, case, message):
    rng = np.random.default_rng(0)
    if case == "missing target":
        write(here, "bad.csv", "a,b,kind\n1,2,x\n3,4,y\n")
    elif case == "one class":
        write(here, "bad.csv", "a,b,species\n1,2,x\n3,4,x\n")
    elif case == "text column":
        pd.DataFrame({"a": rng.normal(size=10_000), "note": [f"n{i}" for i in range(10_000)],
                      "species": rng.choice(["x", "y"], 10_000)}).to_csv("bad.csv", index=False)
    elif case == "empty file":
        write(here, "bad.csv", "")
    elif case == "semicolon":
        write(here, "bad.csv", "a;b;species\n1;2;x\n3;4;y\n")
    elif case == "header only":
        write(here, "bad.csv", "a,b,species\n")
    else:
        pd.DataFrame({"a": rng.normal(size=50), "species": rng.normal(size=50)}).to_csv(
            "bad.csv", index=False)
    for command in (["init", "bad.csv"], ["sweep", "bad.csv"]):
        r = run(*command, "--target", "species")
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), r.output
    assert not (here / "sweeps").exists() and not (here / "mlruns").exists()


def test_the_semicolon_file_with_its_separator_and_a_dropped_text_column(here):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=200), "note": [f"n{i}" for i in range(200)],
                          "species": rng.choice(["x", "y"], 200)})
    frame.to_csv("semi.csv", index=False, sep=";")
    r = run("init", "semi.csv", "--target", "species", "--sep", ";", "--drop", "note")
    assert r.exit_code == 0, r.output
    assert "drop 'note': as asked" in r.output
    spec = load_spec("sweeps/semi.yaml")
    assert spec.data.sep == ";" and spec.data.columns.drop == ("note",)


def test_every_refused_column_is_named_at_once_and_a_typo_gets_a_suggestion(here):
    frame = mixed_table(200)
    frame["customer"] = [f"C{100000 + i}" for i in range(200)]
    frame["notes"] = [f"called on day {i}" for i in range(200)]
    frame.to_csv("ids.csv", index=False)
    r = run("init", "ids.csv", "--target", "label")
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: ids.csv: text with more distinct values than categories (at most 50) in 200 "
        "rows, an identifier or free text: columns 'customer' (200 distinct), 'notes' (200 "
        "distinct); drop them with --drop customer --drop notes"], r.output
    r = run("init", "ids.csv", "--target", "Label")
    assert r.exit_code == 2 and "unknown target column 'Label' (did you mean 'label'?)" in r.output
    r = run("init", "ids.csv", "--target", "label", "--drop", "customer", "--drop", "notes")
    assert r.exit_code == 0, r.output
    assert (here / "sweeps" / "ids.yaml").read_text().startswith(
        "# Written by `hpsearch init ids.csv --target label --drop customer --drop notes`")
    r = run("predict", "exports/nosuch", "ids.csv")
    assert r.exit_code == 2 and r.output.startswith("error: exports/nosuch: no such directory")


def test_usage_mistakes_of_sweep_with_a_table(here):
    bundled(load_iris).to_csv("iris.csv", index=False)
    r = run("sweep", "iris.csv")
    assert r.exit_code == 2 and "iris.csv is a table: name its label column with --target" \
        in r.output
    r = run("sweep", "sweeps/x.yaml", "--drop", "a")
    assert r.exit_code == 2 and "--drop and --sep go with --target" in r.output


def test_sweep_from_python_on_a_dataframe_and_on_arrays(here):
    frame = bundled(load_breast_cancer, "diagnosis")
    s = hpsearch.sweep(frame, target="diagnosis", trials=3, name="cancer", echo=None)
    study = join_storage_study("cancer")
    assert s.study.study_name == "cancer" and len(study.trials) == 3
    assert s.best_trial == study.best_trial.number and s.best_value == study.best_value
    assert s.best_model.score(frame.drop(columns=["diagnosis"]).to_numpy(),
                              frame["diagnosis"].to_numpy()) > 0.8
    assert sorted(s.run_ids) == [0, 1, 2] and len(set(s.run_ids.values())) == 3
    assert (here / "data" / "cancer.parquet").is_file() and s.spec_path.is_file()
    r = run("status", "cancer")  # every command works on it afterwards
    assert r.exit_code == 0 and "COMPLETE" in r.output

    X, y = load_iris(return_X_y=True)
    first = hpsearch.sweep(X, y, trials=2, echo=None)
    again = hpsearch.sweep(X, y, trials=3, echo=None)  # same data: the same study, resumed
    assert first.name == again.name and len(again.study.trials) == 3
    with pytest.raises(SpecError, match="was swept on other data"):
        hpsearch.sweep(X[:, :3], y, trials=2, name=first.name, echo=None)
    with pytest.raises(hpsearch.DataError, match="y: 150 labels, one per row of X"):
        hpsearch.sweep(X, y[:10], echo=None)
    # mistakes in Python's words, before anything is written
    with pytest.raises(hpsearch.DataError, match=r"X: unknown target column 'Diagnosis' "
                                                 r"\(did you mean 'diagnosis'\?\)"):
        hpsearch.sweep(frame, target="Diagnosis", name="typo", echo=None)
    notes = frame.assign(notes=[f"note {i}" for i in range(len(frame))])
    with pytest.raises(hpsearch.DataError, match=r"column 'notes' \(569 distinct\); drop it "
                                                 r"with drop=\['notes'\]"):
        hpsearch.sweep(notes, target="diagnosis", name="notes", echo=None)
    assert not (here / "data" / "notes.parquet").exists()
    s = hpsearch.sweep(notes, target="diagnosis", name="notes", trials=2, drop=["notes"],
                       echo=None)
    assert s.best_model.predict(notes.drop(columns=["diagnosis"]).head(3)).shape == (3,)
    r = run("sweep", str(s.spec_path), "--trials", "1")  # resumed below what it holds
    assert "sweep notes: 2 trials done, more than the 1 asked, 0 to run" in r.output, r.output
