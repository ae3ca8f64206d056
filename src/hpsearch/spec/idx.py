"""IDX files (MNIST, Fashion-MNIST): where they are looked for, how they are read and checked,
and their download from the dataset's public mirror, verified against the published checksums.
The data set they make is datasets.load_idx's."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MIRRORS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
# A downloaded file is accepted if the MD5 of the .gz as published, or the SHA-256 of its
# decompressed content, is one of these. (Re-compressed copies, such as Debian's, change the .gz
# bytes but not the content.)
CHECKSUMS: dict[str, dict[str, set[str]]] = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": {
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
        "train-labels-idx1-ubyte": {
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
        "t10k-images-idx3-ubyte": {
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
        "t10k-labels-idx1-ubyte": {
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
    },
    "mnist": {
        "train-images-idx3-ubyte": {"f68b3c2dcbeaaa9fbdd348bbdeb94873"},
        "train-labels-idx1-ubyte": {"d53e105ee54ea40749a09fcbcd1e9432"},
        "t10k-images-idx3-ubyte": {"9fb629c4189551a2d022fa330f9573f3"},
        "t10k-labels-idx1-ubyte": {"ec29112dd5afa0611ce80d1b7f02629c"},
    },
}


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hpsearch" / name


def find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_idx_dir(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first directory holding all four IDX files of ``name``, in the documented order."""
    if data_dir is not None:
        d = Path(data_dir)
        missing = [s for s in IDX_FILES.values() if find_file(d, s) is None]
        if missing:
            raise DataError(f"{d}: missing {name} file(s) {', '.join(missing)} (.gz or raw)")
        return d
    candidates = []
    if os.environ.get("HPSEARCH_DATA"):
        env = Path(os.environ["HPSEARCH_DATA"])
        candidates += [env / name, env]
    candidates += [Path("/usr/share/datasets") / name, cache_dir(name)]
    for d in candidates:
        if all(find_file(d, s) is not None for s in IDX_FILES.values()):
            return d
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file (magic 0x0000080N, N = ndim), checking size and header."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\x00\x00" or data[2] != 0x08 or data[3] != ndim:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x} (expected 0x{0x800 + ndim:08x}"
                        f", unsigned-byte IDX with {ndim} dimension(s))")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header says {dims} ({expected} bytes), "
                        f"file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _verify(name: str, stem: str, path: Path) -> bool:
    known = CHECKSUMS.get(name, {}).get(stem, set())
    md5 = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - matching published sums
    if md5 in known:
        return True
    try:
        content = _read_bytes(path)
    except DataError:
        return False
    return hashlib.sha256(content).hexdigest() in known


def download_idx(name: str, dest: Path, mirror: str | None = None) -> Path:
    """Download the four IDX files of ``name`` into ``dest``, verifying checksums."""
    base = mirror or os.environ.get("HPSEARCH_MIRROR") or MIRRORS[name]
    base = base if base.endswith("/") else base + "/"
    dest.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        final = dest / (stem + ".gz")
        if final.is_file() and _verify(name, stem, final):
            continue
        url = base + stem + ".gz"
        part = dest / (stem + ".gz.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            part.unlink(missing_ok=True)
            raise DataError(f"{name}: cannot download {url} ({getattr(exc, 'reason', exc)}). "
                            + how_to_get(name)) from None
        if not _verify(name, stem, part):
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: checksum mismatch (corrupt or not the official file). "
                            + how_to_get(name))
        part.replace(final)
    return dest


def how_to_get(name: str) -> str:
    hint = "apt-get install dataset-fashion-mnist, or " if name == "fashion-mnist" else ""
    stems = ", ".join(s + ".gz" for s in IDX_FILES.values())
    return (f"To get {name}: {hint}put {stems} in a directory and pass it as the data "
            f"directory or set HPSEARCH_DATA to it.")
