"""`python -m hpsearch.cli`: the same as `hpsearch` and `python -m hpsearch`."""

from . import main

main(prog_name="hpsearch")
