"""The export inside the sweep's budget (`export: {in_budget: true}`): the search leaves the
refit the time it needs, the sweep ends with the exported model, and an ensemble's members are
refit in parallel processes, each the same model as one process trains. Real digits."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

import hpsearch
from conftest import Lines, default_stop_signals, wait_until
from hpsearch.cli import main
from hpsearch.errors import SpecError
from hpsearch.model.ensemble import EnsembleClassifier
from hpsearch.search import refit, worker
from hpsearch.spec import datasets
from hpsearch.spec.config import parse_spec
from hpsearch.study.store import StudyKey, join_storage_study

SPEC = """\
name: inb
data: {dataset: digits, seed: 0}
training: {max_epochs: 12, batch_size: 64, early_stopping_patience: 4, seed: 0}
budget: {n_trials: 6, workers: 1}
sampler: {name: random, seed: 2}
pruner: none
checkpoints: {keep: 3}
export: {ensemble: 3, refit: true, in_budget: true}
space:
  learning_rate: {type: float, low: 3.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 16, high: 96, log: true}
"""


def test_the_key_is_checked():
    spec = parse_spec(yaml.safe_load(SPEC), "x.yaml")
    assert spec.export_in_budget and spec.export_refit
    assert not parse_spec(yaml.safe_load(SPEC.replace(", in_budget: true", "")),
                          "x.yaml").export_in_budget
    with pytest.raises(SpecError, match=r"x.yaml: export.in_budget must be"):
        parse_spec(yaml.safe_load(SPEC.replace("in_budget: true", "in_budget: 3")), "x.yaml")


def test_parallel_refit_trains_the_same_members_as_one_process():
    splits = datasets.load_splits(parse_spec(yaml.safe_load(SPEC)).data)
    members = []
    for number, (size, seed, epochs) in enumerate([(24, 1, 6), (48, 2, 9), (32, 3, 7)]):
        m = hpsearch.MLPClassifier(hidden_sizes=(size,), learning_rate=0.01, max_epochs=epochs,
                                   random_state=seed).fit(*splits.train,
                                                          eval_sets={"val": splits.val})
        members.append((m, float(number + 1), 10 + number))
    ens = EnsembleClassifier(members)
    lines: list[str] = []
    with threadpool_limits(1):  # the parallel processes train with one BLAS thread each
        alone, alone_note = refit.refit_ensemble(ens, splits, lambda _: None, processes=1)
    both, note = refit.refit_ensemble(ens, splits, lines.append, processes=2)
    assert lines[0] == (f"refit: 3 members on train + validation "
                        f"({len(splits.train[1]) + len(splits.val[1])} samples), 2 at a time...")
    assert sorted(line.split(" done")[0] for line in lines[1:]) == \
        [f"refit: member {i}/3 (trial {10 + i - 1})" for i in (1, 2, 3)]
    assert [(w, n) for _, w, n in both.members] == [(w, n) for _, w, n in ens.members]
    assert note["epochs"] == alone_note["epochs"] == [m.best_epoch_ for m, _, _ in members]
    for (p, _, _), (s, _, _) in zip(both.members, alone.members, strict=True):
        np.testing.assert_array_equal(p.coefs_[0], s.coefs_[0])  # the same model, bit for bit
    np.testing.assert_array_equal(both.predict_proba(splits.test[0]),
                                  alone.predict_proba(splits.test[0]))


def test_the_reserve_is_the_refit_of_the_top_members_in_rounds():
    spec = parse_spec(yaml.safe_load(SPEC.replace("workers: 1", "workers: 2")))
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(StudyKey.DATA, {"n_train": 1000, "n_val": 250})  # x 1.25 the data
    for value, seconds in ((0.9, 100.0), (0.8, 60.0), (0.7, 20.0), (0.6, 5000.0)):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={},
                                                  user_attrs={"train_time_s": seconds}))
    trials = study.get_trials()
    # the top 3 (not the fourth): 2 rounds over 2 processes of their mean 60 s, 1.25 x the data
    assert refit.reserve_seconds(study, spec, trials) == \
        pytest.approx(refit.EXPORT_SECONDS + 1.25 * 2 * 60)
    one = parse_spec(yaml.safe_load(SPEC.replace("ensemble: 3", "ensemble: 1")))
    assert refit.reserve_seconds(study, one, trials) == \
        pytest.approx(refit.EXPORT_SECONDS + 1.25 * 100)  # the best trial alone
    for off in ("in_budget: false", "refit: false"):
        other = parse_spec(yaml.safe_load(SPEC.replace(off.replace("false", "true"), off)))
        assert refit.reserve_seconds(study, other, trials) == 0.0
    assert refit.reserve_seconds(study, spec, []) == 0.0  # nothing to estimate from yet


def test_with_the_export_in_the_budget_a_trial_must_end_before_the_reserve():
    """A trial begun now must end before the export's time: the complete trials' mean length
    (a pruned trial's is not what a trial may take) is counted from now. Without the export in
    the budget, budget.timeout only forbids starting a trial after it."""
    spec = parse_spec(yaml.safe_load(SPEC.replace("n_trials: 6", "n_trials: 60")))
    study = optuna.create_study(direction="maximize")
    for state, seconds in (("COMPLETE", 100.0), ("COMPLETE", 80.0), ("PRUNED", 2.0)):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState[state], value=0.9 if state == "COMPLETE" else None,
            params={}, distributions={}, user_attrs={"train_time_s": seconds}))
    ctx = SimpleNamespace(spec=spec, study=study, n_trials=60)
    now, trials = time.time(), study.get_trials(deepcopy=False)
    assert not worker._search_over(ctx, None, 0, now + 120, trials)  # 90 s fit
    assert worker._search_over(ctx, None, 0, now + 60, trials)  # 90 s would end after it
    assert worker._search_over(ctx, None, 0, now + 75, trials)  # (a pruned trial: not counted)
    # without a refit the export takes seconds: the trial must still end before the deadline
    bare = SimpleNamespace(spec=parse_spec(yaml.safe_load(SPEC.replace("refit: true",
                                                                       "refit: false"))),
                           study=study, n_trials=60)
    assert worker._search_over(bare, None, 0, now + 60, trials)
    after = SimpleNamespace(spec=parse_spec(yaml.safe_load(SPEC.replace("in_budget: true",
                                                                        "in_budget: false"))),
                            study=study, n_trials=60)
    assert not worker._search_over(after, None, 0, now + 60, trials)
    assert worker._search_over(after, None, 0, now - 1, trials)


def test_the_sweep_ends_with_the_export_inside_its_budget(tmp_path, monkeypatch):
    """The search ends when the time left is the export's: here an export longer than the
    whole budget, so the first complete trial ends it (before any trial completes there is
    nothing to estimate from); then the sweep exports the refit ensemble as its last step."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    monkeypatch.setattr(refit, "EXPORT_SECONDS", 10_000.0)
    (tmp_path / "inb.yaml").write_text(SPEC.replace("n_trials: 6", "n_trials: 6, timeout: 3600"))
    r = CliRunner().invoke(main, ["sweep", "inb.yaml"])
    assert r.exit_code == 0, r.output
    study = join_storage_study("inb")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    # why the search ended with most of the hour left, once
    assert r.output.count("the search ends with ") == 1, r.output
    assert re.search(r"the search ends with 3[0-9]{3} s left: the export inside the budget "
                     r"needs about 1[0-9]{4} s \(refit, scoring, writing\), and a new trial of "
                     r"about [0-9]+ s would not end before it", r.output), r.output
    assert "refit: member 1/1 (trial 0) on train + validation" in r.output
    assert "exported an ensemble led by trial 0 (refit on train + validation) to exports/inb: " \
           f"val_accuracy {study.best_value:.4f}, test accuracy" in r.output
    assert "registered as inb version 1" in r.output and "sweep and export: " in r.output
    model = hpsearch.load(tmp_path / "exports" / "inb")
    metrics = json.loads((tmp_path / "exports/inb/test_metrics.json").read_text())
    splits = datasets.load_splits(parse_spec(yaml.safe_load(SPEC)).data)
    assert metrics["refit"]["samples"] == len(splits.train[1]) + len(splits.val[1])
    assert metrics["test_accuracy"] == pytest.approx(model.score(*splits.test))

    # without the reserve the same sweep runs all its trials, then exports
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    r = CliRunner().invoke(main, ["sweep", "inb.yaml", "--study", "inb2"])
    assert r.exit_code == 0, r.output
    assert len(join_storage_study("inb2").trials) == 6
    assert "the search ends with" not in r.output  # n_trials ended it, not the reserve
    assert "exported an ensemble led by trial" in r.output and "(refit on train + validation)" \
        in r.output


def test_an_in_budget_export_whose_reseed_never_ran_takes_the_best_trial(tmp_path, monkeypatch):
    """The budget ends before the reseed trials could start (here the export's reserve is
    longer than the budget): the sweep's own export has no time to train seeds, so it takes
    the best trial and says how to reseed later, where `hpsearch export` would train them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    monkeypatch.setattr(refit, "EXPORT_SECONDS", 10_000.0)
    (tmp_path / "inr.yaml").write_text(SPEC.replace("name: inb", "name: inr").replace(
        "n_trials: 6", "n_trials: 6, timeout: 3600").replace(
        "export: {ensemble: 3,", "export: {reseed: 1, reseed_top: 2,"))
    r = CliRunner().invoke(main, ["sweep", "inr.yaml"])
    assert r.exit_code == 0, r.output
    study = join_storage_study("inr")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]  # no reseed trial either
    assert StudyKey.RESEED not in study.user_attrs  # nothing was retrained by the export
    assert ("reseed: the budget ended before the sweep's reseed trials; exporting the best "
            "trial (`hpsearch export inr --reseed 1` retrains them after)") in r.output
    assert "exported trial 0 (refit on train + validation) to exports/inr" in r.output, r.output
    assert "reseed: trial 0's configuration" not in r.output


REFIT_FOREVER = """\
import sys, yaml
from hpsearch import MLPClassifier
from hpsearch.search import refit
from hpsearch.spec import datasets
from hpsearch.spec.config import parse_spec
from hpsearch.model.ensemble import EnsembleClassifier
from hpsearch.search.signals import signal_of, stop_signals
splits = datasets.load_splits(parse_spec(yaml.safe_load(sys.argv[1])).data)
members = []
for seed in (1, 2):
    m = MLPClassifier(hidden_sizes=(16,), max_epochs=1, random_state=seed).fit(*splits.train)
    m.set_params(max_epochs=10**6)
    m.best_epoch_ = 10**6  # a refit that cannot finish before the signal
    members.append((m, 1.0, seed))
try:
    with stop_signals():
        refit.refit_ensemble(EnsembleClassifier(members), splits,
                             lambda line: print(line, flush=True), processes=2)
except KeyboardInterrupt as exc:
    print("interrupted", flush=True)
    sys.exit(128 + signal_of(exc))
"""


def _spawned_children(pid: int) -> list[int]:
    """The pool processes of ``pid`` (multiprocessing's spawned children, not its resource
    tracker)."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for child in found:
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(int(child))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_during_a_parallel_refit_stops_every_member_at_once():
    """An operator's SIGTERM while the members are refit in their processes: the export exits
    128 + 15 and no refit process is left behind to finish its model."""
    proc = subprocess.Popen([sys.executable, "-c", REFIT_FOREVER, SPEC], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_stop_signals)
    output = Lines(proc.stdout)
    output.wait_for("2 at a time", proc)
    children = wait_until(lambda: (len(c := _spawned_children(proc.pid)) == 2, c),
                          "two refit processes", proc=proc, output=output)
    proc.send_signal(signal.SIGTERM)
    out, err = output.rest(proc), proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out, err)
    assert "interrupted" in out and "done in" not in out and "Traceback" not in err, (out, err)
    wait_until(lambda: (not [c for c in children if _alive(c)], children),
               "the refit processes to be gone")
