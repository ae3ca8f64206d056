"""Contract tests over the sampler and pruner registries: every entry is built from a spec and
runs a real two-trial sweep; an unknown name is one line; a prune is explained from what the
pruner compared (the median of complete trials, or a rung and its cut-off)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.errors import SpecError
from hpsearch.search.callbacks import explain_prune
from hpsearch.search.sweep import run_sweep
from hpsearch.spec.config import parse_spec
from hpsearch.spec.registries import PRUNERS, SAMPLERS, make_pruner, make_sampler
from hpsearch.spec.schema import PrunerSpec
from hpsearch.study.store import open_storage

SPACE = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "step": 0.001},
         "hidden_size": {"type": "int", "low": 8, "high": 16, "step": 8}}


def spec_dict(sampler: str = "tpe", pruner: str = "none") -> dict:
    return {"name": f"s-{sampler}-{pruner}".replace("_", "-"),
            "data": {"dataset": "digits"},
            "training": {"max_epochs": 4, "batch_size": 64, "early_stopping_patience": None},
            "budget": {"n_trials": 2, "workers": 1},
            "sampler": {"name": sampler, "seed": 0}, "pruner": pruner, "space": SPACE}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_a_two_trial_sweep(name, tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec_dict(sampler=name)))
    result = run_sweep("s.yaml", tracking_uri="none", echo=lambda s: None)
    study = optuna.load_study(study_name=result.study_name,
                              storage=open_storage(str(tmp_path / "mlruns/optuna.journal")))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.params["hidden_size"] in (8, 16) for t in trials)  # the space's steps held


@pytest.mark.parametrize("name", list(PRUNERS))
def test_every_pruner_runs_a_two_trial_sweep(name, tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec_dict(sampler="random", pruner=name)))
    result = run_sweep("s.yaml", tracking_uri="none", echo=lambda s: None)
    study = optuna.load_study(study_name=result.study_name,
                              storage=open_storage(str(tmp_path / "mlruns/optuna.journal")))
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                                    for t in trials)
    assert all(len(t.intermediate_values) >= 1 for t in trials)  # every epoch is reported


def test_each_registry_builds_what_its_name_says_from_a_spec():
    kinds = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler",
             "cmaes": "CmaEsSampler", "qmc": "QMCSampler"}
    assert set(kinds) == set(SAMPLERS)
    for name, cls in kinds.items():
        s = parse_spec(spec_dict(sampler=name), "x.yaml").sampler
        assert type(make_sampler(s.name, s.options, s.seed, {"learning_rate": [0.001]})
                    ).__name__ == cls
    pruners = {"median": "MarginMedianPruner", "hyperband": "HyperbandPruner",
               "successive_halving": "SuccessiveHalvingPruner", "none": "NopPruner"}
    assert set(pruners) == set(PRUNERS)
    for name, cls in pruners.items():
        spec = parse_spec(spec_dict(pruner=name), "x.yaml")
        built = make_pruner(spec.pruner.name, spec.pruner.options, spec.training.max_epochs)
        assert type(built).__name__ == cls


def test_an_unknown_name_is_one_line_everywhere():
    with pytest.raises(SpecError, match=r"^sampler 'bogus' is unknown \(choose from tpe, "):
        make_sampler("bogus", {}, 0, {})
    with pytest.raises(SpecError, match=r"^pruner 'bogus' is unknown \(choose from median, "):
        make_pruner("bogus", {}, 10)
    with pytest.raises(SpecError, match=r"^x.yaml: sampler.name is unknown: 'bogus'"):
        parse_spec({**spec_dict(), "sampler": "bogus"}, "x.yaml")


def run_trial(study: optuna.Study, values: list[float]) -> tuple[optuna.Trial, int | None]:
    """A trial that reports ``values`` at epochs 1, 2, ... until the pruner stops it; the epoch
    it was pruned at (None: it completed). (A rung pruner's answer changes when asked twice.)"""
    trial = study.ask()
    for epoch, v in enumerate(values, 1):
        trial.report(v, epoch)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return trial, epoch
    study.tell(trial, values[-1])
    return trial, None


def test_a_median_prune_names_the_median_of_the_complete_trials():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for vals in ([0.5, 0.6, 0.7], [0.7, 0.8, 0.9], [0.9, 0.95, 0.97]):
        run_trial(study, vals)
    pruned, epoch = run_trial(study, [0.2, 0.3])
    assert epoch == 1
    why = explain_prune(study, pruned, "val_accuracy", PrunerSpec("median"), 1)
    assert why == ("its best val_accuracy so far, 0.2000, was not better than the median "
                   "0.7000 of 3 complete trials at this epoch (median pruner)")


@pytest.mark.parametrize("maximize", [True, False])
def test_a_margin_spares_a_trial_within_it_of_the_median(maximize):
    """The median of the complete trials at epoch 1 is 0.7 (0.3 as a loss): with a margin of
    0.05 a trial 0.02 behind it runs on, one 0.1 behind is pruned; without, both are pruned."""
    sign = 1 if maximize else -1

    def study(margin):
        s = optuna.create_study(direction="maximize" if maximize else "minimize",
                                pruner=make_pruner("median", {"n_startup_trials": 2,
                                                              "margin": margin}, 10))
        for v in (0.5, 0.7, 0.9):
            run_trial(s, [0.5 + sign * (v - 0.5)] * 2)
        return s

    close, far = 0.5 + sign * 0.18, 0.5 + sign * 0.1
    assert run_trial(study(0.0), [close, close])[1] == 1
    assert run_trial(study(0.0), [far, far])[1] == 1
    assert run_trial(study(0.05), [close, close])[1] is None
    # exactly the margin behind, in whole validation images: 36 of 12,000 is 0.003, and
    # 10400/12000 - 10364/12000 rounds to 0.0030000000000000027: spared all the same
    s = optuna.create_study(direction="maximize" if maximize else "minimize",
                            pruner=make_pruner("median", {"n_startup_trials": 2,
                                                          "margin": 0.003}, 10))
    a, b = (10400, 10364) if maximize else (10364, 10400)
    for _ in range(3):
        run_trial(s, [a / 12000] * 2)
    assert run_trial(s, [b / 12000] * 2)[1] is None
    s = study(0.05)
    pruned, epoch = run_trial(s, [far, far])
    assert epoch == 1
    why = explain_prune(s, pruned, "val_accuracy", PrunerSpec("median", {"margin": 0.05}), 1)
    assert why == (f"its best val_accuracy so far, {far:.4f}, was more than 0.05 behind the "
                   f"median {0.5 + sign * 0.2:.4f} of 3 complete trials at this epoch "
                   "(median pruner)")
    spec = parse_spec({**spec_dict(), "pruner": {"name": "median", "margin": 0.003}}, "x.yaml")
    assert make_pruner(spec.pruner.name, spec.pruner.options, 10).margin == 0.003


@pytest.mark.parametrize("maximize", [True, False])
def test_a_rung_prune_names_the_rung_and_its_cut_off(maximize):
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    study = optuna.create_study(direction="maximize" if maximize else "minimize", pruner=pruner)
    good, bad = (0.9, 0.1) if maximize else (0.1, 0.9)
    assert run_trial(study, [good, good])[1] is None
    run_trial(study, [good - 0.05 if maximize else good + 0.05] * 2)  # pruned at rung 0 too
    pruned, epoch = run_trial(study, [bad, bad])
    assert epoch == 1
    why = explain_prune(study, pruned, "val_accuracy", PrunerSpec(
        "successive_halving", {"reduction_factor": 2}), 1)
    # three trials reached rung 0; the top 3 // 2 = 1 is promoted: the cut-off is the best value
    assert why == (f"rung 0: val_accuracy {bad:.4f} was not in the top 1/2 of the 3 trials at "
                   f"this rung (cut-off {good:.4f}; successive_halving pruner)")


def test_a_hyperband_prune_names_its_bracket():
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4, reduction_factor=2)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    why = None
    for i in range(40):  # until a trial is pruned somewhere
        trial, epoch = run_trial(study, [0.9 - 0.02 * i] * 4)
        if epoch is not None:
            why = explain_prune(study, trial, "val_accuracy",
                                PrunerSpec("hyperband", {"reduction_factor": 2}), epoch)
            break
    assert why is not None and " in bracket " in why and "cut-off" in why, why
