"""Reading the SQLite queue file without writing to it, for commands that only look.

`bdp status`, `bdp metrics` and the live-run list open Huey's SQLite file read-only, so a
look never takes the writer's lock nor creates the file. A file not there yet, or one whose
tables Huey has not created yet, reads as an empty queue. sqlite3 is imported here, when a
command reads the file, so a command on Redis never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import sqlite3

T = TypeVar("T")

#: The queue file's name in BDP_HOME (Huey's SqliteStorage writes it).
QUEUE_FILE = "queue.db"


def read_queue_file(home: Path, read: Callable[[sqlite3.Connection], T], empty: T) -> T:
    """``read`` run on a read-only connection to ``home``'s queue file; ``empty`` when the
    file or its tables do not exist yet."""
    import sqlite3

    path = home / QUEUE_FILE
    if not path.exists():
        return empty
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            return read(db)
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return empty
