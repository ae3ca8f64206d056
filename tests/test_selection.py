"""Choosing what to export: the objective's noise floor, the stop rule, and the ensemble of kept
checkpoints (greedy forward selection on validation predictions), on real digits sweeps."""

from __future__ import annotations

import json
import time
import unittest.mock
from collections import Counter

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner

import hpsearch
from hpsearch.cli import main
from hpsearch.errors import SpecError
from hpsearch.model.ensemble import EnsembleClassifier, select
from hpsearch.report.report import build_report
from hpsearch.search.sweep import run_sweep
from hpsearch.spec import datasets
from hpsearch.spec.config import parse_spec
from hpsearch.spec.space import chosen_of, model_params
from hpsearch.study.noise import accuracy_se, bootstrap_se
from hpsearch.study.store import StudyKey, TrialKey, open_storage, resolve_storage_url
from hpsearch.tracking.backend import resolve_tracking_uri

SPEC = """\
name: sel
data: {dataset: digits, seed: 0}
training: {max_epochs: 15, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 400, workers: 1, stop: converged, patience_trials: 6}
sampler: {name: random, seed: 5}
pruner: none
checkpoints: {keep: 5}
export: {ensemble: 5}
space:
  learning_rate: {type: float, low: 3.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 16, high: 96, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
"""


def test_standard_errors():
    assert accuracy_se(0.9, 12_000) == pytest.approx(0.00274, abs=1e-5)
    rng = np.random.default_rng(1)
    x = rng.exponential(size=5000)
    # the bootstrap agrees with the analytic standard error of a mean to within ~10 %
    assert bootstrap_se(x) == pytest.approx(x.std() / np.sqrt(len(x)), rel=0.15)


def test_spec_keys_are_checked():
    base = SPEC.replace("export: {ensemble: 5}\n", "")
    with pytest.raises(SpecError, match=r"x.yaml: budget.stop is unknown: 'soon'"):
        parse_spec(yaml.safe_load(base.replace("stop: converged", "stop: soon")),
                   "x.yaml")
    with pytest.raises(SpecError, match=r"x.yaml: export.ensemble is 9, more than "
                                         r"checkpoints.keep \(5\): raise checkpoints.keep"):
        parse_spec(yaml.safe_load(base + "export: {ensemble: 9}\n"), "x.yaml")
    with pytest.raises(SpecError, match=r"export.reseed_top is 6, more than checkpoints.keep"):
        parse_spec(yaml.safe_load(base + "export: {reseed: 2, reseed_top: 6}\n"), "x.yaml")
    both = parse_spec(yaml.safe_load(base + "export: {reseed: 2, ensemble: 3}\n"), "x.yaml")
    assert both.export_reseed == (2, 3) and both.export_ensemble == 3  # reseeds join the library
    assert parse_spec(yaml.safe_load(base + "export: {refit: true}\n"), "x.yaml").export_refit
    with pytest.raises(SpecError, match=r"x.yaml: export.refit must be"):
        parse_spec(yaml.safe_load(base + "export: {refit: 3}\n"), "x.yaml")


def test_select_is_greedy_with_replacement():
    y = np.array([0, 1, 0, 1, 0, 1])
    rows = np.arange(6)[:, None]

    def model(confident_on: np.ndarray) -> np.ndarray:
        """0.9 on the true class where confident, 0.45 (a narrow miss) elsewhere."""
        p_true = np.where(confident_on, 0.9, 0.45)
        return np.where(np.eye(2)[y] == 1, p_true[:, None], 1 - p_true[:, None])

    a = model(rows[:, 0] < 4)  # right on 4 of 6 rows
    b = model(rows[:, 0] >= 4)  # right on 2 of 6
    c = np.full((6, 2), 0.5)  # no information
    picks, trail = select([c, a, b], y, 5)
    assert picks[:2] == [1, 2]  # the best single model first, then the one that fixes its misses
    assert 0 not in picks
    assert trail[0][0] == pytest.approx(4 / 6) and trail[1][0] == 1.0  # 6 of 6 together
    # with replacement: a again, which keeps 6 of 6 and lowers the loss (the tie-break)
    assert picks.count(1) >= 2 and trail[-1][1] > trail[1][1]
    assert select([c, a, b], y, 2)[0] == [1, 2]  # at most k picks


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("HPSEARCH_STORAGE", raising=False)
        (root / "sel.yaml").write_text(SPEC)
        lines: list[str] = []
        result = run_sweep("sel.yaml", echo=lines.append)
        yield root, result, lines


def test_stop_rule_ends_the_sweep_and_says_why(swept, monkeypatch):
    root, result, lines = swept
    monkeypatch.chdir(root)
    study = optuna.load_study(study_name="sel", storage=open_storage(resolve_storage_url(None)))
    n = len(study.trials)
    assert n < 400, "the stop rule never fired"
    reason = study.user_attrs[StudyKey.STOPPED]
    assert reason.startswith("converged: the last 6 trials")
    assert result.stopped == reason and f"stopping: {reason}" in lines
    # the rule, checked from the record: the last 6 trials to finish did not beat the best of
    # the trials before them by more than the noise floor
    done = sorted(study.trials, key=lambda t: t.datetime_complete)
    floor = study.user_attrs[StudyKey.NOISE_FLOOR]["value"]
    before = max(t.value for t in done[:-6] if t.value is not None)
    recent = max(t.value for t in done[-6:] if t.value is not None)
    assert recent - before <= floor
    # the noise floor: binomial at the best value on the validation split's images
    best = study.best_trial
    n_val = study.user_attrs[StudyKey.DATA]["n_val"]
    assert 300 < n_val < 400
    assert floor == pytest.approx(accuracy_se(best.value, n_val))
    assert best.user_attrs[TrialKey.NOISE] == pytest.approx(floor)
    client = mlflow.MlflowClient(resolve_tracking_uri(None))
    parent = client.get_run(study.user_attrs[StudyKey.PARENT_RUN_ID])
    assert parent.data.metrics["noise_floor"] == pytest.approx(floor)
    assert parent.data.tags["hpsearch.stopped"] == reason
    status = CliRunner().invoke(main, ["status", "sel"]).output
    assert f"noise floor: ±{floor:.4f} (binomial standard error" in status
    assert f"stopped early: {reason}" in status


def test_ensemble_export_is_chosen_on_validation_and_served(swept, monkeypatch):
    root, _, _ = swept
    monkeypatch.chdir(root)
    r = CliRunner().invoke(main, ["export", "sel", "--no-register"])  # export.ensemble: 5
    assert r.exit_code == 0, r.output
    model = hpsearch.load(root / "exports" / "sel")
    assert isinstance(model, EnsembleClassifier) and 1 <= len(model.members) <= 5
    meta = json.loads((root / "exports/sel/artifacts/checkpoint/ensemble.json").read_text())
    assert len(meta["picks"]) <= 5
    # it says which members the picks chose, and how often, before what it exported
    first, second = r.output.splitlines()[:2]
    counts = Counter(meta["picks"])
    assert first == (f"ensemble: {len(counts)} member(s) from {len(meta['picks'])} greedy picks "
                     f"on validation, with replacement: " + ", ".join(
                         f"trial {n} x{c}" for n, c in counts.most_common())), r.output
    assert second.startswith("exported an ensemble led by trial")
    splits = datasets.load_splits(parse_spec(yaml.safe_load(SPEC)).data)
    # chosen on validation: the ensemble is at least as good there as its best member alone
    x_val, y_val = splits.val
    best_single = max(m.score(x_val, y_val) for m, _, _ in model.members)
    assert model.score(x_val, y_val) >= best_single
    metrics = json.loads((root / "exports/sel/test_metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(model.score(*splits.test))
    card = (root / "exports/sel/MODEL_CARD.md").read_text()
    assert "greedy forward selection with replacement" in card and "| picks |" in card
    pyfunc = mlflow.pyfunc.load_model(str(root / "exports" / "sel"))
    out = pyfunc.predict(splits.test[0][:5])
    assert list(out["label"]) == list(model.predict(splits.test[0][:5]))
    # a single model on request, and the two options exclude each other
    r = CliRunner().invoke(main, ["export", "sel", "--ensemble", "1", "--no-register",
                                  "--out", "exports/one"])
    assert r.exit_code == 0 and isinstance(hpsearch.load(root / "exports/one"),
                                           hpsearch.MLPClassifier)
    r = CliRunner().invoke(main, ["export", "sel", "--ensemble", "3", "--trial", "0"])
    assert r.exit_code == 2 and r.output.startswith("error: --trial excludes --ensemble")


def test_reseed_exports_the_best_configuration_over_seeds(swept, monkeypatch):
    root, _, _ = swept
    monkeypatch.chdir(root)
    r = CliRunner().invoke(main, ["export", "sel", "--reseed", "2", "--no-register",
                                  "--out", "exports/rs"])
    assert r.exit_code == 0, r.output
    study = optuna.load_study(study_name="sel", storage=open_storage(resolve_storage_url(None)))
    rec = study.user_attrs[StudyKey.RESEED]
    assert rec["seeds"] == [0, 1, 2] and len(rec["rows"]) == 3  # export.reseed_top: 3
    by_number = {t.number: t for t in study.trials}
    means = [row["mean"] for row in rec["rows"]]
    assert means == sorted(means, reverse=True)  # best mean first
    for row in rec["rows"]:
        assert len(row["values"]) == 3
        assert row["values"][0] == by_number[row["trial"]].value  # the sweep's own seed
        assert row["mean"] == pytest.approx(np.mean(row["values"]))
    winner = rec["rows"][0]["trial"]
    # the retraining is the trial's own configuration: with the sweep's seed it reproduces
    # the trial's score (so the other seeds differ by the seed alone)
    spec = parse_spec(yaml.safe_load(SPEC))
    params = model_params(chosen_of(by_number[winner].params, spec.space), spec)
    splits = datasets.load_splits(spec.data)
    params.setdefault("preprocessing", splits.preprocessing)
    again = hpsearch.MLPClassifier(**params).fit(*splits.train, eval_sets={"val": splits.val})
    assert again.history_[again.best_epoch_ - 1]["val_accuracy"] == pytest.approx(
        by_number[winner].value, abs=1e-9)
    assert f"reseed: trial {winner}'s configuration wins over 3 seeds" in r.output
    assert f"; exporting trial {winner}\n" in r.output
    assert f"exported trial {winner} to exports/rs" in r.output
    # the report shows the table
    md = (build_report("sel") / "report.md").read_text()
    assert "Reseeded by `hpsearch export --reseed`" in md and f"| {winner} |" in md


def test_refit_trains_the_chosen_model_again_on_train_and_validation(swept, monkeypatch):
    """`--refit`: the choice is made first, on validation; then the chosen checkpoint's
    configuration and seed train on train + validation for its best epoch count, and the test
    split is scored once, on the refit model."""
    from hpsearch.search.refit import OVERRIDES, StopAfter, refit_epochs, refit_params
    from hpsearch.study.store import join_storage_study

    root, _, _ = swept
    monkeypatch.chdir(root)
    r = CliRunner().invoke(main, ["export", "sel", "--ensemble", "1", "--refit",
                                  "--no-register", "--out", "exports/refit"])
    assert r.exit_code == 0, r.output
    best = join_storage_study("sel").best_trial
    splits = datasets.load_splits(parse_spec(yaml.safe_load(SPEC)).data)
    x = np.concatenate([splits.train[0], splits.val[0]])
    y = np.concatenate([splits.train[1], splits.val[1]])
    chosen = hpsearch.load(root / "mlruns" / "checkpoints" / "sel" / f"trial-{best.number}")
    assert f"refit: trial {best.number} on train + validation ({len(y)} samples, " \
           f"{chosen.best_epoch_} of 15 epochs, seed {chosen.random_state})" in r.output
    assert f"exported trial {best.number} (refit on train + validation) to exports/refit: " \
           f"val_accuracy {best.value:.4f}" in r.output
    model = hpsearch.load(root / "exports" / "refit")
    # the chosen configuration, but for the three settings that need a validation split
    assert OVERRIDES == {"early_stopping_patience": None, "restore_best_weights": False,
                         "monitor": "train_loss"}
    assert model.get_params() == {**chosen.get_params(), **OVERRIDES}
    assert model.n_epochs_ == chosen.best_epoch_ and model.status_ == "completed"
    # exactly that configuration fitted on train + validation, not the checkpoint
    again = hpsearch.MLPClassifier(**refit_params(chosen)).fit(
        x, y, callbacks=[StopAfter(refit_epochs(chosen))])
    np.testing.assert_allclose(model.predict_proba(splits.test[0]),
                               again.predict_proba(splits.test[0]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.predict_proba(splits.test[0]),
                           chosen.predict_proba(splits.test[0]), atol=1e-3)
    metrics = json.loads((root / "exports/refit/test_metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(model.score(*splits.test))
    assert metrics["validation_value"] == pytest.approx(best.value)  # the choice's, not the refit's
    assert metrics["refit"]["samples"] == len(y)
    assert metrics["refit"]["epochs"] == chosen.best_epoch_
    meta = json.loads((root / "exports/refit/artifacts/checkpoint/checkpoint.json").read_text())
    assert meta["trial"]["number"] == best.number and meta["trial"]["refit"]["samples"] == len(y)
    card = (root / "exports/refit/MODEL_CARD.md").read_text()
    assert f"refit on train + validation for the {chosen.best_epoch_} epochs validation chose" \
        in card and "**Refit**: once chosen on validation" in card
    assert "| restore_best_weights | False |" in card  # the parameters of the model shipped
    # an ensemble: the members validation chose, each refit, with the same weights; the
    # validation score is the chosen ensemble's, computed before any refit
    r = CliRunner().invoke(main, ["export", "sel", "--no-register", "--out", "exports/ens"])
    assert r.exit_code == 0, r.output
    plain = hpsearch.load(root / "exports" / "ens")
    r = CliRunner().invoke(main, ["export", "sel", "--refit", "--no-register",
                                  "--out", "exports/ens-refit"])
    assert r.exit_code == 0, r.output
    ens = hpsearch.load(root / "exports" / "ens-refit")
    assert [(w, t) for _, w, t in ens.members] == [(w, t) for _, w, t in plain.members]
    for (m, _, _), (p, _, _) in zip(ens.members, plain.members, strict=True):
        assert m.get_params() == {**p.get_params(), **OVERRIDES}
        assert m.n_epochs_ == p.best_epoch_
    first = plain.members[0][0]
    alone = hpsearch.MLPClassifier(**refit_params(first)).fit(
        x, y, callbacks=[StopAfter(refit_epochs(first))])
    np.testing.assert_allclose(ens.members[0][0].predict_proba(splits.test[0]),
                               alone.predict_proba(splits.test[0]), rtol=1e-5, atol=1e-6)
    assert r.output.count("refit: member ") == 2 * len(ens.members)  # start and end lines
    ens_meta = json.loads((root / "exports/ens-refit/test_metrics.json").read_text())
    plain_meta = json.loads((root / "exports/ens/test_metrics.json").read_text())
    assert ens_meta["validation_value"] == plain_meta["validation_value"]
    assert ens_meta["refit"]["epochs"] == [p.best_epoch_ for p, _, _ in plain.members]
    assert ens_meta["test_accuracy"] == pytest.approx(ens.score(*splits.test))
    assert "**Refit**" in (root / "exports/ens-refit/MODEL_CARD.md").read_text()


def test_refit_replays_the_chosen_learning_rate_schedule():
    """A cosine schedule over 30 epochs, stopped early by validation at its best epoch: the
    refit trains that many epochs at the same rates (the same max_epochs, stopped), not a
    cosine squeezed into fewer epochs; weight averaging stays on."""
    from hpsearch.search.refit import refit_model

    splits = datasets.load_splits(parse_spec(yaml.safe_load(SPEC)).data)
    chosen = hpsearch.MLPClassifier(
        hidden_sizes=(32,), learning_rate=0.02, schedule="cosine", max_epochs=30,
        early_stopping_patience=3, ema_decay=0.9, random_state=4).fit(
        *splits.train, eval_sets={"val": splits.val})
    assert chosen.best_epoch_ < chosen.n_epochs_ < 30, "early stopping never fired"
    lines: list[str] = []
    refit, note = refit_model(chosen, splits, "the test model", lines.append)
    assert refit.n_epochs_ == chosen.best_epoch_ == note["epochs"]
    assert [h["learning_rate"] for h in refit.history_] == \
        [h["learning_rate"] for h in chosen.history_[:chosen.best_epoch_]]
    assert refit.ema_decay == 0.9 and refit.max_epochs == 30
    assert f"({len(splits.train[1]) + len(splits.val[1])} samples, {chosen.best_epoch_} of 30 " \
           f"epochs, seed 4)" in lines[0]


RESEED_SPEC = """\
name: rs
data: {dataset: digits, seed: 0}
training: {max_epochs: 12, batch_size: 64, early_stopping_patience: 4, seed: 0}
budget: {n_trials: 8, workers: 2}
sampler: {name: random, seed: 3}
pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}
checkpoints: {keep: 6}
export: {reseed: 2, reseed_top: 2, ensemble: 6}
space:
  learning_rate: {type: float, low: 3.0e-3, high: 0.03, log: true}
  hidden_size: {type: int, low: 16, high: 96, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
"""


def test_the_sweep_ends_with_its_reseed_trials(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    (tmp_path / "rs.yaml").write_text(RESEED_SPEC)
    lines: list[str] = []
    run_sweep("rs.yaml", echo=lines.append)
    lines += capfd.readouterr().out.splitlines()  # the worker processes print their own lines
    study = optuna.load_study(study_name="rs", storage=open_storage(resolve_storage_url(None)))
    search = [t for t in study.trials if TrialKey.RESEED_OF not in t.user_attrs]
    again = [t for t in study.trials if TrialKey.RESEED_OF in t.user_attrs]
    assert len(search) == 8  # n_trials counts the search; the reseed trials come after it
    # two workers with quotas of 4: the reseed trials began when the whole search was over
    assert min(t.datetime_start for t in again) >= max(t.datetime_complete for t in search)
    top = sorted((t for t in search if t.state.name == "COMPLETE"), key=lambda t: -t.value)[:2]
    assert sorted((t.user_attrs[TrialKey.RESEED_OF], t.user_attrs[TrialKey.MODEL_SEED])
                  for t in again) == sorted((t.number, s) for t in top for s in (1, 2))
    assert all(t.state.name == "COMPLETE" for t in again), [t.state for t in again]
    assert all(t.params == next(p for p in top if p.number == t.user_attrs[
        TrialKey.RESEED_OF]).params for t in again)
    assert (f"reseed: the search ends; trials {top[0].number}, {top[1].number} train again with "
            f"model seeds [1, 2] (4 trials, about") in "\n".join(lines)
    assert sum(f"reseed of trial {top[0].number}, seed" in line for line in lines) == 2
    # each is its own child run, tagged, with the seed it trained with ...
    client = mlflow.MlflowClient(resolve_tracking_uri(None))
    exp = client.get_experiment_by_name("rs")
    runs = {int(r.data.tags["optuna.trial.number"]): r for r in client.search_runs(
        [exp.experiment_id], "tags.`optuna.trial.number` != ''")}
    for t in again:
        run = runs[t.number]
        assert run.data.tags["hpsearch.reseed_of"] == str(t.user_attrs[TrialKey.RESEED_OF])
        assert run.data.tags["model.seed"] == str(t.user_attrs[TrialKey.MODEL_SEED])
        assert run.data.params["random_state"] == str(t.user_attrs[TrialKey.MODEL_SEED])
        assert run.info.status == "FINISHED"
    # ... and it is that seed: training the configuration with it reproduces the score
    spec = parse_spec(yaml.safe_load(RESEED_SPEC))
    splits = datasets.load_splits(spec.data)
    one = again[-1]
    params = model_params(chosen_of(one.params, spec.space), spec)
    params |= {"preprocessing": splits.preprocessing,
               "random_state": one.user_attrs[TrialKey.MODEL_SEED]}
    fit = hpsearch.MLPClassifier(**params).fit(*splits.train, eval_sets={"val": splits.val})
    assert fit.history_[fit.best_epoch_ - 1]["val_accuracy"] == pytest.approx(one.value, abs=1e-9)
    # the export takes the configuration with the best mean over its three seeds
    means = {t.number: np.mean([t.value] + [a.value for a in again
                                            if a.user_attrs[TrialKey.RESEED_OF] == t.number])
             for t in top}
    winner = max(means, key=means.get)
    r = CliRunner().invoke(main, ["export", "rs", "--no-register", "--reseed", "2",
                                  "--ensemble", "1"])
    assert r.exit_code == 0, r.output
    assert "reseed: the sweep's reseed trials decide (seeds [1, 2]); nothing is retrained" \
        in r.output
    assert f"reseed: trial {winner}'s configuration wins over 3 seeds" in r.output
    # another R than the sweep's is said to be unused, not silently dropped
    r3 = CliRunner().invoke(main, ["export", "rs", "--no-register", "--reseed", "3",
                                   "--ensemble", "1", "--out", "exports/r3"])
    assert r3.exit_code == 0, r3.output
    assert "(--reseed 3 is not applied: the sweep trained 2 more seed(s) in its budget)" \
        in r3.output
    members = {winner} | {a.number for a in again if a.user_attrs[TrialKey.RESEED_OF] == winner}
    exported = int(r.output.split("exporting trial ")[1].split(")")[0].split()[0])
    assert exported in members, r.output
    assert max(members, key=lambda n: study.trials[n].value) == exported or \
        study.trials[exported].value == max(study.trials[n].value for n in members)
    status = CliRunner().invoke(main, ["status", "rs"]).output
    assert (f"reseed: the search is over; trials {top[0].number}, {top[1].number} train again "
            f"with model seeds [1, 2]: 4 of 4 complete") in status
    md = (build_report("rs") / "report.md").read_text()
    assert "Reseeded in the sweep's last stretch (`export.reseed`)" in md
    assert (f"{len(again)} of the trials are reseeds (the top configurations with more model "
            f"seeds: not counted in n_trials).") in md
    assert f"| {winner} | " in md
    # the spec's default with both: the ensemble, the reseed trials in its library
    r = CliRunner().invoke(main, ["export", "rs", "--no-register", "--out", "exports/ens"])
    assert r.exit_code == 0, r.output
    assert "\nexported an ensemble led by trial" in r.output, r.output
    assert "| picks |" in (tmp_path / "exports/ens/MODEL_CARD.md").read_text()
    # 0 turns the spec's reseeding and ensemble off: the best trial as it is, nothing trained
    n_before = len(study.trials)
    r = CliRunner().invoke(main, ["export", "rs", "--no-register", "--reseed", "0",
                                  "--ensemble", "0", "--out", "exports/plain"])
    assert r.exit_code == 0, r.output
    best = optuna.load_study(study_name="rs", storage=open_storage(resolve_storage_url(None)))
    assert f"exported trial {best.best_trial.number} to exports/plain" in r.output, r.output
    assert "reseed:" not in r.output and "ensemble:" not in r.output
    assert len(best.trials) == n_before
    # an ensemble larger than the kept checkpoints is refused, not cut down silently
    r = CliRunner().invoke(main, ["export", "rs", "--no-register", "--ensemble", "7",
                                  "--out", "exports/seven"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: --ensemble 7: study 'rs' keeps 6 checkpoint(s) (checkpoints.keep in rs.yaml), "
        "so an ensemble picks from at most those; use --ensemble 6 or less, or raise "
        "checkpoints.keep for the next sweep"], r.output
    assert not (tmp_path / "exports" / "seven").exists()
    # the leaderboard shows the search; the reseed trials have their own table
    board = md.split("## Leaderboard")[1].split("\n## ")[0]
    shown = {int(line.split("|")[1]) for line in board.splitlines()
             if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert shown and not shown & {t.number for t in again}, board
    # `hpsearch next` reads the search trials only: the reseed trials repeat the top
    r = CliRunner().invoke(main, ["next", "rs", "--out", "rs-next.yaml"])
    assert r.exit_code == 0, r.output
    n_complete = sum(t.state.name == "COMPLETE" for t in search)
    assert f"# from its {n_complete} complete of 8 trials" in \
        (tmp_path / "rs-next.yaml").read_text()
    # run again with more search budget: the search goes on, then the new top is reseeded,
    # no (configuration, seed) trained twice
    run_sweep("rs.yaml", n_trials=10, echo=lines.append)
    study = optuna.load_study(study_name="rs", storage=open_storage(resolve_storage_url(None)))
    search = [t for t in study.trials if TrialKey.RESEED_OF not in t.user_attrs]
    again = [t for t in study.trials if TrialKey.RESEED_OF in t.user_attrs]
    assert len(search) == 10
    pairs = [(t.user_attrs[TrialKey.RESEED_OF], t.user_attrs[TrialKey.MODEL_SEED])
             for t in again]
    assert len(pairs) == len(set(pairs)) and all(t.state.name == "COMPLETE" for t in again)
    top = sorted((t for t in search if t.state.name == "COMPLETE"), key=lambda t: -t.value)[:2]
    assert {(t.number, sd) for t in top for sd in (1, 2)} <= set(pairs)
    # status counts this phase's pairs, not every reseed trial the study ever ran: an earlier
    # phase's reseed of a configuration no longer in the top, a pair completed twice
    gone = next(t for t in search if t.state.name == "COMPLETE" and t not in top)
    for of, seed in ((gone.number, 1), (top[0].number, 1)):
        study.add_trial(optuna.trial.create_trial(
            value=0.5, params=gone.params, distributions=gone.distributions,
            user_attrs={TrialKey.RESEED_OF: of, TrialKey.MODEL_SEED: seed}))
    status = CliRunner().invoke(main, ["status", "rs"]).output
    assert (f"reseed: the search is over; trials {top[0].number}, {top[1].number} train again "
            f"with model seeds [1, 2]: 4 of 4 complete") in status, status


def test_the_plan_counts_on_the_latest_trials_and_on_every_epoch_of_a_reseed():
    """The next search trial takes as long as the latest five complete ones (the search's
    late models were the larger ones); a reseed trial may run every epoch, at its original's
    pace per epoch."""
    from hpsearch.search.reseed import RECENT_TRIALS, full_seconds, reseed_end, trial_seconds

    spec = parse_spec(yaml.safe_load(RESEED_SPEC))  # reseed 2 x top 2, 12 epochs at most
    study = optuna.create_study(direction="maximize")
    times = [10.0, 10.0, 10.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    for i, seconds in enumerate(times):
        study.add_trial(optuna.trial.create_trial(
            value=0.5 + i / 100, params={}, distributions={},
            user_attrs={"train_time_s": seconds, "epochs_run": 6}))
    assert RECENT_TRIALS == 5 and trial_seconds(study.trials) == pytest.approx(60.0)
    best = study.trials[-1]
    assert full_seconds(best, 12) == pytest.approx(120.0)  # 10 s an epoch, 12 epochs
    assert full_seconds(best, 4) == pytest.approx(60.0)  # never less than it took
    now = time.time()
    with unittest.mock.patch("time.time", return_value=now):
        # the top two, twice, each at 12 epochs of 10 s: 4 x 120 s on this worker alone
        assert reseed_end(study, spec, now) - now == pytest.approx(480)


def test_the_search_leaves_the_reseed_trials_the_time_they_need():
    from hpsearch.search.reseed import remaining_seconds, reseed_due, reseed_end, trial_seconds

    spec = parse_spec(yaml.safe_load(RESEED_SPEC))  # reseed 2 x top 2
    study = optuna.create_study(direction="maximize")
    for value, seconds in ((0.9, 100.0), (0.8, 60.0), (0.7, 140.0)):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={},
                                                  user_attrs={"train_time_s": seconds}))
    study.add_trial(optuna.trial.create_trial(  # a pruned trial: not what a trial takes
        state=optuna.trial.TrialState.PRUNED, params={}, distributions={},
        user_attrs={"train_time_s": 1.0}))
    assert trial_seconds(study.trials) == pytest.approx(100.0)  # the complete trials' mean
    # a running trial is expected to take the mean of the complete ones longer than it has run
    assert remaining_seconds(30, [100, 60, 140]) == pytest.approx(70)
    assert remaining_seconds(120, [100, 60, 140]) == pytest.approx(20)
    assert remaining_seconds(150, [100, 60, 140]) == 0.0
    now = time.time()
    with unittest.mock.patch("time.time", return_value=now):
        # the top two (not the third) twice on this worker alone: 2 x (100 + 60) s = 320 s,
        # after one more search trial of 100 s
        assert reseed_end(study, spec, now) - now == pytest.approx(320)
        assert not reseed_due(study, spec, now + 500)
        assert reseed_due(study, spec, now + 350)  # 320 s fit, not 100 + 320
    study.ask()  # a second worker runs a search trial
    started = study.trials[-1].datetime_start.timestamp()
    with unittest.mock.patch("time.time", return_value=started + 30):
        now = started + 30  # it is free in 70 s, and takes its share: this worker at now + 100
        # (one more search trial); the four trials 100, 100, 60, 60 go to the first free:
        # 70+100 | 100+100 | 170+60 | 200+60
        assert reseed_end(study, spec, now + 100) - now == pytest.approx(260)
        assert not reseed_due(study, spec, now + 300)
        assert reseed_due(study, spec, now + 220)
        # begun now, they end sooner (the plan the sweep announces): 0+100 | 70+100 | 100+60 |
        # 160+60
        assert reseed_end(study, spec, now) - now == pytest.approx(220)
    with unittest.mock.patch("time.time", return_value=started + 120):
        # past the mean it is one of the long trials: free in 20 s (140 - 120), not now
        # 20+100 | 100+100 | 120+60 | 180+60
        assert reseed_end(study, spec, started + 220) - started == pytest.approx(120 + 240)


def test_a_retried_reseed_trial_keeps_its_seed_and_a_twin_is_not_trained():
    from hpsearch.search.reseed import duplicate_of
    from hpsearch.study.faults import fail_and_retry

    study = optuna.create_study(direction="maximize")
    attrs = {TrialKey.RESEED_OF: 3, TrialKey.MODEL_SEED: 2}
    for _ in range(2):  # two workers began the reseed trials at the same moment
        study.enqueue_trial({"x": 1.0}, user_attrs=attrs)
    first, second = study.ask(), study.ask()
    first.suggest_float("x", 0, 2)
    assert duplicate_of(study, first) is None and duplicate_of(study, second) == first.number
    study.tell(second, state=optuna.trial.TrialState.PRUNED)  # as the objective does
    assert fail_and_retry(study, study.trials[first.number]) is True  # lost to a fault
    retry = study.ask()
    assert retry.user_attrs == {**attrs, "retry_of": first.number}
    assert duplicate_of(study, retry) is None  # it is not a twin of the trial it retries
