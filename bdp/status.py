"""Read-only views of the queue for `bdp status`: cheap calls only (counts, small hashes).

The report is read straight from the broker through the names in `bdp.keys`, without
importing Huey (with SQLite not even redis-py, most of a cold start): status stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bdp.config import Settings
from bdp.keys import (
    namespace_name,
    redis_namespace_key,
    redis_queue_key,
    redis_schedule_key,
)
from bdp.locks import Lock, LockTable
from bdp.models import Run, RunRecord

#: Outcomes `bdp status` shows.
RECENT_OUTCOMES = 10
LAST_SWEEP = "last_sweep"


@dataclass
class StatusReport:
    """A snapshot of the queue, its runs and its recent results."""

    broker: str
    queued: int
    scheduled: int
    runs: list[Run]
    recent: list[RunRecord]
    last_sweep: dict[str, Any] | None = None
    locks: list[Lock] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "queued": self.queued,
            "scheduled": self.scheduled,
            "running": [
                {**asdict(run), "elapsed": round(self.now - run.started, 1),
                 "heartbeat_age": round(self.now - run.heartbeat, 1)}
                for run in self.runs
            ],
            "recent": [record.to_json() for record in self.recent],
            "locks": [
                {"path": lock.path, "since": lock.acquired, **asdict(lock.holder)}
                for lock in self.locks
            ],
            "janitor": self.last_sweep,
        }  # fmt: skip


def collect_status(settings: Settings, recent: int = RECENT_OUTCOMES) -> StatusReport:
    """Queue depth, scheduled retries, running runs and the newest outcomes."""
    report = _from_redis(settings, recent) if settings.redis_url else _from_sqlite(settings, recent)
    report.locks = [lock for table in LockTable.all_in(settings.home) for lock in table.locks()]
    return report


def _from_redis(settings: Settings, recent: int) -> StatusReport:
    import redis

    with redis.Redis.from_url(settings.redis_url or "") as client:
        return _read_redis(client, settings, recent)


def _read_redis(client: Any, settings: Settings, recent: int) -> StatusReport:
    queue = settings.queue
    pipe = client.pipeline(transaction=False)
    pipe.llen(redis_queue_key(queue))
    pipe.zcard(redis_schedule_key(queue))
    for namespace in ("runs", "beats"):
        pipe.hgetall(redis_namespace_key(queue, namespace))
    pipe.hkeys(redis_namespace_key(queue, "outcomes"))
    pipe.hget(redis_namespace_key(queue, "meta"), LAST_SWEEP)
    queued, scheduled, runs, beats, outcome_keys, sweep = pipe.execute()
    newest = sorted(outcome_keys)[-recent:] if recent else []
    records = client.hmget(redis_namespace_key(queue, "outcomes"), newest) if newest else []
    report = StatusReport(settings.broker_label, int(queued), int(scheduled), [], [])
    report.runs = _runs(runs.values(), {k.decode(): float(v) for k, v in beats.items()})
    report.recent = [RunRecord.from_json(json.loads(raw)) for raw in records if raw]
    report.last_sweep = json.loads(sweep) if sweep else None
    return report


def _runs(records: Iterable[bytes], beats: dict[str, float]) -> list[Run]:
    runs = [Run.from_json(json.loads(raw)) for raw in records]
    for run in runs:
        run.heartbeat = beats.get(run.run_id, run.heartbeat)
    return sorted(runs, key=lambda r: r.started)


def _from_sqlite(settings: Settings, recent: int) -> StatusReport:
    path = settings.home / "queue.db"
    report = StatusReport(settings.broker_label, 0, 0, [], [])
    if not path.exists():
        return report
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            _fill_from_sqlite(report, db, settings.queue, recent)
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
    return report


_COUNT = {
    "task": "select count(*) from task where queue = ?",
    "schedule": "select count(*) from schedule where queue = ?",
}
_ROWS = "select key, value from kv where queue = ?"


def _fill_from_sqlite(
    report: StatusReport, db: sqlite3.Connection, queue: str, recent: int
) -> None:
    def count(table: str) -> int:
        return int(db.execute(_COUNT[table], (queue,)).fetchone()[0])

    def rows(namespace: str, suffix: str = "", *args: object) -> list[tuple[str, bytes]]:
        return db.execute(_ROWS + suffix, (namespace_name(queue, namespace), *args)).fetchall()

    report.queued, report.scheduled = count("task"), count("schedule")
    beats = {key: float(value) for key, value in rows("beats")}
    report.runs = _runs((value for _, value in rows("runs")), beats)
    newest = rows("outcomes", " order by key desc limit ?", recent)
    report.recent = [RunRecord.from_json(json.loads(v)) for _, v in reversed(newest)]
    sweep = rows("meta", " and key = ?", LAST_SWEEP)
    report.last_sweep = json.loads(sweep[0][1]) if sweep else None
