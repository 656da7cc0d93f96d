"""Read-only views of the queue for `bdp status`: cheap calls only (counts, small hashes).

With SQLite the report is read straight from Huey's tables through the names in `bdp.keys`,
without importing Huey (and with it redis-py, most of a cold start): status stays fast.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bdp.config import Settings
from bdp.keys import namespace_name
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
    report = _from_state(settings, recent) if settings.redis_url else _from_sqlite(settings, recent)
    report.locks = [lock for table in LockTable.all_in(settings.home) for lock in table.locks()]
    return report


def _from_state(settings: Settings, recent: int) -> StatusReport:
    from bdp.app import App

    app = App.create(settings)
    return StatusReport(
        broker=settings.broker_label,
        queued=app.huey.pending_count(),
        scheduled=app.huey.scheduled_count(),
        runs=app.state.runs(),
        recent=app.state.outcomes(limit=recent),
        last_sweep=app.state.get_meta(LAST_SWEEP),
    )


def _from_sqlite(settings: Settings, recent: int) -> StatusReport:
    path = settings.home / "queue.db"
    report = StatusReport(settings.broker_label, 0, 0, [], [])
    if not path.exists():
        return report
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
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
    runs = (Run.from_json(json.loads(value)) for _, value in rows("runs"))
    report.runs = sorted(runs, key=lambda r: r.started)
    for run in report.runs:
        run.heartbeat = beats.get(run.run_id, run.heartbeat)
    newest = rows("outcomes", " order by key desc limit ?", recent)
    report.recent = [RunRecord.from_json(json.loads(v)) for _, v in reversed(newest)]
    sweep = rows("meta", " and key = ?", LAST_SWEEP)
    report.last_sweep = json.loads(sweep[0][1]) if sweep else None
