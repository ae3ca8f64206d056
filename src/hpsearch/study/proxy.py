"""``hpsearch storage-proxy``: Optuna's gRPC storage proxy in front of the study storage, for
hundreds of workers: each worker talks to the proxy (``--storage grpc://HOST:PORT``), and only
the proxy's pool connects to PostgreSQL (``--threads`` connections, plus one), however many
workers there are. Workers behind it send no heartbeats (Optuna's gRPC client has none): a dead
worker's trial is recovered with `hpsearch recover NAME` when no worker runs, as on a journal.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..errors import HpsearchError, StorageError, mask_uri
from .store import open_storage, resolve_storage_url


def serve_proxy(storage_url: str | None, host: str, port: int, threads: int,
                echo: Callable[[str], None] = print) -> None:
    """Serve the storage until interrupted."""
    try:
        import grpc  # noqa: F401 - Optuna's proxy needs it: the optional extra `grpc`
    except ImportError:
        raise HpsearchError("the storage proxy needs grpcio: pip install -e '.[grpc]' (make "
                            "setup installs it)") from None
    import optuna

    url = resolve_storage_url(storage_url)
    if url.startswith("grpc://"):
        raise StorageError(f"--storage {url}: a proxy in front of a proxy; give the database URL")
    storage = open_storage(url, pool_size=threads)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hpsearch-proxy")
    echo(f"storage proxy on grpc://{host}:{port} for {mask_uri(url)} ({threads} threads, at "
         f"most {threads + 1} database connections); workers: --storage grpc://{host}:{port}; "
         f"Ctrl-C stops it.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our line above says it all
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    try:
        optuna.storages.run_grpc_proxy_server(storage, host=host, port=port, thread_pool=pool)
    except RuntimeError as exc:  # grpc: the port is taken
        raise StorageError(f"cannot serve on {host}:{port} ({exc}); pass --port another "
                           f"number") from None
    except KeyboardInterrupt:
        pass
