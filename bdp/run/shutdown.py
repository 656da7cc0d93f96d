"""How running sessions learn that their consumer is stopping, and how urgently.

Graceful (SIGINT): sessions get a wrap-up window, then are stopped. Immediate (SIGTERM):
sessions are stopped at once. Either way the task still resets the issue and frees its locks
before the worker exits. Thread workers see the process-wide events set here; forked process
workers see the consumer's fork-safe stop flag (graceful) or get SIGTERM (immediate), which
Huey turns into KeyboardInterrupt inside the running task.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol

Mode = Literal["graceful", "immediate"]


class _Flag(Protocol):
    def is_set(self) -> bool: ...


_graceful = threading.Event()
_immediate = threading.Event()
_consumer_flag: list[_Flag] = []


def watch(flag: _Flag) -> None:
    """Let sessions poll the consumer's own stop flag (shared with forked workers)."""
    _consumer_flag[:] = [flag]


def request(mode: Mode) -> None:
    (_immediate if mode == "immediate" else _graceful).set()


def requested() -> Mode | None:
    """The strongest shutdown asked for so far, or None."""
    if _immediate.is_set():
        return "immediate"
    if _graceful.is_set() or any(flag.is_set() for flag in _consumer_flag):
        return "graceful"
    return None


def reset() -> None:
    """Forget any request (a new in-process consumer, as `bdp run` starts, or a test)."""
    _graceful.clear()
    _immediate.clear()
    _consumer_flag.clear()
