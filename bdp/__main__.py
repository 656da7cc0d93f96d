"""``python -m bdp``: the same command line as ``bdp``."""

from bdp.cli.ending import run

run()
