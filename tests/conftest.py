from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

ADMIN = os.environ.get("HPSEARCH_TEST_POSTGRES",
                       "postgresql://hpsearch:hpsearch@127.0.0.1:5432/postgres")
FASHION_DIR = Path(os.environ.get("HPSEARCH_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST IDX files not found in {FASHION_DIR}: "
                    "apt-get install dataset-fashion-mnist (the CI script does)")
    return FASHION_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def databases():
    import psycopg  # in the dev extra: a missing driver fails, it is not skipped
    try:
        admin = psycopg.connect(ADMIN, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN} ({exc}). `.ci/run` starts it; "
                    f"locally: apt-get install postgresql && bash .ci/postgres.sh")
    names = [f"hps_{uuid.uuid4().hex[:8]}_{k}" for k in ("optuna", "mlflow")]
    with admin.cursor() as cur:
        for n in names:
            cur.execute(f"CREATE DATABASE {n}")
    base = ADMIN.rsplit("/", 1)[0]
    yield [f"{base}/{n}" for n in names]
    with admin.cursor() as cur:
        for n in names:
            cur.execute(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)")
    admin.close()
