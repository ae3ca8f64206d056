"""A full disk and a read-only disk under mlruns/: one line, exit 2, nothing recorded lost.

The stores live on a small tmpfs mounted for the test (root can write through chmod, so a real
file system is the only honest way to get ENOSPC and EROFS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from hpsearch.study.store import SafeJournalBackend, budget_counts

SPEC = """\
name: faults
data: {dataset: digits, seed: 0}
training: {max_epochs: 12, batch_size: 64, early_stopping_patience: null}
budget: {n_trials: 8, workers: 1}
sampler: {name: random, seed: 0}
pruner: none
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.05, log: true}
  hidden_size: {type: int, low: 32, high: 128, log: true}
"""


def mount_tmpfs(where: Path, size: str) -> Path:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root with "
                    f"CAP_SYS_ADMIN, as on CI")
    return where


@pytest.fixture
def small_fs(tmp_path):
    """mlruns/ on its own 8 MiB tmpfs."""
    where = mount_tmpfs(tmp_path / "mlruns", "8m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tiny_fs(tmp_path):
    where = mount_tmpfs(tmp_path / "tiny", "64k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def hpsearch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE", "HPSEARCH_CHECKPOINTS")}
    return subprocess.run([sys.executable, "-m", "hpsearch.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def study_of(cwd: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        SafeJournalBackend(str(cwd / "mlruns" / "optuna.journal")))
    return optuna.load_study(study_name="faults", storage=storage)


def journal_is_whole(path: Path) -> None:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)


def runs_of(cwd: Path):
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("faults")
    return client.search_runs([exp.experiment_id], max_results=100)


def fill(where: Path, leave_kib: int) -> Path:
    stat = os.statvfs(where)
    free_kib = stat.f_bavail * stat.f_frsize // 1024
    filler = where / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free_kib - leave_kib) * 1024)
    return filler


@pytest.mark.slow
def test_disk_full_mid_sweep_stops_in_one_line_and_loses_nothing(tmp_path, small_fs):
    (tmp_path / "faults.yaml").write_text(SPEC)
    first = hpsearch(tmp_path, "sweep", "faults.yaml", "--trials", "2")
    assert first.returncode == 0, first.stderr
    before = {t.number: t.value for t in study_of(tmp_path).get_trials()}

    filler = fill(small_fs, leave_kib=300)
    full = hpsearch(tmp_path, "sweep", "faults.yaml")
    line = one_line_error(full)
    assert "no space left" in line or "full" in line, line
    journal_is_whole(small_fs / "optuna.journal")  # no half-written record
    study = study_of(tmp_path)
    assert {t.number: t.value for t in study.get_trials() if t.number in before} == before

    filler.unlink()  # space is back: recover, then the same command finishes the sweep
    recovered = hpsearch(tmp_path, "recover", "faults")
    assert recovered.returncode == 0, recovered.stderr
    again = hpsearch(tmp_path, "sweep", "faults.yaml")
    assert again.returncode == 0, again.stderr
    trials = study_of(tmp_path).get_trials()
    # the budget rule: 8 trials count; one lost to the full disk (if one was running) is
    # FAIL beside them, retried
    counted, running, lost = budget_counts(trials)
    assert (counted, running) == (8, 0) and lost <= 1, [(t.number, t.state.name) for t in trials]
    assert sum(t.state.is_finished() for t in trials) == 8 + lost
    assert {t.number: t.value for t in trials if t.number in before} == before
    runs = runs_of(tmp_path)
    assert runs and all(r.info.status != "RUNNING" for r in runs), \
        [(r.info.run_name, r.info.status) for r in runs]
    parent = [r for r in runs if r.data.tags.get("hpsearch.role") == "sweep"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"


@pytest.mark.slow
def test_read_only_store_one_line_then_resume(tmp_path, small_fs):
    (tmp_path / "faults.yaml").write_text(SPEC)
    first = hpsearch(tmp_path, "sweep", "faults.yaml", "--trials", "2")
    assert first.returncode == 0, first.stderr
    journal = (small_fs / "optuna.journal").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        for args in (("sweep", "faults.yaml"), ("worker", "faults"), ("recover", "faults")):
            line = one_line_error(hpsearch(tmp_path, *args))
            assert "read-only" in line, line
        status = hpsearch(tmp_path, "status", "faults")  # reading still works
        assert status.returncode == 0 and "COMPLETE" in status.stdout, status.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert (small_fs / "optuna.journal").read_bytes() == journal
    again = hpsearch(tmp_path, "sweep", "faults.yaml", "--trials", "3")
    assert again.returncode == 0, again.stderr
    assert [t.state.name for t in study_of(tmp_path).get_trials()] == ["COMPLETE"] * 3


def test_journal_append_on_a_full_disk_leaves_no_broken_line(tiny_fs):
    backend = SafeJournalBackend(str(tiny_fs / "j.journal"))
    record = {"op_code": 0, "payload": "x" * 3000}
    written = 0
    with pytest.raises(OSError) as info:
        for _ in range(1000):  # 64 KiB fills after ~21 records
            backend.append_logs([record])
            written += 1
    assert info.value.filename == str(tiny_fs / "j.journal")
    assert 5 < written < 1000
    assert len(list(backend.read_logs(0))) == written
    journal_is_whole(tiny_fs / "j.journal")


def test_the_first_error_wins_when_tracking_fails_while_closing(tmp_path):
    """A sweep stopping on one error (here the study's) whose tracking store then fails too:
    the first error reaches the user, the second is reported beside it, not instead of it."""
    from types import SimpleNamespace

    from hpsearch.search.worker import run_trials

    class Study:
        study_name = "s"
        user_attrs: dict = {}

        def optimize(self, *args, **kwargs):
            raise RuntimeError("the study's own error")

    class Log:
        def close(self):
            raise OSError(28, "No space left on device", str(tmp_path / "mlflow.db"))

    said: list[str] = []
    spec = SimpleNamespace(export_reseed=(0, 3))
    ctx = SimpleNamespace(study=Study(), log=Log(), echo=said.append, spec=spec)
    with pytest.raises(RuntimeError, match="the study's own error"):
        run_trials(ctx, quota=1, deadline=None)  # type: ignore[arg-type]
    assert len(said) == 1 and said[0].startswith("tracking also failed: ")
    assert "mlflow.db" in said[0]

    # With nothing else on its way out (quota 0: no trial runs), the tracking error is raised.
    ctx = SimpleNamespace(study=Study(), log=Log(), echo=said.append, spec=spec)
    with pytest.raises(OSError):
        run_trials(ctx, quota=0, deadline=None)  # type: ignore[arg-type]
