"""hpsearch command line: click, and only here. Each command is a thin wrapper around one
library function, imported when the command runs (`hpsearch --help` stays quick).

Modules: ``common`` (the click group that turns errors into one line, option texts, what a
sweep and an export print), ``run`` (data, init, sweep, worker, recover), ``read`` (status,
report, next, export, predict), ``serve`` (ui, dashboard, storage-proxy), ``launch`` (launch
slurm, launch k8s); ``__main__`` makes `python -m hpsearch.cli` the same as `hpsearch`.

May import: ``errors``, ``_version``, ``spec``, ``tracking``, ``study``, ``search``, ``report``,
``export`` (it is the top layer).
"""

from . import launch, read, run, serve  # noqa: F401  (each registers its commands on main)
from .common import main

__all__ = ["main"]
