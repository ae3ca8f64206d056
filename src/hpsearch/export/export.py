"""``hpsearch export NAME``: the best trial's best-epoch checkpoint as a model anyone can load,
serve and trust.

The export directory is an MLflow model ("models from code": ``serving.py`` is loaded as source,
the checkpoint is an artifact, hpsearch's own code travels in ``code/``), so
``mlflow.pyfunc.load_model(DIR)`` and ``mlflow models serve`` work, and ``hpsearch.load(DIR)``
gives back the MLPClassifier. The test split is evaluated here, once, and only here. The model
is registered under the study's name; the alias ``champion`` moves to it when its validation
score beats the current champion's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from .._version import __version__
from ..diagnosis.plots import learning_curves
from ..errors import CheckpointError, DataError, SpecError, StorageError, mask_uri
from ..model.checkpoint import META, load_model, locate, save_model
from ..model.ensemble import EnsembleClassifier, select
from ..model.pyfunc import save_pyfunc
from ..nn.functional import cross_entropy
from ..search.refit import refit_ensemble, refit_model, refit_processes
from ..search.reseed import reseed as run_reseed
from ..search.reseed import sweep_rows
from ..search.retention import checkpoint_dir
from ..spec import datasets
from ..spec.schema import SweepSpec
from ..study.store import StudyKey, direction_sign, join_storage_study, ranked, study_spec
from ..study.verdicts import verdicts
from ..tracking.tracker import make_tracker
from .card import ensemble_card, model_card

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)


@dataclass
class ExportResult:
    path: Path
    trial: int
    value: float
    test_accuracy: float
    test_loss: float
    version: str | None
    champion: str | None
    message: str
    metric: str = "validation"  # the objective's metric, which ``value`` is
    members: list[int] | None = None  # an ensemble's member trials
    refit: dict[str, Any] | None = None  # refit on train + validation: samples, epochs, s


def export_model(name: str, number: int | None = None, out: str | Path | None = None,
                 storage_url: str | None = None, tracking_uri: str | None = None,
                 register: bool = True, ensemble: int | None = None,
                 reseed: int | None = None, echo: Callable[[str], None] = print,
                 refit: bool | None = None, in_budget: bool = False) -> ExportResult:
    """``hpsearch export``: the best (or trial ``number``'s) checkpoint; with ``ensemble`` an
    ensemble of the kept ones; with ``reseed`` the best configuration over more seeds: the
    sweep's reseed trials when it ran them, else R more seeds trained now (the spec's
    ``export`` section gives both defaults when no trial is named; an ensemble wins, its library
    holds the reseed trials). With ``refit`` (default: the spec's ``export.refit``), the chosen
    model (or each ensemble member) is trained again on train + validation (refit.py).
    ``in_budget``: the sweep's own export at its end (``export.in_budget``), whose reserve has
    no time for seeds trained now: without the sweep's reseed trials it takes the best trial."""
    study = join_storage_study(name, storage_url)
    spec = study_spec(study)
    if number is not None and (ensemble or reseed):
        raise StorageError("--trial excludes --ensemble and --reseed: they choose the model")
    if ensemble and ensemble > 1 and reseed:
        raise StorageError("--ensemble and --reseed exclude each other (choose one: an "
                           "ensemble of the kept checkpoints, or the best configuration over "
                           "more seeds)")
    if number is None:  # the spec's export section for what is not given (0 turns it off)
        if ensemble is None and not reseed:  # asked to reseed: not the spec's ensemble
            ensemble = spec.export_ensemble or None
        if reseed is None and not (ensemble and ensemble > 1):  # an ensemble wins
            reseed = spec.export_reseed[0] or None
    ensemble, reseed = ensemble or None, reseed or None
    if ensemble and ensemble > spec.keep_checkpoints:
        raise SpecError(f"--ensemble {ensemble}: study {name!r} keeps {spec.keep_checkpoints} "
                        f"checkpoint(s) (checkpoints.keep in {spec.path}), so an ensemble picks "
                        f"from at most those; use --ensemble {spec.keep_checkpoints} or less, or "
                        f"raise checkpoints.keep for the next sweep")
    refit = spec.export_refit if refit is None else refit
    if ensemble and ensemble > 1:
        return export_ensemble(name, ensemble, out, storage_url, tracking_uri, register,
                               refit, echo)
    if reseed:
        rows = sweep_rows(study, spec)  # the sweep's own reseed trials (spec export.reseed)
        if rows:
            seeds = study.user_attrs[StudyKey.RESEED_PHASE]["seeds"]
            echo(f"reseed: the sweep's reseed trials decide (seeds {seeds}); nothing is "
                 "retrained" + (f" (--reseed {reseed} is not applied: the sweep trained "
                                f"{len(seeds)} more seed(s) in its budget)"
                                if reseed != len(seeds) else ""))
        elif in_budget:
            echo("reseed: the budget ended before the sweep's reseed trials; exporting the best "
                 f"trial (`hpsearch export {name} --reseed {reseed}` retrains them after)")
        else:
            rows = run_reseed(study, spec, _splits(study, spec), reseed, spec.export_reseed[1],
                              echo)
        number = _robust_winner(study, spec, rows, echo) if rows else None
    return export_trial(name, number, out, storage_url, tracking_uri, register, refit, echo)


def _robust_winner(study: Any, spec: SweepSpec, rows: list[Any],
                   echo: Callable[[str], None]) -> int:
    """The configuration with the best mean over its seeds; of its trials, the best one whose
    checkpoint is kept (its seeds compete for ``checkpoints.keep`` like any trial)."""
    kept = [t.number for t in ranked(study)[:spec.keep_checkpoints]]
    # the first configuration with a kept checkpoint (its seeds compete for them)
    best = next((r for r in rows if set(r.members or [r.number]) & set(kept)), rows[0])
    number = next((n for n in kept if n in (best.members or [best.number])), best.number)
    echo(f"reseed: trial {best.number}'s configuration wins over {len(best.values)} seeds "
         f"(mean {best.mean:.4f} ± {best.se:.4f}; " + ", ".join(
             f"trial {r.number} {r.mean:.4f}" for r in rows[1:]) + f"); exporting trial {number}")
    return number


def _pick_trial(study: Any, number: int | None) -> Any:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise StorageError(f"study {study.study_name!r} has no completed trial to export")
    if number is None:
        return study.best_trial
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not found:
        raise StorageError(f"study {study.study_name!r} has no trial {number}")
    if found[0].state != TrialState.COMPLETE:
        raise StorageError(f"trial {number} of {study.study_name!r} is {found[0].state.name}, "
                           f"not COMPLETE: only complete trials are exported")
    return found[0]


def export_trial(name: str, number: int | None = None, out: str | Path | None = None,
                 storage_url: str | None = None, tracking_uri: str | None = None,
                 register: bool = True, refit: bool = False,
                 echo: Callable[[str], None] = print) -> ExportResult:
    study = join_storage_study(name, storage_url)
    spec: SweepSpec = study_spec(study)
    trial = _pick_trial(study, number)
    with tempfile.TemporaryDirectory(prefix="hpsearch-fetch-") as fetched:
        ckpt = find_checkpoint(study, spec, trial.number, tracking_uri, Path(fetched))
        if not refit:
            return _export(name, study, spec, trial, ckpt, out, tracking_uri, register)
        splits = _splits(study, spec)
        chosen = load_model(ckpt)
        model, note = refit_model(chosen, splits, f"trial {trial.number}", echo)
        origin = json.loads((ckpt / META).read_text()).get("trial", {})  # provenance, kept
        refit_dir = save_model(model, Path(fetched) / "refit",
                               {"trial": {**origin, "refit": note}})
        return _export(name, study, spec, trial, refit_dir, out, tracking_uri, register, splits,
                       refit=(note, chosen))


def find_checkpoint(study: Any, spec: SweepSpec, number: int, tracking_uri: str | None,
                     fetched: Path) -> Path:
    """The trial's checkpoint: in the local cache, else its logged model in the tracking store
    (downloaded to ``fetched``), so that export works from any machine."""
    ckpt = checkpoint_dir(study, number)
    if (ckpt / "checkpoint.json").is_file():
        return ckpt
    tracker = make_tracker(tracking_uri or study.user_attrs.get(StudyKey.TRACKING_URI))
    downloaded = tracker.download_trial_model(study.study_name, number, fetched)
    if downloaded is not None:
        return locate(downloaded)
    raise CheckpointError(
        f"trial {number}'s checkpoint is neither in {ckpt.parent} nor a logged model in "
        f"{mask_uri(tracker.uri)}: only the top {spec.keep_checkpoints} complete trials keep "
        f"theirs (raise checkpoints.keep)")


def _splits(study: Any, spec: SweepSpec) -> datasets.Splits:
    """The sweep's splits, checked against the fingerprint it recorded."""
    d = spec.data
    splits = datasets.load_splits(d)
    recorded = study.user_attrs.get(StudyKey.DATA, {}).get("fingerprint")
    if recorded and recorded != splits.fingerprint:
        raise DataError(f"{d.dataset}: the data or its split changed since the sweep "
                        f"(fingerprint {splits.fingerprint}, sweep used {recorded}); the test "
                        f"score would not be honest")
    return splits


def _export(name: str, study: Any, spec: SweepSpec, trial: Any, ckpt: Path,
            out: str | Path | None, tracking_uri: str | None, register: bool,
            splits: datasets.Splits | None = None,
            card: Callable[[Any, dict[str, Any]], str] | None = None,
            value: float | None = None,
            refit: tuple[dict[str, Any], Any] | None = None) -> ExportResult:
    """Export the model in ``ckpt`` (a checkpoint, or an ensemble directory with ``card``
    writing its model card and ``value`` its validation score; ``refit``: what the refit was,
    and the chosen checkpoint's model, whose curves and validation scores the card shows)."""
    model = load_model(ckpt)  # every array checked; a tampered file ends here
    shown = (refit[1] if refit else None) or model  # the model the validation split chose
    splits = splits or _splits(study, spec)
    value = float(trial.value) if value is None else value
    x_test, y_test = splits.test
    proba = model.predict_proba(x_test)
    y_idx = np.searchsorted(model.classes_, y_test)
    test_accuracy = float(np.mean(model.classes_[proba.argmax(axis=1)] == y_test))
    test_loss = cross_entropy(np.log(np.clip(proba, 1e-30, None)), y_idx)
    per_class = {str(c): float(np.mean(proba[y_test == c].argmax(axis=1) == i))
                 for i, c in enumerate(model.classes_) if np.any(y_test == c)}

    final = Path(out) if out else Path("exports") / name
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        model_dir = staging / "model"
        save_pyfunc(model_dir, ckpt, x_test[:3], splits.feature_names)
        metrics = {"trial": trial.number, "objective": spec.objective.metric,
                   "validation_value": value, "test_accuracy": test_accuracy,
                   "test_loss": test_loss, "test_samples": int(len(y_test)),
                   "test_accuracy_per_class": per_class, "data_fingerprint": splits.fingerprint,
                   "hpsearch_version": __version__, "refit": refit[0] if refit else None}
        (model_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=1))
        if card is not None:
            (model_dir / "MODEL_CARD.md").write_text(card(model, metrics))
        else:
            learning_curves(shown.history_, shown.best_epoch_, f"{name} trial {trial.number}",
                            model_dir / "learning_curve.png")
            (model_dir / "MODEL_CARD.md").write_text(
                model_card(name, spec, trial, shown, splits, metrics,
                           verdicts(study.get_trials(deepcopy=False), spec).get(trial.number),
                           shipped=model))
        if final.exists():
            shutil.rmtree(final)
        model_dir.rename(final)  # the export appears whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    version = champion = None
    message = "not registered (--no-register)"
    if register:
        tracker = make_tracker(tracking_uri or study.user_attrs.get(StudyKey.TRACKING_URI))
        version, champion, message = tracker.register_model(
            name, final, trial.number, value, direction_sign(study) < 0, test_accuracy,
            {"hpsearch.export": "ensemble" if card is not None else "single",
             "hpsearch.refit": "true" if refit else "false"})
    return ExportResult(final, trial.number, value, test_accuracy, test_loss, version, champion,
                        message, spec.objective.metric, refit=refit[0] if refit else None)


def export_ensemble(name: str, k: int, out: str | Path | None = None,
                    storage_url: str | None = None, tracking_uri: str | None = None,
                    register: bool = True, refit: bool = False,
                    echo: Callable[[str], None] = print) -> ExportResult:
    """Export up to ``k`` picks of study NAME's kept checkpoints as one model averaging their
    probabilities, chosen on validation predictions only (ensemble.select); with ``refit``,
    each member trained again on train + validation once chosen."""
    study = join_storage_study(name, storage_url)
    spec: SweepSpec = study_spec(study)
    kept = ranked(study)[:spec.keep_checkpoints]
    if not kept:
        raise StorageError(f"study {name!r} has no completed trial to export")
    splits = _splits(study, spec)
    with tempfile.TemporaryDirectory(prefix="hpsearch-fetch-") as fetched:
        library = []
        for t in kept:
            try:
                where = Path(fetched) / str(t.number)
                library.append((t, load_model(find_checkpoint(study, spec, t.number,
                                                               tracking_uri, where))))
            except CheckpointError:
                continue  # pushed out of the top k by another worker's trial meanwhile
        if not library:
            raise CheckpointError(f"study {name!r}: none of its top {spec.keep_checkpoints} "
                                  f"trials' checkpoints can be found (local cache or tracking "
                                  f"store)")
        x_val, y_val = splits.val
        y_idx = np.searchsorted(library[0][1].classes_, y_val)
        probas = [m.predict_proba(x_val) for _, m in library]
        picks, trail = select(probas, y_idx, k, spec.objective.metric)
        counts = Counter(picks)
        echo(f"ensemble: {len(counts)} member(s) from {len(picks)} greedy picks on validation, "
             f"with replacement: " + ", ".join(f"trial {library[i][0].number} x{c}"
                                              for i, c in counts.most_common()))
        ens = EnsembleClassifier([(library[i][1], float(c), library[i][0].number)
                                  for i, c in sorted(counts.items())])
        ens_proba = ens.predict_proba(x_val)  # the chosen members', before any refit
        note = None
        if refit:
            ens, note = refit_ensemble(ens, splits, echo, refit_processes(spec))
        ens_dir = ens.save(Path(fetched) / "ensemble", {"picks": [library[i][0].number
                                                                  for i in picks]})
        val_acc = float(np.mean(ens_proba.argmax(axis=1) == y_idx))
        val_loss = cross_entropy(np.log(np.clip(ens_proba, 1e-30, None)), y_idx)
        value = val_acc if spec.objective.metric == "val_accuracy" else val_loss
        rows = [(t, float(np.mean(p.argmax(axis=1) == y_idx)), counts.get(i, 0))
                for i, ((t, _), p) in enumerate(zip(library, probas, strict=True))]

        def card(model: Any, metrics: dict[str, Any]) -> str:
            return ensemble_card(name, spec, splits, metrics, rows, len(picks),
                                 (val_acc, val_loss), model)

        result = _export(name, study, spec, library[picks[0]][0], ens_dir, out, tracking_uri,
                         register, splits, card, value, (note, None) if note else None)
    result.members = [t.number for t, _, c in rows if c]
    return result
