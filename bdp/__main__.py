"""``python -m bdp``: the same command line as ``bdp``."""

from bdp.cli import main

main(prog_name="bdp")
