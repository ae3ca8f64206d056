"""hpsearch command line. Each command is a thin wrapper around one library function."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._version import __version__
from .errors import HpsearchError, install_masking, mask_uri, note_when_output_closes


class _Group(click.Group):
    """Turns an HpsearchError, a disk or storage failure and click's usage errors into one line
    ``error: ...`` (plus, for usage errors, one hint line) and exit status 2, a traceback only
    with --debug; and masks credentials in everything the process prints or logs."""

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        install_masking()
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else (prog_name or "hpsearch")
            click.echo(f"error: {exc.format_message()}", err=True)
            click.echo(f"see '{where} --help'", err=True)
            sys.exit(2)
        except click.ClickException as exc:  # a file click could not open, say
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.Abort as exc:  # a signal at a prompt or before a command started
            from .search.signals import exit_status

            click.echo("error: interrupted", err=True)
            sys.exit(exit_status(exc.__context__) if exc.__context__ else 130)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HpsearchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:  # a full or read-only disk, a storage server gone
            from .errors import describe

            message = describe(exc)
            if message is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="hpsearch")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Hyperparameter sweeps for MLP classifiers: Optuna search, MLflow curves, diagnostics."""
    ctx.obj = {"debug": debug}


@main.command("data")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory holding the IDX files (default: the documented lookup order).")
@click.option("--target", default=None, help="Target column, for csv:<path> datasets.")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="Share of the (official training) data held out for validation.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share held out for test, when the dataset has no official test split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")
def data_cmd(name: str, data_dir: str | None, target: str | None, val_fraction: float,
             test_fraction: float, seed: int) -> None:
    """Load dataset NAME (digits, fashion-mnist, mnist, csv:<path>) and describe its splits."""
    from .spec.datasets import load, split

    ds = load(name, data_dir=data_dir, target=target)
    sp = split(ds, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    click.echo(f"{ds.name}: {ds.X.shape[1]} features, {len(set(ds.y.tolist()))} classes, "
               f"from {ds.source}")
    for part, (_, y) in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
        click.echo(f"  {part:<5} {len(y):>6} samples")
    click.echo(f"  fingerprint {sp.fingerprint} (seed {seed}, test split: {sp.info['test']})")


STORAGE_HELP = ("Optuna storage: a .journal file (default mlruns/optuna.journal) or an RDB URL "
                "such as postgresql://user@host/db. Env: HPSEARCH_STORAGE.")
TRACKING_HELP = ("MLflow tracking URI (default sqlite:///mlruns/mlflow.db, artifacts under "
                 "mlruns/). Env: MLFLOW_TRACKING_URI.")


TARGET_HELP = "The label column of a table (CSV or parquet) given as DATA."
DROP_HELP = "A column of the table to leave out (repeat for more): an identifier, free text."
SEP_HELP = "The table's field separator (a CSV file; default ',')."


@main.command("init")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--target", required=True, help=TARGET_HELP)
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the spec (default: sweeps/<DATA's name>.yaml).")
@click.option("--drop", multiple=True, help=DROP_HELP)
@click.option("--sep", default=",", show_default=True, help=SEP_HELP)
@click.option("--name", default=None, help="Study name (default: DATA's file name).")
@click.option("--force", is_flag=True, help="Overwrite the spec if it exists.")
def init_cmd(data: str, target: str, out: str | None, drop: tuple[str, ...], sep: str,
             name: str | None, force: bool) -> None:
    """Write a sweep spec for table DATA (CSV or parquet): its columns checked, a search space
    and a budget sized from its rows and features. `hpsearch sweep` runs it."""
    from .spec.init import init_spec

    r = init_spec(data, target, out, drop, sep, name, force)
    for note in r.notes:
        click.echo(note)
    click.echo(r.summary)
    click.echo(f"wrote {r.path}; run it: hpsearch sweep {r.path}")


@main.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--target", default=None,
              help="SPEC is a table (CSV or parquet) with this label column: write its spec "
                   "(hpsearch init) and run it.")
@click.option("--drop", multiple=True, help=DROP_HELP + " With --target.")
@click.option("--sep", default=",", show_default=True, help=SEP_HELP + " With --target.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Total number of trials the study should hold (default: the spec's n_trials).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop starting new trials after this many seconds.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=None,
              help="Worker processes on this machine (default: the spec's budget.workers).")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
@click.option("--study", "study_name", default=None, help="Study name (default: the spec's name).")
def sweep_cmd(spec: str, target: str | None, drop: tuple[str, ...], sep: str,
              trials: int | None, timeout: float | None, workers: int | None,
              storage: str | None, tracking_uri: str | None, study_name: str | None) -> None:
    """Run (or resume) the sweep defined in SPEC until its study holds the requested trials.
    SPEC is a YAML file, or a table (CSV or parquet) with --target."""
    import time

    from .search.signals import exit_status, signal_name, signal_of, stop_signals
    from .search.sweep import run_sweep

    started = time.time()
    note_when_output_closes("the output was closed (broken pipe): the sweep goes on without "
                            "printing to it; `hpsearch status` follows it, Ctrl-C stops it")
    if target is not None:
        from .spec.init import table_spec

        spec = str(table_spec(spec, target, drop, sep, study_name, click.echo))
    elif drop or sep != ",":
        raise click.UsageError("--drop and --sep go with --target (SPEC a table)")
    elif spec.lower().endswith((".csv", ".tsv", ".parquet", ".pq")):
        raise click.UsageError(f"{spec} is a table: name its label column with --target "
                               f"(or write a spec for it: hpsearch init {spec} --target COLUMN)")
    try:
        with stop_signals():  # a signal while the study is prepared or closed: one line too
            result = run_sweep(spec, trials, timeout, workers, storage, tracking_uri,
                               study_name, echo=click.echo)
            exported = None
            if result.export_in_budget and result.signal is None and \
                    result.best_number is not None:  # the spec's export, as the last step
                from .export.export import export_model

                exported = export_model(result.study_name, storage_url=storage,
                                        tracking_uri=tracking_uri, echo=click.echo,
                                        in_budget=True)
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted by {signal_name(signal_of(exc))}; run the same command to "
                   f"resume (`hpsearch recover` first if a trial stayed RUNNING).", err=True)
        sys.exit(exit_status(exc))
    if result.best_number is None:
        click.echo("no trial completed yet.")
    else:
        noise = f" ± {result.noise_floor:.4f} (noise floor)" if result.noise_floor else ""
        click.echo(f"best: trial {result.best_number}, value {result.best_value:.4f}{noise}, "
                   f"MLflow run {result.best_run_id} (experiment {result.study_name}).")
    if result.stopped:
        click.echo(f"stopped early: {result.stopped}")
    if exported is not None:
        _say_exported(exported)
        click.echo(f"sweep and export: {(time.time() - started) / 60:.1f} minutes")
    click.echo(f"look: {_ui_hint(result.tracking_uri)}hpsearch status {result.study_name}")
    if result.signal is not None:
        click.echo(f"interrupted by {signal_name(result.signal)}: running trials were closed "
                   f"and will be retried; run the same command to resume.", err=True)
        sys.exit(128 + result.signal)


@main.command("worker")
@click.argument("name")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def worker_cmd(name: str, storage: str | None, tracking_uri: str | None) -> None:
    """Join study NAME (created by `hpsearch sweep`) and run trials until it is complete."""
    import os

    from .search.signals import exit_status, signal_name, signal_of, stop_signals
    from .search.worker import join_study, run_trials
    from .study.verdicts import refresh_verdicts
    from .tracking.tracker import make_tracker

    note_when_output_closes(f"the output was closed (broken pipe): the worker goes on without "
                            f"printing; `hpsearch status {name}` follows it")
    try:
        with stop_signals("cooperative"):
            ctx = join_study(name, storage, tracking_uri, echo=click.echo, worker=os.getpid())
            ran = run_trials(ctx, None, None)
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted by {signal_name(signal_of(exc))}: the running trial was "
                   f"closed and will be retried.", err=True)
        sys.exit(exit_status(exc))
    refresh_verdicts(ctx.study, ctx.spec, make_tracker(ctx.log.uri))
    click.echo(f"worker done: ran {ran} trial(s) of study {name}.")


@main.command("status")
@click.argument("name")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
def status_cmd(name: str, storage: str | None) -> None:
    """A table of study NAME's trials: number, state, value, key parameters, epochs, duration."""
    from .report.status import status_table

    click.echo(status_table(name, storage))


@main.command("report")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: reports/NAME).")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def report_cmd(name: str, out: str | None, storage: str | None, tracking_uri: str | None) -> None:
    """Write a static report of study NAME (HTML with embedded figures, and Markdown)."""
    from .report.report import build_report

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
    from .export.export import export_model

    _say_exported(export_model(name, number, out, storage, tracking_uri, register, ensemble,
                               reseed, click.echo, refit))


def _ui_hint(uri: str) -> str:
    """Where to see a sweep's runs: a tracking server is its own UI; the embedded store's UI is
    `make ui` in hpsearch's checkout (its Makefile has the target), else `hpsearch ui`."""
    import re
    from pathlib import Path

    from .tracking.backend import DEFAULT_TRACKING_URI, resolve_tracking_uri

    if uri == "none":
        return ""
    if uri.startswith(("http://", "https://")):
        return f"{mask_uri(uri)} (the tracking server's UI), "
    if uri != resolve_tracking_uri(DEFAULT_TRACKING_URI):
        return f"hpsearch ui --tracking-uri '{mask_uri(uri)}' (MLflow UI), "
    try:
        make = re.search(r"^ui:", Path("Makefile").read_text(), re.M) is not None
    except OSError:
        make = False
    return f"{'make ui' if make else 'hpsearch ui'} (MLflow UI on http://127.0.0.1:5000), "


def _say_exported(r: Any) -> None:
    """What an export made: its model, scores and registration (an ExportResult)."""
    what = f"an ensemble led by trial {r.trial}" if r.members else f"trial {r.trial}"
    what += " (refit on train + validation)" if r.refit else ""
    click.echo(f"exported {what} to {r.path}: {r.metric} {r.value:.4f}, "
               f"test accuracy {r.test_accuracy:.4f} (computed once, now)")
    click.echo(r.message)


@main.command("next")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the spec (default: sweeps/NAME-next.yaml).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
def next_cmd(name: str, out: str | None, force: bool, storage: str | None) -> None:
    """Write the follow-up spec of study NAME: the changes its report recommends, each with its
    evidence, warm-started from NAME's best trials."""
    from .report.followup import write_next

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
    from .export.predict import predict_csv

    click.echo(f"predictions: {predict_csv(model_dir, data_file, out, sep)}")


@main.command("recover")
@click.argument("name")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def recover_cmd(name: str, storage: str | None, tracking_uri: str | None) -> None:
    """Fail the stale trials of dead workers in study NAME, close their runs, enqueue retries.

    On a journal storage every RUNNING trial counts as stale: run it when no worker runs."""
    from .study.recover import recover

    found = recover(name, storage, tracking_uri)
    for r in found:
        if r.stale:
            click.echo(f"trial {r.number}: FAIL, run {r.run_id or '-'} KILLED"
                       + (", parameters enqueued for a retry" if r.retry else ""))
        else:
            click.echo(f"trial {r.number}: run {r.run_id} was left open; closed as "
                       f"{r.state} (Optuna's state)")
    stale = sum(r.stale for r in found)
    click.echo(f"{stale} stale trial(s) recovered, {len(found) - stale} open run(s) closed in "
               f"study {name}.")


@main.command("ui")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default keeps the UI on this machine.")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
def ui_cmd(tracking_uri: str | None, host: str, port: int) -> None:
    """Start the MLflow UI over the tracking store (the embedded one by default)."""
    import os

    from .tracking.backend import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    click.echo(f"MLflow UI on http://{host}:{port} (store {mask_uri(uri)}); Ctrl-C stops it.")
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", host, "--port", str(port)])


@main.command("storage-proxy")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (0.0.0.0 for the workers of other machines).")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True,
              help="Port to listen on.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Requests served at once; the database connections the proxy holds.")
def storage_proxy_cmd(storage: str | None, host: str, port: int, threads: int) -> None:
    """Serve the study storage to many workers through Optuna's gRPC proxy: workers pass
    --storage grpc://HOST:PORT and only the proxy connects to the database."""
    from .study.proxy import serve_proxy

    serve_proxy(storage, host, port, threads, click.echo)


@main.command("dashboard")
@click.argument("name", required=False)
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default keeps the dashboard on this machine.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Port to listen on.")
def dashboard_cmd(name: str | None, storage: str | None, host: str, port: int) -> None:
    """Start optuna-dashboard over the study storage (study NAME's page, or every study)."""
    from .report.dashboard import serve

    serve(name, storage, host, port, click.echo)


if __name__ == "__main__":
    main(prog_name="hpsearch")
