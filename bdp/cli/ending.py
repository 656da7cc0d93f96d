"""How the ``bdp`` process ends: read-only commands skip the interpreter's teardown.

Finalising every module costs a CPython process about 100 ms once redis-py is imported
(measured: ``bdp status`` on Redis spends 95-160 ms between its last line and its exit, all
CPU, no system calls), which is a third of what a person waits for. A read-only command
(`bdp status`, `bdp metrics`) has nothing to tear down: it wrote to no file, holds no lock
and left nothing queued, so once its output is flushed it ends with ``os._exit``. Only the
process entry point does this; a command run in-process (click's test runner) returns as
usual, and a command that fails, or any command that changes state, ends the normal way.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from bdp.cli.main import main


class _Ending:
    """Whether the running command asked to skip the teardown (set once per process)."""

    quick = False


def skip_teardown() -> None:
    """Let the process end without teardown once this command succeeds: call it only from
    a command that changes nothing (its output is all it leaves)."""
    _Ending.quick = True


def run() -> NoReturn:
    """The ``bdp`` console script and ``python -m bdp``."""
    try:
        main(prog_name="bdp")
    except SystemExit as done:
        if _Ending.quick and done.code in (0, None):
            _flush_and_leave()
        raise
    raise SystemExit(0)


def _flush_and_leave() -> NoReturn:
    """Flush what the command printed, then leave at once (a closed pipe is exit 1)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        os._exit(1)
    os._exit(0)
