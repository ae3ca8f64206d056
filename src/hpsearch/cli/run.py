"""Commands that run trials or change a study: data, init, sweep, worker, recover."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..errors import note_when_output_closes

if TYPE_CHECKING:
    from ..tracking.writer import MachineWriter
from .common import (
    DROP_HELP,
    SEP_HELP,
    STORAGE_HELP,
    TARGET_HELP,
    TRACKING_HELP,
    main,
    say_exported,
    ui_hint,
)


def start_writer(spec: str, workers: int | None, tracking_uri: str | None) -> MachineWriter | None:
    """The sweep's MLflow writer (tracking/writer.py), started before the sweep's imports so
    that its own (MLflow, the store's opening) run beside them; None when tracking is off."""
    from ..search.signals import spawn_context
    from ..spec.config import load_spec, sweep_workers
    from ..tracking.backend import check_scheme, resolve_tracking_uri
    from ..tracking.writer import MachineWriter

    uri = resolve_tracking_uri(tracking_uri)
    if uri == "none":
        return None
    check_scheme(uri)  # a mistyped URI: its one line now (and a server's timeouts set)
    # a bad spec fails here, as in run_sweep, before any process starts
    return MachineWriter(uri, sweep_workers(load_spec(spec), workers), spawn_context())


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
    from ..spec.datasets import load, split

    ds = load(name, data_dir=data_dir, target=target)
    sp = split(ds, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    click.echo(f"{ds.name}: {ds.X.shape[1]} features, {len(set(ds.y.tolist()))} classes, "
               f"from {ds.source}")
    for part, (_, y) in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
        click.echo(f"  {part:<5} {len(y):>6} samples")
    click.echo(f"  fingerprint {sp.fingerprint} (seed {seed}, test split: {sp.info['test']})")

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
    from ..spec.init import init_spec

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

    from ..search.signals import exit_status, signal_name, signal_of, stop_signals

    started = time.time()
    note_when_output_closes("the output was closed (broken pipe): the sweep goes on without "
                            "printing to it; `hpsearch status` follows it, Ctrl-C stops it")
    if target is not None:
        from ..spec.init import table_spec

        spec = str(table_spec(spec, target, drop, sep, study_name, click.echo))
    elif drop or sep != ",":
        raise click.UsageError("--drop and --sep go with --target (SPEC a table)")
    elif spec.lower().endswith((".csv", ".tsv", ".parquet", ".pq")):
        raise click.UsageError(f"{spec} is a table: name its label column with --target "
                               f"(or write a spec for it: hpsearch init {spec} --target COLUMN)")
    try:
        with stop_signals():  # a signal while the study is prepared or closed: one line too
            writer = start_writer(spec, workers, tracking_uri)
            from ..search.sweep import run_sweep  # ~2.5 s of imports, beside the writer's

            result = run_sweep(spec, trials, timeout, workers, storage, tracking_uri,
                               study_name, echo=click.echo, writer=writer)
            exported = None
            if result.export_in_budget and result.signal is None and \
                    result.best_number is not None:  # the spec's export, as the last step
                from ..export.export import export_model

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
        say_exported(exported)
        click.echo(f"sweep and export: {(time.time() - started) / 60:.1f} minutes")
    click.echo(f"look: {ui_hint(result.tracking_uri)}hpsearch status {result.study_name}")
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

    from ..search.signals import exit_status, signal_name, signal_of, stop_signals
    from ..search.sweep import close_if_complete
    from ..search.worker import join_study, run_trials
    from ..study.verdicts import refresh_verdicts
    from ..tracking.tracker import make_tracker

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
    tracker = make_tracker(ctx.log.uri)
    if close_if_complete(ctx.study, ctx.spec, tracker):  # the last worker of a launched sweep
        click.echo(f"worker done: ran {ran} trial(s); study {name} is complete and its parent "
                   f"run closed.")
    else:
        refresh_verdicts(ctx.study, ctx.spec, tracker)
        click.echo(f"worker done: ran {ran} trial(s) of study {name}.")

@main.command("recover")
@click.argument("name")
@click.option("--storage", envvar="HPSEARCH_STORAGE", default=None, help=STORAGE_HELP)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
def recover_cmd(name: str, storage: str | None, tracking_uri: str | None) -> None:
    """Fail the stale trials of dead workers in study NAME, close their runs, enqueue retries.

    On a journal storage every RUNNING trial counts as stale: run it when no worker runs."""
    from ..study.recover import recover

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
