"""``hpsearch next``: the follow-up spec, rule by rule, its warm start, and its errors.

The rule tests build studies whose results call for one rule each (trials added with their
parameters, values and verdicts, as a sweep records them) and check that the written spec loads
and differs from its parent exactly as intended. The end-to-end test sweeps digits, writes the
next spec and runs it: its first trials are the parent's best, with the same scores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpsearch.cli import main
from hpsearch.report.followup import next_name, write_next
from hpsearch.report.report import build_report
from hpsearch.search.sweep import run_sweep
from hpsearch.spec.config import load_spec, parse_spec
from hpsearch.spec.space import chosen_of
from hpsearch.study.store import StudyKey, TrialKey, open_storage, resolve_storage_url
from hpsearch.study.warmstart import fitting

SPEC = """\
name: parent
data: {dataset: digits, seed: 0}
training: {max_epochs: 20, batch_size: 64, early_stopping_patience: 5}
budget: {n_trials: 40, workers: 1}
sampler: {name: tpe, seed: 0}
pruner: {name: median, n_startup_trials: 2}
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: {type: categorical, choices: [sgd, momentum, adam]}
  momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: momentum}}
  hidden_size: {type: int, low: 16, high: 128, log: true}
  dropout: {type: float, low: 0.0, high: 0.5}
"""
DIST = {"learning_rate": FloatDistribution(1e-3, 0.1, log=True),
        "optimizer": CategoricalDistribution(["sgd", "momentum", "adam"]),
        "momentum": FloatDistribution(0.5, 0.99),
        "hidden_size": IntDistribution(16, 128, log=True),
        "dropout": FloatDistribution(0.0, 0.5)}


def make_study(trials: list[tuple[dict[str, Any], float | None, str]], name: str = "parent",
               spec: str = SPEC, state_of_none: TrialState = TrialState.PRUNED) -> optuna.Study:
    """A study as `hpsearch sweep` records it: the spec, and trials (params, value, verdict)."""
    storage = open_storage(resolve_storage_url(None))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr(StudyKey.SPEC, spec)
    study.set_user_attr(StudyKey.SPEC_PATH, "sweeps/parent.yaml")
    for params, value, verdict in trials:
        dist = {k: DIST[k] for k in params}
        attrs = {TrialKey.VERDICT: verdict, TrialKey.SUMMARY: "test"} if verdict else {}
        if value is None:
            study.add_trial(create_trial(params=params, distributions=dist, state=state_of_none,
                                         user_attrs=attrs, intermediate_values={1: 0.3}))
        else:
            study.add_trial(create_trial(params=params, distributions=dist, value=value,
                                         user_attrs=attrs))
    return study


def p(lr: float = 0.01, opt: str = "adam", hidden: int = 64, dropout: float = 0.25,
      **extra: Any) -> dict[str, Any]:
    out = {"learning_rate": lr, "optimizer": opt, "hidden_size": hidden, "dropout": dropout}
    out.update(extra)
    return out


def spread(n: int, verdict: str = "good_fit", start: float = 0.80) -> list[Any]:
    """n unremarkable trials: values below the ones a test puts on top, parameters across the
    space (no best value on a bound, every choice among them)."""
    lrs, hs, ds = [0.004, 0.01, 0.02], [24, 48, 90], [0.1, 0.25, 0.4]
    opts = ["adam", "momentum", "sgd"]
    out = []
    for i in range(n):
        params = p(lrs[i % 3], opts[(i // 3) % 3], hs[(i + 1) % 3], ds[(i + 2) % 3])
        if params["optimizer"] == "momentum":
            params["momentum"] = 0.9
        out.append((params, start - 0.001 * i, verdict))
    return out


def entries(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def same_except(parent_text: str, path: Path, space_keys: set[str],
                training: frozenset[str] = frozenset()) -> None:
    """The spec at ``path`` loads, and equals its parent but for these keys (and name and
    warm_start)."""
    old, new = parse_spec(yaml.safe_load(parent_text), "parent"), load_spec(path)
    assert new.warm_start is not None and new.warm_start.study == "parent"
    old_space = {q.name: q for q in old.space}
    new_space = {q.name: q for q in new.space}
    changed = {k for k in old_space.keys() | new_space.keys()
               if old_space.get(k) != new_space.get(k)}
    assert changed == space_keys, path.read_text()
    changed_training = {f.name for f in dataclasses.fields(old.training)
                        if getattr(old.training, f.name) != getattr(new.training, f.name)}
    assert changed_training == training
    for section in ("data", "objective", "budget", "sampler", "pruner", "keep_checkpoints"):
        assert getattr(old, section) == getattr(new, section), section


@pytest.fixture()
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    return tmp_path


def run_next(*args: str) -> Any:
    return CliRunner().invoke(main, ["next", *args])


def test_next_names():
    assert next_name("fashion-mnist") == "fashion-mnist-next"
    assert next_name("fashion-mnist-next") == "fashion-mnist-next2"
    assert next_name("a-next2") == "a-next3"
    assert next_name("a-nextgen") == "a-nextgen-next"


def test_best_value_on_a_bound_widens_that_bound(here):
    # the best three trials have the highest learning rates, the best at the top bound 0.1
    top = [(p(lr=0.1), 0.95, "good_fit"), (p(lr=0.08), 0.94, "good_fit"),
           (p(lr=0.06), 0.93, "good_fit")]
    make_study(top + spread(9))
    result = run_next("parent")
    assert result.exit_code == 0, result.output
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, {"learning_rate"})
    lr = entries(path)["space"]["learning_rate"]
    assert lr == {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True}  # x3 past 0.1
    line = next(ln for ln in path.read_text().splitlines() if "learning_rate:" in ln)
    assert "best value 0.1 is at the top of [0.001, 0.1]" in line  # the evidence, as a comment
    assert "- space.learning_rate: {type: float, low: 0.001, high: 0.1, log: true}" \
        in result.output
    assert "+ space.learning_rate: {type: float, low: 0.001, high: 0.3, log: true}" \
        in result.output
    # dropout's best value (0.25) is inside; a best dropout at 0 would sit on the engine's
    # own bound, which no range can pass


def test_a_bound_the_engine_sets_is_not_widened(here):
    top = [(p(dropout=0.0), 0.95, "good_fit"), (p(dropout=0.01), 0.94, "good_fit")]
    make_study(top + spread(9))
    assert run_next("parent").exit_code == 0
    same_except(SPEC, here / "sweeps" / "parent-next.yaml", set())


def test_overfitting_top_raises_regularisation(here):
    top = [(p(dropout=0.3), 0.95 - 0.01 * i, "overfitting") for i in range(3)]
    make_study(top + [(p(dropout=0.2), 0.92, "good_fit"), (p(dropout=0.1), 0.91, "good_fit")]
               + spread(6))
    result = run_next("parent")
    assert result.exit_code == 0, result.output
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, {"dropout", "l2"})
    space = entries(path)["space"]
    assert space["dropout"] == {"type": "float", "low": 0.0, "high": 0.7}
    assert space["l2"] == {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True}
    assert "3 of the top 5 trials overfit" in path.read_text()


def test_undertrained_top_trains_longer(here):
    top = [(p(), 0.95 - 0.01 * i, "undertrained") for i in range(4)]
    make_study(top + spread(8))
    assert run_next("parent").exit_code == 0
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, set(), {"max_epochs"})
    assert entries(path)["training"]["max_epochs"] == 30
    line = next(ln for ln in path.read_text().splitlines() if "max_epochs" in ln)
    assert "4 of the top 5 trials were still improving at max_epochs=20" in line


def test_a_dead_choice_is_dropped_with_what_only_it_used(here):
    # momentum: sampled 8 times, all below the top; sgd and adam reach the top
    top = [(p(opt="adam"), 0.95, "good_fit"), (p(opt="sgd"), 0.94, "good_fit")] + \
        [(p(opt="adam", lr=0.004 * (i + 1)), 0.93 - 0.001 * i, "good_fit") for i in range(4)]
    dead = [(p(opt="momentum", momentum=0.9), 0.7 - 0.01 * i, "underfitting") for i in range(5)]
    dead += [(p(opt="momentum", momentum=0.6), None, "") for _ in range(3)]  # pruned
    make_study(top + dead)
    result = run_next("parent")
    assert result.exit_code == 0, result.output
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, {"optimizer", "momentum"})
    space = entries(path)["space"]
    assert space["optimizer"]["choices"] == ["sgd", "adam"]
    assert "momentum" not in space
    text = path.read_text()
    assert "`momentum` in 8 of 14 finished trials (5 complete, 3 pruned)" in text
    assert "# removed momentum:" in text
    # warm start: the parent's best trials fit (none used momentum)
    assert entries(path)["warm_start"] == {"study": "parent", "trials": 3}


@pytest.mark.parametrize("n_val", [None, 400])
def test_a_choice_within_the_noise_floor_of_the_top_is_not_dead(here, n_val):
    # momentum's best (0.925) is 0.005 below the top trials' cut-off (0.93): dead without a
    # noise floor; kept when the validation split has 400 samples (noise floor 0.011)
    top = [(p(opt="adam"), 0.95, "good_fit"), (p(opt="sgd"), 0.94, "good_fit")] + \
        [(p(opt="adam", lr=0.004 * (i + 1)), 0.933 - 0.001 * i, "good_fit") for i in range(4)]
    near = [(p(opt="momentum", momentum=0.9), 0.925 - 0.01 * i, "good_fit") for i in range(5)]
    study = make_study(top + near)
    if n_val:
        study.set_user_attr(StudyKey.DATA, {"n_val": n_val})
    assert run_next("parent").exit_code == 0
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, set() if n_val else {"optimizer", "momentum"})


def test_ranges_narrow_around_a_clustered_top(here):
    # 30 complete trials; the best tenth (5) all have learning rates near 0.01 and hidden
    # sizes near 64: both ranges narrow around them
    # (their optimizers and dropouts vary: those entries stay)
    opts = ["adam", "sgd", "momentum", "adam", "momentum"]
    drops = [0.05, 0.45, 0.25, 0.15, 0.35]
    top = [(p(lr=lr, hidden=h, opt=opts[i], dropout=drops[i],
              **({"momentum": 0.55 + 0.4 * (i == 4)} if opts[i] == "momentum" else {})),
            0.95 - 0.001 * i, "good_fit")
           for i, (lr, h) in enumerate([(0.01, 64), (0.012, 60), (0.009, 70), (0.011, 66),
                                        (0.0105, 62)])]
    make_study(top + spread(25))
    assert run_next("parent").exit_code == 0
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, {"learning_rate", "hidden_size"})
    lr = entries(path)["space"]["learning_rate"]
    assert 1e-3 < lr["low"] < 0.009 and 0.012 < lr["high"] < 0.1
    hs = entries(path)["space"]["hidden_size"]
    assert 16 < hs["low"] <= 60 and 70 <= hs["high"] < 128
    assert "the top 5 trials span 0.009..0.012" in path.read_text()


def test_a_healthy_study_keeps_its_space(here):
    make_study(spread(12))
    result = run_next("parent")
    assert result.exit_code == 0, result.output
    path = here / "sweeps" / "parent-next.yaml"
    same_except(SPEC, path, set())
    assert "No rule called for a change" in path.read_text()
    assert "no change to the space" in result.output


def test_errors_are_one_line(here):
    r = run_next("nosuch")
    assert r.exit_code == 2 and r.output.startswith("error: no study named 'nosuch'")
    make_study([(p(), None, "")], name="parent")  # only a pruned trial
    r = run_next("parent")
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [
        "error: study 'parent' has no complete trial (1 trial(s)): nothing to base a follow-up "
        "on; run more trials first"]
    make_study(spread(6), name="other")
    out = here / "other-next.yaml"
    out.write_text("# mine\n")
    r = run_next("other", "--out", str(out))
    assert r.exit_code == 2 and r.output == f"error: {out} exists: choose another --out, or " \
                                            f"--force to overwrite it\n"
    assert out.read_text() == "# mine\n"  # nothing already written is lost
    r = run_next("other", "--out", str(out), "--force")
    assert r.exit_code == 0, r.output
    assert load_spec(out).name == "other-next"


def test_warm_start_names_a_study_that_exists(here):
    (here / "w.yaml").write_text(SPEC.replace("name: parent", "name: w\nwarm_start: "
                                              "{study: gone}"))
    r = CliRunner().invoke(main, ["sweep", "w.yaml"])
    assert r.exit_code == 2
    assert r.output.startswith("error: w.yaml: warm_start.study: no study named 'gone'")
    assert not (here / "mlruns" / "optuna.journal").exists() or "w" not in \
        optuna.get_all_study_names(open_storage(resolve_storage_url(None)))


QUICK = """\
name: q
data: {dataset: digits, seed: 0}
training: {max_epochs: 12, batch_size: 64, early_stopping_patience: 4}
budget: {n_trials: 12, workers: 1}
sampler: {name: tpe, seed: 1, n_startup_trials: 6}
pruner: {name: median, n_startup_trials: 3, n_warmup_steps: 3}
space:
  learning_rate: {type: float, low: 1.0e-3, high: 0.1, log: true}
  optimizer: {type: categorical, choices: [sgd, adam]}
  hidden_size: {type: int, low: 16, high: 96, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
"""


def test_next_spec_runs_warm_started(here):
    """Real digits: sweep, `hpsearch next`, sweep the new spec; its first trials are the
    parent's best three with their parameters and (same split, same seed) their scores; the
    report lists every verdict, zero counts included, and points at `hpsearch next`."""
    (here / "q.yaml").write_text(QUICK)
    run_sweep("q.yaml", tracking_uri="none", echo=lambda s: None)
    parent = optuna.load_study(study_name="q", storage=open_storage(resolve_storage_url(None)))
    r = write_next("q")
    assert r.path == Path("sweeps/q-next.yaml") and r.name == "q-next"
    spec = load_spec(r.path)
    best = sorted((t for t in parent.trials if t.state == TrialState.COMPLETE),
                  key=lambda t: -t.value)
    fit = [t.number for t in best if fitting(chosen_of(t.params, load_spec("q.yaml").space),
                                             spec) is not None]
    assert r.warm == fit[:3] and r.warm  # the parent's best three that fit the new space
    lines: list[str] = []
    run_sweep(r.path, n_trials=5, tracking_uri="none", echo=lines.append)
    assert lines[0].startswith(f"warm start: trials {', '.join(map(str, r.warm))} of study q")
    child = optuna.load_study(study_name="q-next",
                              storage=open_storage(resolve_storage_url(None)))
    assert child.user_attrs[StudyKey.WARM_START] == {"study": "q", "trials": r.warm}
    first = child.trials[:len(r.warm)]
    by_number = {t.number: t for t in parent.trials}
    for t, number in zip(first, r.warm, strict=True):
        assert t.user_attrs[TrialKey.WARM_START_OF] == f"q#{number}"
        original = by_number[number]
        sampled = {q.name for q in spec.space if q.type != "fixed"}
        assert {k: v for k, v in t.params.items() if k in original.params} == {
            k: v for k, v in original.params.items() if k in sampled}
        if spec.training == load_spec("q.yaml").training:
            assert t.value == pytest.approx(original.value, abs=1e-9)
    assert len(child.trials) == 5
    # the report: every verdict with its count, and the pointer to `hpsearch next`
    out = build_report("q", tracking_uri="none")
    md = (out / "report.md").read_text()
    for verdict in ("good_fit", "overfitting", "underfitting", "undertrained", "diverged",
                    "stalled"):
        assert f"| {verdict} |" in md
    assert "`hpsearch next q` writes a follow-up spec" in md
