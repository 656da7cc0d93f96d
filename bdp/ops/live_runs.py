"""The runs registered right now, read from the broker without Huey (for `bdp logs -f`).

`bdp logs -f` asks every second which runs are still going, to pick up new ones and to stop
once they have all ended; a full `bdp status` read (outcomes, epics, locks) would be most of
that second. One hash on Redis, a few rows on SQLite.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bdp.broker.client import reading_client
from bdp.broker.keys import namespace_name, redis_namespace_key
from bdp.broker.queue_file import read_queue_file
from bdp.config import Settings
from bdp.models import Run

if TYPE_CHECKING:
    import sqlite3

_RUNS = "select value from kv where queue = ?"


def live_runs(settings: Settings) -> list[Run]:
    """The registered runs, oldest first."""
    raw = _from_redis(settings) if settings.redis_url else _from_sqlite(settings)
    return sorted((Run.from_json(json.loads(value)) for value in raw), key=lambda r: r.started)


def _from_redis(settings: Settings) -> list[bytes]:
    with reading_client(settings.redis_url or "") as client:
        return list(client.hvals(redis_namespace_key(settings.queue, "runs")))


def _from_sqlite(settings: Settings) -> list[bytes]:
    def read(db: sqlite3.Connection) -> list[bytes]:
        rows = db.execute(_RUNS, (namespace_name(settings.queue, "runs"),)).fetchall()
        return [value for (value,) in rows]

    return read_queue_file(settings.home, read, [])
