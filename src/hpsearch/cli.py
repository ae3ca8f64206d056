"""hpsearch command line. Each command is a thin wrapper around one library function."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .errors import HpsearchError


class _Group(click.Group):
    """Turns an HpsearchError into one line ``error: ...`` and exit status 2 (a traceback only
    with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HpsearchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
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
    from .datasets import load, split

    ds = load(name, data_dir=data_dir, target=target)
    sp = split(ds, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    click.echo(f"{ds.name}: {ds.X.shape[1]} features, {len(set(ds.y.tolist()))} classes, "
               f"from {ds.source}")
    for part, (_, y) in (("train", sp.train), ("val", sp.val), ("test", sp.test)):
        click.echo(f"  {part:<5} {len(y):>6} samples")
    click.echo(f"  fingerprint {sp.fingerprint} (seed {seed}, test split: {sp.info['test']})")


if __name__ == "__main__":
    main()
