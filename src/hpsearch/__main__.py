"""``python -m hpsearch``: the same command line as ``hpsearch``."""

from hpsearch.cli import main

main(prog_name="hpsearch")
