"""Read-only views of the queue for `bdp status`: cheap calls only (counts, small hashes).

The report is read straight from the broker through the names in `bdp.broker.keys`, without
importing Huey (with SQLite not even redis-py, most of a cold start): status stays fast.
What is queued is counted from the messages themselves (`bdp.ops.queued`), so the janitor or
a message no worker would run is never counted as a queued issue.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdp.broker.client import reading_client
from bdp.broker.consumers import ConsumerBeat, live_consumers
from bdp.broker.hold import Hold, budget_hold, hold_from_json
from bdp.broker.keys import (
    BUDGET_HOLD_KEY,
    LAST_SWEEP_KEY,
    PAUSE_KEY,
    SPENT_COUNTER,
    namespace_name,
    outcome_key,
    redis_bdp_prefix,
    redis_counter_key,
    redis_namespace_key,
    redis_schedule_key,
)
from bdp.broker.peek import QueuedTask
from bdp.broker.persistence import redis_persistence
from bdp.broker.queue_file import read_queue_file
from bdp.config import Settings
from bdp.errors import BdpError
from bdp.models import Activity, Outcome, Run, RunRecord
from bdp.ops import queued
from bdp.repo import known_repos
from bdp.repo.epics import EpicProgress, progress_of
from bdp.repo.locks import Lock, LockTable
from bdp.repo.shared_locks import SharedLockTable

if TYPE_CHECKING:
    import sqlite3

#: Outcomes `bdp status` shows.
RECENT_OUTCOMES = 10
#: Seconds of outcome history behind the day's totals and the "needs attention" list.
DAY = 86400.0


@dataclass(frozen=True)
class HostSummary:
    """One host of a shared queue, as status shows it."""

    host: str
    consumers: list[ConsumerBeat]
    running: list[str]  # the issues its runs work on

    @property
    def workers(self) -> int:
        return sum(c.workers for c in self.consumers)

    def last_beat(self) -> float | None:
        return max((c.beat for c in self.consumers), default=None)

    def to_json(self, now: float) -> dict[str, Any]:
        beat = self.last_beat()
        return {
            "host": self.host,
            "consumers": len(self.consumers),
            "workers": self.workers,
            "running": self.running,
            "beat_age": None if beat is None else round(now - beat, 1),
        }


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
    activities: dict[str, Activity] = field(default_factory=dict)
    day: list[RunRecord] = field(default_factory=list)  # outcomes of the last 24 hours
    hold: Hold | None = None
    spent_usd: float = 0.0
    budget_usd: float | None = None
    sandbox: bool = True  # as this command's settings say (BDP_SANDBOX)
    persistence: str = "sqlite"  # what the broker keeps on disk: aof, rdb, none, unknown
    exposed_home: str = ""  # BDP_HOME when others can read it (its mode allows group/other)
    epics: dict[str, list[EpicProgress]] = field(default_factory=dict)  # open ones, by repo
    consumers: list[ConsumerBeat] = field(default_factory=list)  # live ones, oldest first
    queued_issues: list[QueuedTask] = field(default_factory=list)  # the next ones to run

    def repos(self) -> list[str]:
        """The repositories this report mentions: more than one means a shared queue."""
        named = [
            *(run.repo for run in self.runs),
            *(task.repo for task in self.queued_issues),
            *(record.repo for record in (*self.recent, *self.attention())),
        ]
        return sorted({repo for repo in named if repo})

    def hosts(self) -> list[HostSummary]:
        """Each host serving the queue or running an issue: its consumers and their workers,
        its runs, and its newest consumer heartbeat (a host without one is gone, or has
        only runs left from before it went)."""
        names = sorted({c.host for c in self.consumers} | {r.host for r in self.runs})
        return [
            HostSummary(
                host,
                [c for c in self.consumers if c.host == host],
                [r.issue_id for r in self.runs if r.host == host],
            )
            for host in names
        ]

    def activity(self, run: Run) -> Activity:
        return self.activities.get(run.run_id) or Activity()

    def today(self) -> dict[str, Any]:
        """Totals since local midnight: closed, blocked, failed, USD spent."""
        midnight = time.mktime((*time.localtime(self.now)[:3], 0, 0, 0, 0, 0, -1))
        records = [r for r in self.day if r.finished >= midnight]
        return {
            "closed": sum(r.outcome.closes_issue for r in records),
            "blocked": sum(r.outcome is Outcome.BLOCKED for r in records),
            "failed": sum(r.outcome.counts_as_failed for r in records),
            "spent_usd": round(sum(r.cost_usd + r.review_cost_usd for r in records), 6),
        }

    def attention(self) -> list[RunRecord]:
        """Issues whose latest outcome in the last 24 hours needs a human, newest first."""
        latest: dict[tuple[str, str], RunRecord] = {}
        for record in self.day:
            latest[(record.repo, record.issue_id)] = record
        flagged = [r for r in latest.values() if r.outcome.needs_attention]
        return sorted(flagged, key=lambda r: r.finished, reverse=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "queued": self.queued,
            "scheduled": self.scheduled,
            "running": [
                {
                    **asdict(run),
                    "elapsed": round(self.now - run.started, 1),
                    "heartbeat_age": round(self.now - run.heartbeat, 1),
                    "progress": self.activity(run).to_json(),
                }
                for run in self.runs
            ],
            "recent": [record.to_json() for record in self.recent],
            "locks": [
                {"path": lock.path, "since": lock.acquired, **asdict(lock.holder)}
                for lock in self.locks
            ],
            "janitor": self.last_sweep,
            "hold": asdict(self.hold) if self.hold else None,
            "spent_usd": round(self.spent_usd, 6),
            "budget_usd": self.budget_usd,
            "sandbox": "on" if self.sandbox else "off",
            "persistence": self.persistence,
            "home_private": not self.exposed_home,
            "today": self.today(),
            "attention": [record.to_json() for record in self.attention()],
            "epics": [
                {"repo": repo, **epic.to_json()}
                for repo, found in self.epics.items()
                for epic in found
            ],
            "consumers": [
                {**consumer.to_json(), "beat_age": round(self.now - consumer.beat, 1)}
                for consumer in self.consumers
            ],
            "queued_issues": [task.to_json() for task in self.queued_issues],
            "hosts": [host.to_json(self.now) for host in self.hosts()],
        }


def collect_status(settings: Settings, recent: int = RECENT_OUTCOMES) -> StatusReport:
    """Queue depth, scheduled retries, running runs and the newest outcomes."""
    report = _from_redis(settings, recent) if settings.redis_url else _from_sqlite(settings, recent)
    report.locks += [lock for table in LockTable.all_in(settings.home) for lock in table.locks()]
    report.budget_usd = settings.budget_usd
    report.sandbox = settings.sandbox
    report.exposed_home = _exposed(settings.home)
    report.hold = report.hold or budget_hold(settings.budget_usd, report.spent_usd)
    report.epics = epics_in_progress(settings)
    report.consumers = live_consumers(report.consumers, report.now, settings.stale_after)
    return report


def epics_in_progress(settings: Settings) -> dict[str, list[EpicProgress]]:
    """The open epics with children of each repo this machine knows (another machine's clone
    is not here): one `bd list --all` per repo, whose items name their parent. bd's list has
    no child counts, so `bd list --type epic` would need a `bd show` of the epics after it.
    A repo bd cannot read is left out: status never fails for one."""
    repos = [repo for repo in known_repos.known(settings.home) if Path(repo).is_dir()]
    if not repos:
        return {}
    from bdp.repo.beads import BdCli  # only with repos to ask: its tenacity takes 40 ms

    found: dict[str, list[EpicProgress]] = {}
    for repo in repos:
        try:
            epics = progress_of(BdCli(Path(repo), settings.bd).everything())
        except BdpError:
            continue
        if epics:
            found[repo] = epics
    return found


def _exposed(home: Path) -> str:
    """``home`` with its mode when others may read it, else ""."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return ""
    return f"{home} (mode {mode:04o})" if mode & 0o077 else ""


def _from_redis(settings: Settings, recent: int) -> StatusReport:
    with reading_client(settings.redis_url or "") as client:
        return _read_redis(client, settings, recent)


def _read_redis(client: Any, settings: Settings, recent: int) -> StatusReport:
    queue = settings.queue
    pipe = client.pipeline(transaction=False)
    queued.ask_redis(pipe, queue)
    pipe.zcard(redis_schedule_key(queue))
    for namespace in ("runs", "beats", "progress", "consumers"):
        pipe.hgetall(redis_namespace_key(queue, namespace))
    pipe.hkeys(redis_namespace_key(queue, "outcomes"))
    pipe.hmget(redis_namespace_key(queue, "meta"), [LAST_SWEEP_KEY, PAUSE_KEY, BUDGET_HOLD_KEY])
    pipe.hget(redis_counter_key(queue, "counters"), SPENT_COUNTER)
    issues, scheduled, runs, beats, progress, consumers, outcome_keys, meta, spent = pipe.execute()
    report = StatusReport(settings.broker_label, 0, int(scheduled), [], [])
    report.queued, report.queued_issues = queued.from_redis(issues)
    report.consumers = _consumers(consumers.values())
    keys = sorted(k.decode() for k in outcome_keys)
    since = outcome_key(report.now - DAY, "")
    wanted = sorted({*keys[-recent:], *(k for k in keys if k >= since)} if recent else set())
    raw = client.hmget(redis_namespace_key(queue, "outcomes"), wanted) if wanted else []
    by_key = {k: RunRecord.from_json(json.loads(v)) for k, v in zip(wanted, raw, strict=True) if v}
    report.recent = [by_key[k] for k in keys[-recent:] if k in by_key] if recent else []
    report.day = [by_key[k] for k in wanted if k >= since and k in by_key]
    report.runs = _runs(runs.values(), {k.decode(): float(v) for k, v in beats.items()})
    report.activities = {k.decode(): Activity.from_json(json.loads(v)) for k, v in progress.items()}
    sweep, pause, budget = (json.loads(raw) if raw else None for raw in meta)
    report.last_sweep = sweep
    report.hold = _hold(pause, budget, report.now)
    report.spent_usd = int(spent or 0) / 1_000_000
    report.persistence = redis_persistence(client)
    report.locks = _shared_locks(client, queue)
    return report


def _shared_locks(client: Any, queue: str) -> list[Lock]:
    """The locks machines sharing this Redis hold (`bdp.repo.shared_locks`)."""
    tables = SharedLockTable.all_in(client, redis_bdp_prefix(queue))
    return [lock for table in tables for lock in table.locks()]


def _hold(pause: Any, budget: Any, now: float) -> Hold | None:
    """A pause in force, else a budget hold the workers reported recently."""
    return hold_from_json(pause, now) or hold_from_json(budget, now, kind="budget")


def _consumers(records: Iterable[bytes]) -> list[ConsumerBeat]:
    return [ConsumerBeat.from_json(json.loads(raw)) for raw in records]


def _runs(records: Iterable[bytes], beats: dict[str, float]) -> list[Run]:
    runs = [Run.from_json(json.loads(raw)) for raw in records]
    for run in runs:
        run.heartbeat = beats.get(run.run_id, run.heartbeat)
    return sorted(runs, key=lambda r: r.started)


def _from_sqlite(settings: Settings, recent: int) -> StatusReport:
    report = StatusReport(settings.broker_label, 0, 0, [], [])

    def fill(db: sqlite3.Connection) -> None:
        _fill_from_sqlite(report, db, settings.queue, recent)

    read_queue_file(settings.home, fill, None)
    return report


_SCHEDULED = "select count(*) from schedule where queue = ?"
_ROWS = "select key, value from kv where queue = ?"
_COUNTER = "select value from counter where queue = ? and key = ?"


def _fill_from_sqlite(
    report: StatusReport, db: sqlite3.Connection, queue: str, recent: int
) -> None:
    def rows(namespace: str, suffix: str = "", *args: object) -> list[tuple[str, bytes]]:
        return db.execute(_ROWS + suffix, (namespace_name(queue, namespace), *args)).fetchall()

    report.queued, report.queued_issues = queued.from_sqlite(db, queue)
    report.scheduled = int(db.execute(_SCHEDULED, (queue,)).fetchone()[0])
    report.consumers = _consumers(value for _, value in rows("consumers"))
    beats = {key: float(value) for key, value in rows("beats")}
    report.runs = _runs((value for _, value in rows("runs")), beats)
    report.activities = {k: Activity.from_json(json.loads(v)) for k, v in rows("progress")}
    newest = rows("outcomes", " order by key desc limit ?", recent)
    report.recent = [RunRecord.from_json(json.loads(v)) for _, v in reversed(newest)]
    day = rows("outcomes", " and key >= ? order by key", outcome_key(report.now - DAY, ""))
    report.day = [RunRecord.from_json(json.loads(v)) for _, v in day]
    wanted = (LAST_SWEEP_KEY, PAUSE_KEY, BUDGET_HOLD_KEY)
    meta = {k: json.loads(v) for k, v in rows("meta", " and key in (?, ?, ?)", *wanted)}
    report.last_sweep = meta.get(LAST_SWEEP_KEY)
    report.hold = _hold(meta.get(PAUSE_KEY), meta.get(BUDGET_HOLD_KEY), report.now)
    spent = db.execute(_COUNTER, (namespace_name(queue, "counters"), SPENT_COUNTER)).fetchone()
    report.spent_usd = int(spent[0]) / 1_000_000 if spent else 0.0
