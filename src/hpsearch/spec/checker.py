"""Reading one mapping of a spec with errors that name the file and the key: ``Checker`` records
which keys a section has, refuses unknown ones (listing those allowed), and reads each value with
its type and bounds, e.g. ``sweeps/x.yaml: training.max_epochs must be >= 1, not 0``."""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError


class Checker:
    """Reads one mapping of the spec, recording which keys were used, with file-and-key errors."""

    def __init__(self, file: str, where: str, node: Any, allowed: set[str] | None = None):
        self.file, self.where = file, where
        node = {} if node is None else node
        if not isinstance(node, dict):
            self.fail(f"must be a mapping, not {type(node).__name__}")
        self.node = node
        if allowed is not None:
            for key in node:
                if key not in allowed:
                    self.fail(f"has unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                              key=None)

    def key(self, key: str | None) -> str:
        if key is None:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def fail(self, message: str, key: str | None = None) -> None:
        raise SpecError(f"{self.file}: {self.key(key) or 'top level'} {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False, allow_none: bool = False) -> Any:
        if key not in self.node:
            if required:
                self.fail("is required", key)
            return default
        value = self.node[key]
        if value is None and allow_none:
            return None
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, str) and float in kinds:  # YAML reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) and bool not in kinds:
            self.fail(f"must be {kind_names(kinds)}, not {value!r}", key)
        if not isinstance(value, kinds):
            self.fail(f"must be {kind_names(kinds)}, not {value!r}", key)
        return value

    def number(self, key: str, default: Any, lo: float | None = None, hi: float | None = None,
               integer: bool = False, allow_none: bool = False, lo_open: bool = False,
               hi_open: bool = False) -> Any:
        value = self.get(key, int if integer else float, default, allow_none=allow_none)
        if value is None:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(f"must be a finite number, not {value!r}", key)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            self.fail(f"must be {'>' if lo_open else '>='} {lo:g}, not {value!r}", key)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            self.fail(f"must be {'<' if hi_open else '<='} {hi:g}, not {value!r}", key)
        return value


def kind_names(kinds: tuple[type, ...]) -> str:
    names = {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
