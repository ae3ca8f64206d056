"""Bad input, tried as a new user would, through the command line, next to a sweep that already
holds results: every case is one line `error: ...` naming the file, key or value, exit status 2,
and the recorded study, runs and checkpoints are exactly as before (nothing new created either).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hpsearch.cli import main
from hpsearch.study.store import open_storage, resolve_storage_url
from hpsearch.tracking.backend import resolve_tracking_uri

GOOD = """\
name: kept
data: {data}
training: {{max_epochs: 4, batch_size: 64}}
budget: {{n_trials: 2, workers: 1}}
sampler: {{name: random, seed: 0}}
space:
  {space}
"""
SPACE = "learning_rate: {type: float, low: 1.0e-3, high: 0.05, log: true}"


def spec(data: str = "{dataset: digits}", space: str = SPACE) -> str:
    return GOOD.format(data=data, space=space)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, fashion_dir):
    """A directory whose mlruns/ holds a finished 2-trial sweep named 'kept'."""
    root = tmp_path_factory.mktemp("bad-input")
    old = os.getcwd()
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE")}
    os.chdir(root)
    try:
        (root / "kept.yaml").write_text(spec())
        result = CliRunner().invoke(main, ["sweep", "kept.yaml"])
        assert result.exit_code == 0, result.output
        idx = root / "idx"
        idx.mkdir()
        for f in fashion_dir.glob("*.gz"):
            shutil.copy(f, idx)
        yield root
    finally:
        os.chdir(old)
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def snapshot(root: Path) -> dict[str, object]:
    storage = open_storage(resolve_storage_url(None))
    studies = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    trials = [(t.number, t.state.name, t.value, t.params)
              for t in optuna.load_study(study_name="kept", storage=storage).get_trials()]
    client = MlflowClient(resolve_tracking_uri(None))
    experiments = sorted(e.name for e in client.search_experiments())
    exp = client.get_experiment_by_name("kept")
    runs = sorted((r.info.run_id, r.info.status, tuple(sorted(r.data.metrics)))
                  for r in client.search_runs([exp.experiment_id]))
    checkpoints = sorted(str(p.relative_to(root)) for p in (root / "mlruns").rglob("*")
                         if "checkpoints" in p.parts)
    return {"studies": studies, "trials": trials, "experiments": experiments, "runs": runs,
            "checkpoints": checkpoints}


def csv_case(name: str, text: str, message: str) -> tuple[str, str, list[str], str, dict]:
    return (f"{name}.yaml", spec(f"{{dataset: 'csv:{name}.csv', target: label}}"), [],
            f"{name}.csv: {message}", {f"{name}.csv": text})


CASES = {
    # id: (spec file, spec text or None, extra CLI args, message fragment, files to write)
    "malformed YAML": ("k.yaml", spec().replace("space:\n", "space:\n  l2: {type: float\n"),
                       [], "k.yaml: invalid YAML at line"),
    "unknown key": ("k.yaml", spec().replace("budget:", "budgte:"), [],
                    "k.yaml: top level has unknown key 'budgte'"),
    "wrong type": ("k.yaml", spec().replace("max_epochs: 4", "max_epochs: four"), [],
                   "training.max_epochs must be a whole number, not 'four'"),
    "inverted range": ("k.yaml", spec(space="dropout: {type: float, low: 0.4, high: 0.1}"), [],
                       "space.dropout.low must be <= high"),
    "unknown optimizer": ("k.yaml", spec(space="optimizer: {type: categorical, choices: "
                                               "[adam, adagrad]}"), [],
                          "unknown optimizer 'adagrad'"),
    "unknown dataset": ("k.yaml", spec("{dataset: cifar10}"), [],
                        "data.dataset is unknown: 'cifar10'"),
    "missing IDX file": ("k.yaml", spec("{dataset: fashion-mnist, data_dir: idx-missing}"), [],
                         "missing fashion-mnist file"),
    "corrupt IDX file": ("k.yaml", spec("{dataset: fashion-mnist, data_dir: idx-corrupt}"), [],
                         "train-labels-idx1-ubyte.gz: truncated or corrupt gzip"),
    "CSV text feature": csv_case("text", "a,b,label\n1,2,x\n3,oops,y\n",
                                 "column 'b' is not numeric"),
    "CSV NaN": csv_case("nan", "a,b,label\n1,2,x\n3,,y\n", "column 'b' has 1 missing value"),
    "CSV one class": csv_case("one", "a,b,label\n1,2,x\n3,4,x\n",
                              "target column 'label' has 1 class"),
    "study name with path characters": ("kept.yaml", None, ["--study", "../evil"],
                                        "study name '../evil': must be letters"),
    "unreachable storage": ("kept.yaml", None,
                            ["--storage", "postgresql://u:s3cret@127.0.0.1:1/db"],
                            "storage postgresql://u:***@127.0.0.1:1/db"),
    "mistyped tracking URI": ("kept.yaml", None, ["--tracking-uri", "htp://localhost:5000"],
                              "unsupported scheme 'htp'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_damages_nothing(recorded, case):
    name, text, args, message, *files = CASES[case]
    root = recorded
    for fname, content in (files[0] if files else {}).items():
        (root / fname).write_text(content)
    if text is not None:
        (root / name).write_text(text)
    if not (root / "idx-missing").exists():  # copies of the real files, one missing / cut
        shutil.copytree(root / "idx", root / "idx-missing")
        (root / "idx-missing" / "t10k-images-idx3-ubyte.gz").unlink()
        shutil.copytree(root / "idx", root / "idx-corrupt")
        f = root / "idx-corrupt" / "train-labels-idx1-ubyte.gz"
        f.write_bytes(f.read_bytes()[:5000])
    before = snapshot(root)
    result = CliRunner().invoke(main, ["sweep", name, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "s3cret" not in result.output + result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("command", ["status", "report", "export", "recover", "worker"])
def test_study_name_with_path_characters_is_refused_everywhere(command):
    result = CliRunner().invoke(main, [command, "../../etc"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: study name '../../etc': must be letters, digits, "
                                     "'.', '_' or '-' (no spaces or path characters), at most "
                                     "100 characters")


@pytest.mark.parametrize("args, message, hint", [
    (["sweep", "sweeps"], "error: Invalid value for 'SPEC': File 'sweeps' is a directory.",
     "see 'hpsearch sweep --help'"),
    (["sweep", "x.yaml", "--trials", "-3"],
     "error: Invalid value for '--trials': -3 is not in the range x>=1.",
     "see 'hpsearch sweep --help'"),
    (["sweep", "x.yaml", "--workers", "0"],
     "error: Invalid value for '--workers': 0 is not in the range 1<=x<=64.",
     "see 'hpsearch sweep --help'"),
    (["sweep"], "error: Missing argument 'SPEC'.", "see 'hpsearch sweep --help'"),
    (["export", "x", "--trial", "two"], "error: Invalid value for '--trial': 'two' is not a "
     "valid integer.", "see 'hpsearch export --help'"),
    (["nosuch"], "error: No such command 'nosuch'.", "see 'hpsearch --help'"),
    (["status", "x", "--bogus"], "error: No such option '--bogus'.",
     "see 'hpsearch status --help'"),
])
def test_usage_errors_are_one_line_and_a_hint(recorded, args, message, hint):
    """click's usage errors in the format of every other error: `error: ...` naming the option
    and value, at most one hint line, exit status 2 (a real process, as a user sees it)."""
    import subprocess
    import sys

    (recorded / "sweeps").mkdir(exist_ok=True)
    before = snapshot(recorded)
    done = subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=recorded,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [message, hint], done.stderr
    assert done.stdout == ""
    assert snapshot(recorded) == before
