"""Servers over the stores: ui (MLflow), dashboard (optuna-dashboard), storage-proxy."""

from __future__ import annotations

import sys

import click

from ..errors import mask_uri
from .common import (
    STORAGE_HELP,
    TRACKING_HELP,
    main,
)


@main.command("ui")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=None, help=TRACKING_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default keeps the UI on this machine.")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
def ui_cmd(tracking_uri: str | None, host: str, port: int) -> None:
    """Start the MLflow UI over the tracking store (the embedded one by default)."""
    import os

    from ..tracking.backend import resolve_tracking_uri

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
    from ..study.proxy import serve_proxy

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
    from ..report.dashboard import serve

    serve(name, storage, host, port, click.echo)
