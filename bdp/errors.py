"""Errors bdp raises for conditions a user can fix.

Each carries a one-line message (what is wrong) and a hint (what to do). The CLI turns them
into one ``Error: ...`` line and a non-zero exit; library code never prints or exits.
"""

from __future__ import annotations

import sys


class BdpError(Exception):
    """Base class: a problem the user can act on, never a bug."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(BdpError):
    """A setting (environment variable or option) has a value bdp cannot use."""

    exit_code = 2


class PreflightError(BdpError):
    """A check before anything is claimed failed: no CLI, no credentials, no sandbox, no bd."""


class RepoError(BdpError):
    """The repository path is missing, not a git work tree, or has no beads workspace."""


class BeadsError(BdpError):
    """`bd` is missing or answered with an error."""


class UnknownIssue(BeadsError):
    """`bd` does not know the issue id."""


class BrokerUnavailable(BdpError):
    """The queue's storage (Redis or the SQLite file) cannot be reached."""


class TaskError(BdpError):
    """A queued task carries data bdp cannot run (malformed or from another version)."""


class LockError(BdpError):
    """A file lock could not be taken: held by another run, or a path outside the repo."""


class DeadlockError(LockError):
    """Waiting for a lock would close a cycle of runs waiting on each other."""

    def __init__(self, message: str, hint: str = "", waits_for: str = "") -> None:
        super().__init__(message, hint)
        self.waits_for = waits_for  # the issue whose run holds the lock the victim wanted


def is_broker_error(error: BaseException) -> bool:
    """True when ``error`` comes from the queue's storage: Redis or the SQLite file.

    The one place that decides it, for the CLI's error line and for a worker finishing a run
    while the broker is away. redis-py's errors share no base class with sqlite3's (nor with
    OSError), and redis-py is not imported here: its errors are known by their module.
    """
    if type(error).__module__.partition(".")[0] == "redis":
        return True
    return is_sqlite_error(error)


def is_sqlite_error(error: BaseException) -> bool:
    """True when ``error`` is SQLite's failure to open or use the queue file. sqlite3 is
    imported only by what opens that file, so on Redis a command never loads it."""
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(error, sqlite3.OperationalError)
