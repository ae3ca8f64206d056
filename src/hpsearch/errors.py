"""Errors a user can cause. The CLI prints them as one line ``error: ...`` and exits with 2."""

from __future__ import annotations


class HpsearchError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class SpecError(HpsearchError):
    """A sweep spec is malformed or invalid."""


class DataError(HpsearchError):
    """A dataset is missing, corrupt or unusable."""


class CheckpointError(HpsearchError):
    """A checkpoint is missing, corrupt or tampered with."""


class StorageError(HpsearchError):
    """An Optuna storage or MLflow tracking store is unreachable or unusable."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when empty), cut at ``limit``."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
