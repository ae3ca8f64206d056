"""Sweeps end to end on digits, read back through a real MLflow store and a real Optuna storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from conftest import (
    Lines,
    StatusServer,
    default_stop_signals,
    trials_running_with_epochs,
    wait_for_http,
)
from hpsearch.cli import main
from hpsearch.diagnosis.diagnostics import VERDICTS
from hpsearch.report.report import build_report
from hpsearch.search.sweep import run_sweep
from hpsearch.spec.config import load_spec
from hpsearch.study.verdicts import verdicts
from hpsearch.tracking.backend import resolve_tracking_uri
from hpsearch.tracking.tracker import EPOCH_METRICS

ROOT = Path(__file__).resolve().parents[1]
SMALL = """\
name: small
data: {dataset: digits, seed: 0}
training: {max_epochs: 12, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 6, workers: 1}
sampler: {name: random, seed: 1}
pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 2}
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.05, log: true}
  optimizer: {type: categorical, choices: [adam, momentum]}
  hidden_size: {type: int, low: 16, high: 64, log: true}
"""


def runs_of(study: str, uri: str = "sqlite:///mlruns/mlflow.db"):
    # Absolute path: MLflow caches stores by URI string, and every test has its own directory.
    client = MlflowClient(resolve_tracking_uri(uri))
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("hpsearch.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("hpsearch.role") == "trial"]
    return client, parents, children


def trials_of(study: str, storage: str = "mlruns/optuna.journal"):
    from hpsearch.study.store import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials()


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    (tmp_path / "small.yaml").write_text(SMALL)
    return tmp_path


@pytest.mark.slow
def test_quickstart_end_to_end(workdir):
    result = run_sweep(ROOT / "sweeps" / "quickstart.yaml", echo=lambda s: None)
    assert result.n_trials == 20 and result.best_number is not None
    client, parents, children = runs_of("quickstart")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["best_trial"] == str(result.best_number)
    assert "best_val_accuracy" in parent.data.metrics
    assert any(a.path.endswith("quickstart.yaml") for a in
               client.list_artifacts(parent.info.run_id, "spec"))
    assert parent.data.params["version.hpsearch"]

    assert sorted(r.info.run_name for r in children) == sorted(f"trial-{i}" for i in range(20))
    trials = {t.number: t for t in trials_of("quickstart")}
    assert len(trials) == 20
    fits = verdicts(list(trials.values()), load_spec(ROOT / "sweeps" / "quickstart.yaml"))
    pruned = pictures = 0
    kept = {int(m.tags["optuna.trial.number"])
            for m in client.search_logged_models([parent.info.experiment_id])}
    for run in children:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        number = int(tags["optuna.trial.number"])
        state = trials[number].state.name
        assert tags["optuna.trial.state"] == state
        assert run.info.status == ("FAILED" if state == "FAIL" else "FINISHED")
        assert tags["data.fingerprint"] and tags["hpsearch.version"]
        epochs = int(metrics["epochs_run"])
        for key in EPOCH_METRICS:
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1)), key
        assert {"learning_rate", "optimizer", "hidden_sizes", "max_epochs"} <= set(run.data.params)
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "history.csv" in files
        # a kept trial's run has its curves as a picture too (drawn with its logged model);
        # a trial never among the top k has them in its metrics and history.csv only
        assert "learning_curve.png" in files or number not in kept, (number, kept, files)
        pictures += "learning_curve.png" in files
        if state == "PRUNED":
            pruned += 1
            assert tags["optuna.trial.reason"].startswith("pruned at epoch")
            assert epochs < 40 and "median" in tags["optuna.trial.reason"]
        if state == "COMPLETE":
            assert metrics["best_val_accuracy"] == pytest.approx(trials[number].value)
        # The diagnosis: tags to filter on in the UI, metrics, and the evidence as JSON.
        assert tags["fit.verdict"] in VERDICTS and tags["fit.advice"]
        # the verdict against the final study; re-tagged (and said so) if it changed since
        assert tags["fit.verdict"] == fits[number][0]
        told = trials[number].user_attrs["fit.verdict"]
        assert ("fit.revisited" in tags) == (told != fits[number][0])
        assert {"fit.gap_at_best", "fit.val_drop_from_peak"} <= set(metrics)
        assert "diagnosis.json" in files
    assert pruned >= 1  # the median pruner does prune on this space
    assert len(kept) == 3 and 3 <= pictures < 20
    found = client.search_runs([parent.info.experiment_id],
                               "tags.`fit.verdict` = 'good_fit'", max_results=100)
    assert found and all(r.data.tags["fit.verdict"] == "good_fit" for r in found)

    # The report of the finished sweep holds every section, with its figures embedded; it puts
    # the study's figures on the sweep's run too.
    out = build_report("quickstart")
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    assert {"study/optimization_history.png", "study/param_importances.png"} <= parent_files
    md = (out / "report.md").read_text()
    for title in ("Summary", "Leaderboard", "What to try next", "Search-space health",
                  "Learning curves", "Over- and underfitting across the space",
                  "Optimization history and parameter importances",
                  "Selection check: validation against test"):
        assert f"## {title}" in md
    assert f"Best: trial {result.best_number}" in md
    # the top trials tie within the noise: the selection check says so with the noise floor's
    # own figure (two standard errors of a difference of two validation scores)
    floor = result.noise_floor
    assert (f"within validation noise of it: two standard errors of the difference of two "
            f"validation scores (2√2 × the noise floor {floor:.4f} = "
            f"{2 * 2 ** 0.5 * floor:.4f})") in md, md
    for png in ("curves_top.png", "curves_verdicts.png", "fit_map.png", "learning_rate.png",
                "optimization_history.png", "param_importances.png"):
        assert (out / png).stat().st_size > 5000
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "<table>" in page
    assert "src=\"curves" not in page  # self-contained: no links to files beside it
    assert "report/index.html" in {a.path for a in
                                   client.list_artifacts(parent.info.run_id, "report")}
    status = CliRunner().invoke(main, ["status", "quickstart"])
    assert "verdict" in status.output.splitlines()[0]


def test_resume_reaches_exactly_n_trials(workdir):
    first = run_sweep("small.yaml", n_trials=2, echo=lambda s: None)
    assert len(trials_of("small")) == 2 and first.n_trials == 2
    again = run_sweep("small.yaml", n_trials=6, echo=lambda s: None)
    assert again.ran == 4
    trials = trials_of("small")
    assert [t.number for t in trials] == list(range(6))
    # The resumed sampler does not replay the first run's random draws.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    _, parents, children = runs_of("small")
    assert len(parents) == 1 and len(children) == 6
    # Running again with nothing left to do changes nothing.
    run_sweep("small.yaml", echo=lambda s: None)
    assert len(trials_of("small")) == 6 and len(runs_of("small")[2]) == 6


@pytest.mark.slow
def test_two_worker_processes_share_one_study(workdir):
    result = run_sweep("small.yaml", workers=2, echo=lambda s: None)
    assert not result.interrupted
    trials = trials_of("small")
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.is_finished() for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # workers draw apart
    _, parents, children = runs_of("small")
    assert len(parents) == 1 and len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert len({r.data.tags["optuna.trial.number"] for r in children}) == 6
    # Both workers pruned checkpoints: exactly the top 3 (checkpoints.keep) remain.
    complete = sorted((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: -t.value)
    kept = {int(p.name[6:]) for p in (workdir / "mlruns" / "checkpoints" / "small").iterdir()}
    assert kept == {t.number for t in complete[:3]}


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(workdir):
    (workdir / "fail.yaml").write_text("""\
name: fail
training: {max_epochs: 3}
budget: {n_trials: 2, workers: 1}
sampler: grid
space:
  warmup_epochs: {type: categorical, choices: [0, -1]}
""")
    run_sweep("fail.yaml", echo=lambda s: None)
    states = sorted(t.state.name for t in trials_of("fail"))
    assert states == ["COMPLETE", "FAIL"]
    _, _, children = runs_of("fail")
    failed = [r for r in children if r.data.tags["optuna.trial.state"] == "FAIL"]
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert "warmup_epochs=-1" in failed[0].data.tags["optuna.trial.reason"]


def test_worker_joins_an_existing_study_and_status_shows_it(workdir):
    run_sweep("small.yaml", timeout=1e-6, echo=lambda s: None)  # creates study + parent only
    assert trials_of("small") == []
    result = CliRunner().invoke(main, ["worker", "small"])
    assert result.exit_code == 0, result.output
    assert "ran 6 trial(s)" in result.output
    assert len(trials_of("small")) == 6 and len(runs_of("small")[1]) == 1
    status = CliRunner().invoke(main, ["status", "small"])
    assert status.exit_code == 0 and "best: trial" in status.output
    report = CliRunner().invoke(main, ["report", "small"])
    assert report.exit_code == 0 and (workdir / "reports" / "small" / "index.html").is_file()
    assert sum(line.split()[1] in ("COMPLETE", "PRUNED") for line in
               status.output.splitlines()[2:-1]) == 6


REJUDGE = """\
name: rejudge
data: {dataset: digits, seed: 0}
training: {max_epochs: 15, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 3, workers: 1}
sampler: {name: random, seed: 6}      # draws 3, 3, then 128 hidden units
pruner: none
diagnostics: {low_train_accuracy: 0.3}  # so that only the comparison with the study can tell
space:
  learning_rate: 0.01
  optimizer: adam
  schedule: cosine
  hidden_size: {type: categorical, choices: [3, 128]}
"""


def test_the_first_trials_are_judged_again_against_the_final_study(workdir):
    """Trials 0 and 1 (3 hidden units, training accuracy ~0.58) end before the 128-unit trial
    2 (~1.0) exists: diagnosed then, they look like a good fit. Status, report, export and the
    MLflow tags must show them underfitting against the study as it ended."""
    (workdir / "rejudge.yaml").write_text(REJUDGE)
    run_sweep("rejudge.yaml", echo=lambda s: None)
    trials = trials_of("rejudge")
    assert [t.params["hidden_size"] for t in trials] == [3, 3, 128]
    small = [t.user_attrs["fit.train_accuracy_at_best"] for t in trials[:2]]
    assert max(small) < 0.9 and trials[2].user_attrs["fit.train_accuracy_at_best"] > 0.95
    # what each trial was told when it ended (Optuna keeps a finished trial's attributes)
    assert [t.user_attrs["fit.verdict"] for t in trials] == ["good_fit"] * 3

    status = CliRunner().invoke(main, ["status", "rejudge"])
    rows = {line.split()[0]: line.split() for line in status.output.splitlines()[2:-1]}
    assert [rows[n][-2] for n in "012"] == ["underfitting", "underfitting", "good_fit"]

    client, _, children = runs_of("rejudge")
    tags = {r.data.tags["optuna.trial.number"]: r.data.tags for r in children}
    for n in "01":
        assert tags[n]["fit.verdict"] == "underfitting"
        assert "below the study's best" in tags[n]["fit.summary"]
        assert tags[n]["fit.advice"].startswith("Underfits")
        assert tags[n]["fit.revisited"].startswith("good_fit when the trial ended")
    assert tags["2"]["fit.verdict"] == "good_fit" and "fit.revisited" not in tags["2"]

    build_report("rejudge")
    md = (workdir / "reports" / "rejudge" / "report.md").read_text()
    assert "| underfitting | 2 |" in md and "| good_fit | 1 |" in md
    export = CliRunner().invoke(main, ["export", "rejudge", "--trial", "0", "--no-register"])
    assert export.exit_code == 0, export.output + export.stderr
    card = (workdir / "exports" / "rejudge" / "MODEL_CARD.md").read_text()
    assert "verdict: **underfitting**: training accuracy only" in card


def test_unknown_study_is_one_line(workdir):
    for cmd in (["status", "nosuch"], ["worker", "nosuch"], ["report", "nosuch"]):
        result = CliRunner().invoke(main, cmd)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: no study named 'nosuch'")


LONG = """\
name: long
training: {max_epochs: 400, batch_size: 16, early_stopping_patience: null}
budget: {n_trials: 3, workers: 1}
pruner: none
space:
  hidden_size: {type: int, low: 256, high: 256}
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum, workers, terminal", [
    (signal.SIGINT, 1, False), (signal.SIGINT, 2, False), (signal.SIGINT, 2, True),
    (signal.SIGTERM, 1, False), (signal.SIGTERM, 2, False), (signal.SIGTERM, 2, True),
    (signal.SIGHUP, 1, False), (signal.SIGHUP, 2, False), (signal.SIGHUP, 2, True)])
def test_a_stopping_signal_closes_the_running_trials_and_the_budget_is_kept(
        workdir, signum, workers, terminal):
    """SIGINT, SIGTERM or SIGHUP to the sweep process alone (with 2 workers it must pass the
    signal on to them), or to its whole process group as a terminal's Ctrl-C (or systemd's
    control-group stop) does: each worker then gets it twice. The interrupted trials are FAIL
    with the signal's name, their runs KILLED, their parameters enqueued again; the same command
    then finishes with exactly n_trials complete trials."""
    (workdir / "long.yaml").write_text(LONG)
    # the first trials train without an epoch limit: the signal lands inside them
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HPSEARCH_TEST_ENDLESS_TRIALS": "0,1"}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", "long.yaml",
                             "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=terminal, preexec_fn=default_stop_signals)
    output = Lines(proc.stdout)
    trials_running_with_epochs(lambda: trials_of("long"), list(range(workers)), proc, output)
    sent = time.monotonic()
    if terminal:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    out, err = output.rest(proc), proc.stderr.read()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, (
        f"exit {proc.returncode} {time.monotonic() - sent:.1f} s after {name}; "
        f"stdout:\n{out}\nstderr:\n{err}")
    assert f"interrupted by {name}" in err and "Traceback" not in err, err
    trials = trials_of("long")
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert sorted(t.number for t in failed) == list(range(workers)), trials
    assert all(name in t.user_attrs["reason"] for t in failed), [t.user_attrs for t in failed]
    waiting = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == list(range(workers))
    assert not [t for t in trials if t.state.name == "RUNNING"]
    _, parents, children = runs_of("long")
    assert all(r.info.status != "RUNNING" for r in children)
    killed = [r for r in children if r.info.status == "KILLED"]
    assert len(killed) == workers and all(
        name in r.data.tags["optuna.trial.reason"] for r in killed)
    assert parents[0].info.status == "KILLED"

    # The same command resumes (short trials now): exactly n_trials complete trials, the
    # interrupted ones FAIL and linked to their retries, nothing RUNNING in either store.
    (workdir / "long.yaml").write_text(LONG.replace("max_epochs: 400", "max_epochs: 3"))
    result = CliRunner().invoke(main, ["sweep", "long.yaml", "--workers", "1"])
    assert result.exit_code == 0, result.output
    trials = trials_of("long")
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3, trials
    assert sum(t.state.name == "FAIL" for t in trials) == workers
    retries = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    assert sorted(retries) == list(range(workers))
    assert all(retries[n].params == trials[n].params for n in retries)
    _, parents, children = runs_of("long")
    assert all(r.info.status != "RUNNING" for r in children + parents)
    by_number = {int(r.data.tags["optuna.trial.number"]): r for r in children}
    for n, retry in retries.items():
        assert by_number[n].data.tags["hpsearch.retried_as"] == str(retry.number)
    status = CliRunner().invoke(main, ["status", "long"])
    assert f"lost to faults: {workers} trial(s)" in status.output, status.output


@pytest.mark.slow
def test_a_signal_ignored_at_start_stays_ignored(workdir):
    """`nohup hpsearch sweep ...`: SIGHUP was ignored when the sweep started, so a hangup does
    not stop it; the SIGTERM sent right after it does (exit 143, not 129)."""
    (workdir / "long.yaml").write_text(LONG)

    def nohup() -> None:
        default_stop_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HPSEARCH_TEST_ENDLESS_TRIALS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "sweep", "long.yaml"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=nohup)
    output = Lines(proc.stdout)
    trials_running_with_epochs(lambda: trials_of("long"), [0], proc, output)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)
    output.rest(proc)
    err = proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "SIGHUP" not in err, err


@pytest.mark.slow
def test_ui_serves_the_store_on_loopback(workdir):
    import socket
    import urllib.request

    run_sweep("small.yaml", n_trials=1, echo=lambda s: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "ui", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = wait_for_http(f"http://127.0.0.1:{port}/health", proc).decode()
        assert body.strip() == "OK"
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
            "?experiment_name=small")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert b'"name": "small"' in r.read().replace(b'":"', b'": "')
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("uri,message", [
    ("htp://nowhere", "unsupported scheme 'htp'"),
    ("http://127.0.0.1:1", "tracking store http://127.0.0.1:1: reading the experiment failed"),
])
def test_bad_tracking_uri_is_one_line_and_creates_no_study(workdir, uri, message):
    result = CliRunner().invoke(main, ["sweep", "small.yaml", "--tracking-uri", uri])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "mlruns" / "optuna.journal").exists()


def test_a_failing_tracking_server_is_retried_a_bounded_number_of_times(workdir):
    """No minutes of retries against a dead server: a few requests, then one line."""
    server = StatusServer(503)
    try:
        result = CliRunner().invoke(main, ["sweep", "small.yaml", "--tracking-uri",
                                           f"http://127.0.0.1:{server.port}"])
    finally:
        server.close()
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: tracking store http://127.0.0.1:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # MLFLOW_HTTP_REQUEST_MAX_RETRIES=2: the first request and two retries, then it stops
    assert 1 <= len(server.requests) <= 3, server.requests
    assert not (workdir / "mlruns" / "optuna.journal").exists()


def test_password_in_storage_url_is_masked(workdir):
    result = CliRunner().invoke(main, ["sweep", "small.yaml", "--storage",
                                       "postgresql://user:s3cret@127.0.0.1:1/db"])
    assert result.exit_code == 2 and "s3cret" not in result.output + result.stderr
    assert "user:***@" in result.stderr



class _OtherWorkerCompletes(optuna.Study):
    """A study in which another worker's running trial completes, with the best value, right
    after read number ``after`` of the trials: every interleaving of retention with it."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, after: int) -> None:
        super().__init__(study_name=study.study_name, storage=study._storage)
        self._pending: optuna.Trial | None = trial
        self._reads_left = after

    def get_trials(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        trials = super().get_trials(*args, **kwargs)
        self._reads_left -= 1
        if self._pending is not None and self._reads_left == 0:
            self.tell(self._pending, 0.99)
            self._pending = None
        return trials


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_retention_never_drops_a_trial_that_completes_while_it_reads(after, tmp_path,
                                                                    monkeypatch):
    from hpsearch.search.retention import retain

    monkeypatch.setenv("HPSEARCH_CHECKPOINTS", str(tmp_path / "ckpt"))
    study = optuna.create_study(study_name="race", direction="maximize")
    for v in (0.5, 0.6, 0.7):
        study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
    running = study.ask()  # trial 3, on another worker; it will be the best
    ckpts = tmp_path / "ckpt" / "race"
    for n in range(4):
        (ckpts / f"trial-{n}").mkdir(parents=True)

    class Log:
        dropped: list[int] = []

        def drop_models(self, study_name: str, numbers: list[int]) -> None:
            self.dropped += numbers

    log, view = Log(), _OtherWorkerCompletes(study, running, after)
    retain(view, 2, 0, log, "0", None)  # type: ignore[arg-type]
    if view._pending is not None:  # it completes after retention read all it reads
        study.tell(running, 0.99)
    top = {t.number for t in sorted(study.get_trials(), key=lambda t: -(t.value or 0))[:2]}
    assert top == {3, 2}
    assert not set(log.dropped) & top, f"dropped {log.dropped}, final top {sorted(top)}"
    # trial 0 finished outside the top: it never had a model, nothing to drop (a model is
    # logged only for a trial that enters the top k, and dropped when another pushes it out)
    assert log.dropped == [], log.dropped
    assert (ckpts / "trial-3").is_dir() and (ckpts / "trial-2").is_dir()
    assert not (ckpts / "trial-0").exists()
