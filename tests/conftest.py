from __future__ import annotations

import os
from pathlib import Path

import pytest

FASHION_DIR = Path(os.environ.get("HPSEARCH_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST IDX files not found in {FASHION_DIR}: "
                    "apt-get install dataset-fashion-mnist (the CI script does)")
    return FASHION_DIR
