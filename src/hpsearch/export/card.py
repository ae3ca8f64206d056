"""The MODEL_CARD.md an export writes beside its model: what the model is, its data and splits,
its scores (the test accuracy computed once, at export), its diagnosis and how to use it."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..diagnosis.diagnostics import ADVICE
from ..spec import datasets
from ..spec.schema import SweepSpec


def ensemble_card(name: str, spec: SweepSpec, splits: datasets.Splits, metrics: dict[str, Any],
                  rows: list[tuple[Any, float, int]], n_picks: int, val: tuple[float, float],
                  model: Any) -> str:
    lines = [
        f"# Model card: {name}, ensemble of {len(model.members)} checkpoints", "",
        f"The average of the class probabilities of {len(model.members)} of the study's "
        f"{len(rows)} kept checkpoints, weighted by how often greedy forward selection with "
        f"replacement picked each ({n_picks} picks) on the validation split; trained by "
        f"hpsearch {__version__}. Loading it never unpickles.", "", *_refit_lines(metrics),
        "## Data and splits", "",
        f"- dataset: `{spec.data.dataset}` from `{splits.source}`",
        f"- splits: {len(splits.train[1])} train / {len(splits.val[1])} validation / "
        f"{len(splits.test[1])} test ({splits.info['test']} test split), seed "
        f"{spec.data.seed}; fingerprint `{splits.fingerprint}`", "",
        "## Scores", "",
        f"- validation accuracy / loss of the ensemble (chose it): {val[0]:.4f} / {val[1]:.4f}",
        f"- **test accuracy, computed once at export: {metrics['test_accuracy']:.4f}** "
        f"(loss {metrics['test_loss']:.4f}, {metrics['test_samples']} samples)", "",
        "## Members", "",
        "| trial | validation accuracy | picks | weight |", "|---|---|---|---|",
        *[f"| {t.number} | {acc:.4f} | {c} | {c / n_picks:.3f} |" for t, acc, c in rows], "",
        "## How to use", "",
        "```python",
        "import hpsearch, mlflow",
        "model = hpsearch.load(\"DIR\")              # EnsembleClassifier; never unpickles",
        "pyfunc = mlflow.pyfunc.load_model(\"DIR\")  # arrays, lists, DataFrames in",
        "```", ""]
    return "\n".join(lines)


def model_card(name: str, spec: SweepSpec, trial: Any, model: Any, splits: datasets.Splits,
               metrics: dict[str, Any],
               fit: tuple[str, str] | None = None, shipped: Any = None) -> str:
    """The export's MODEL_CARD.md; ``fit``: the trial's (verdict, summary) from `verdicts`;
    ``model``: the checkpoint validation chose, ``shipped``: the model exported (its refit)."""
    params = {k: v for k, v in sorted((shipped or model).get_params().items())}
    best = model.history_[model.best_epoch_ - 1] if model.best_epoch_ else {}
    verdict, fit_summary = fit or ("-", "")
    weights = (f"refit on train + validation for the {model.best_epoch_} epochs validation chose "
               f"(of {model.n_epochs_} the trial ran)" if metrics.get("refit") else
               f"exported with its best-epoch weights (epoch {model.best_epoch_} of "
               f"{model.n_epochs_})")
    lines = [
        f"# Model card: {name}, trial {trial.number}", "",
        f"An MLP classifier ({' - '.join(map(str, model.net_.sizes))} units) trained by "
        f"hpsearch {__version__}; {weights}.", "", *_refit_lines(metrics),
        "## Data and splits", "",
        f"- dataset: `{spec.data.dataset}` from `{splits.source}`",
        f"- splits: {len(splits.train[1])} train / {len(splits.val[1])} validation / "
        f"{len(splits.test[1])} test ({splits.info['test']} test split), stratified, "
        f"seed {spec.data.seed}",
        f"- fingerprint: `{splits.fingerprint}`",
        f"- classes: {', '.join(map(str, model.classes_))}",
        f"- input: {model.n_features_in_} raw features as the dataset provides them; "
        f"preprocessing `{params['preprocessing']}` is part of the model", "",
        "## Scores", "",
        f"- validation {spec.objective.metric} (chose this trial): {trial.value:.4f}",
        f"- validation accuracy / loss at the best epoch: {best.get('val_accuracy', 0):.4f} / "
        f"{best.get('val_loss', 0):.4f}",
        f"- **test accuracy, computed once at export: {metrics['test_accuracy']:.4f}** "
        f"(loss {metrics['test_loss']:.4f}, {metrics['test_samples']} samples)",
        "- test accuracy per class: " + ", ".join(
            f"{c} {a:.3f}" for c, a in metrics["test_accuracy_per_class"].items()), "",
        "## Diagnosis", "",
        f"- verdict: **{verdict}**: {fit_summary}",
        f"- advice: {_advice(verdict)}", "",
        "## Learning curves", "", "![learning curves](learning_curve.png)", "",
        "## Hyperparameters", "",
        "| parameter | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in params.items()], "",
        "## How to use", "",
        "```python",
        "import hpsearch, mlflow",
        "model = hpsearch.load(\"DIR\")              # MLPClassifier; never unpickles",
        "pyfunc = mlflow.pyfunc.load_model(\"DIR\")  # arrays, lists, DataFrames in",
        "```", "",
        f"`hpsearch predict DIR input.csv`, or `mlflow models serve -m models:/{name}@champion "
        f"--env-manager local`.", ""]
    return "\n".join(lines)


def _refit_lines(metrics: dict[str, Any]) -> list[str]:
    note = metrics.get("refit")
    if not note:
        return []
    epochs = note["epochs"]
    many = isinstance(epochs, list)
    plateau = ("; a plateau schedule decays on the training loss"
               if many or note.get("schedule") == "plateau" else "")
    whose = "checkpoints'" if many else "checkpoint's"
    return [f"**Refit**: once chosen on validation, trained again with the same hyperparameters, "
            f"seed and learning-rate schedule on train + validation ({note['samples']} "
            f"samples) for the epochs validation chose ("
            f"{', '.join(map(str, epochs)) if many else epochs}{' per member' if many else ''}"
            f"), in {note['seconds']:.0f} s; no early stopping, no best-epoch restore"
            f"{plateau}. The validation scores below are the chosen {whose} (the refit "
            f"trained on those samples); "
            f"the test accuracy is the refit model's.", ""]


def _advice(verdict: str) -> str:
    return ADVICE.get(verdict, "-")
