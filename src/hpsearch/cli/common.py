"""The click group (``main``: errors as one line, exit status 2, masking) and what several
commands share: option help texts, the UI hint, what an export prints."""

from __future__ import annotations

import sys
from typing import Any

import click

from .._version import __version__
from ..errors import HpsearchError, install_masking, mask_uri


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
            from ..search.signals import exit_status

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
            from ..errors import describe

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

STORAGE_HELP = ("Optuna storage: a .journal file (default mlruns/optuna.journal) or an RDB URL "
                "such as postgresql://user@host/db. Env: HPSEARCH_STORAGE.")
TRACKING_HELP = ("MLflow tracking URI (default sqlite:///mlruns/mlflow.db, artifacts under "
                 "mlruns/). Env: MLFLOW_TRACKING_URI.")


TARGET_HELP = "The label column of a table (CSV or parquet) given as DATA."
DROP_HELP = "A column of the table to leave out (repeat for more): an identifier, free text."
SEP_HELP = "The table's field separator (a CSV file; default ',')."


def ui_hint(uri: str) -> str:
    """Where to see a sweep's runs: a tracking server is its own UI; the embedded store's UI is
    `make ui` in hpsearch's checkout (its Makefile has the target), else `hpsearch ui`."""
    import re
    from pathlib import Path

    from ..tracking.backend import DEFAULT_TRACKING_URI, resolve_tracking_uri

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


def say_exported(r: Any) -> None:
    """What an export made: its model, scores and registration (an ExportResult)."""
    what = f"an ensemble led by trial {r.trial}" if r.members else f"trial {r.trial}"
    what += " (refit on train + validation)" if r.refit else ""
    click.echo(f"exported {what} to {r.path}: {r.metric} {r.value:.4f}, "
               f"test accuracy {r.test_accuracy:.4f} (computed once, now)")
    click.echo(r.message)
