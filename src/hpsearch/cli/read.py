"""Commands that read a study: status, report, export, next, predict."""

from __future__ import annotations

import click

from .common import (
    SEP_HELP,
    STORAGE_HELP,
    TRACKING_HELP,
    main,
    say_exported,
)


@main.command("status")
@click.argument("name")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
def status_cmd(name: str, storage: str | None) -> None:
    """A table of study NAME's trials: number, state, value, key parameters, epochs, duration."""
    from ..report.status import status_table

    click.echo(status_table(name, storage))

@main.command("report")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: reports/NAME).")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def report_cmd(name: str, out: str | None, storage: str | None, tracking_uri: str | None) -> None:
    """Write a static report of study NAME (HTML with embedded figures, and Markdown)."""
    from ..report.report import build_report

    where = build_report(name, storage, tracking_uri, out)
    click.echo(f"report: {where / 'index.html'} (and report.md); also logged to the sweep run.")

@main.command("export")
@click.argument("name")
@click.option("--trial", "number", type=int, default=None,
              help="Trial number to export (default: the best trial).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: exports/NAME); replaced if it exists.")
@click.option("--register/--no-register", default=True, show_default=True,
              help="Register the model under NAME in the MLflow Model Registry.")
@click.option("--ensemble", "ensemble", type=click.IntRange(min=0), default=None,
              help="Export one model averaging up to K picks of the kept checkpoints (at most "
                   "checkpoints.keep), chosen greedily on validation predictions (default: the "
                   "spec's export.ensemble; 0 or 1: no ensemble).")
@click.option("--reseed", type=click.IntRange(min=0), default=None,
              help="Train the top configurations (export.reseed_top, 3) with R more model "
                   "seeds and export the best by mean validation score (default: the spec's "
                   "export.reseed; 0: no reseeding).")
@click.option("--refit/--no-refit", default=None,
              help="Once chosen on validation, train the model (each ensemble member) again on "
                   "train + validation for its best epoch count (default: the spec's "
                   "export.refit).")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def export_cmd(name: str, number: int | None, out: str | None, register: bool,
               ensemble: int | None, reseed: int | None, refit: bool | None,
               storage: str | None, tracking_uri: str | None) -> None:
    """Export study NAME's best (or --trial N's) checkpoint: MLflow model, checkpoint, card."""
    from ..export.export import export_model

    say_exported(export_model(name, number, out, storage, tracking_uri, register, ensemble,
                               reseed, click.echo, refit))

@main.command("next")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the spec (default: sweeps/NAME-next.yaml).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
def next_cmd(name: str, out: str | None, force: bool, storage: str | None) -> None:
    """Write the follow-up spec of study NAME: the changes its report recommends, each with its
    evidence, warm-started from NAME's best trials."""
    from ..report.followup import write_next

    r = write_next(name, out, force, storage)
    click.echo(f"next spec for study {name}: {r.path} (study {r.name}); "
               f"{len(r.changes)} change(s)")
    for line in r.summary:
        click.echo(line)
    click.echo(f"run it: hpsearch sweep {r.path}")

@main.command("predict")
@click.argument("model_dir", type=click.Path())
@click.argument("data_file", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output CSV (default: <input>.predictions.csv beside the input).")
@click.option("--sep", default=",", show_default=True, help=SEP_HELP)
def predict_cmd(model_dir: str, data_file: str, out: str | None, sep: str) -> None:
    """Predict labels and class probabilities for the rows of DATA_FILE: a CSV of raw features,
    or, for a model of a table, rows of that table (CSV or parquet, the target left out)."""
    from ..export.predict import predict_csv

    click.echo(f"predictions: {predict_csv(model_dir, data_file, out, sep)}")
