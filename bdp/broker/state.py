"""bdp's shared bookkeeping: enqueue markers, the run registry, heartbeats, outcome records.

It lives in the broker beside the queue (a Redis hash per namespace, or SQLite kv rows), so
every feature works on both and every consumer sharing the broker sees the same state.
Heartbeats are kept apart from run records so a beat can never resurrect a run the janitor
has taken away: removing a run (`unregister`) is the single atomic step that decides who owns
its clean-up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from huey import Huey
from huey.constants import EmptyData

from bdp.broker.inbox import Inbox
from bdp.broker.keys import (
    DURATION_BUCKETS,
    PAUSE_KEY,
    SPENT_COUNTER,
    issue_cost_key,
    marker_key,
    outcome_key,
)
from bdp.broker.storage import namespace_storage
from bdp.config import OUTCOMES_KEPT
from bdp.models import Activity, Run, RunRecord
from bdp.redact import scrub_tree

MarkerState = Literal["queued", "running"]

__all__ = ["Marker", "MarkerState", "State", "marker_key", "taker"]


@dataclass(frozen=True)
class Marker:
    """Says an issue of a repo is queued or running, so it is never queued twice."""

    repo: str
    issue_id: str
    state: MarkerState
    task_id: str
    since: float
    payload: dict[str, Any] | None = None  # the task's arguments, to queue it again if lost
    taken_by: str | None = None  # "host:pid" of the worker that took the task off the queue
    taken_at: float | None = None


def taker(host: str, pid: int) -> str:
    """How a marker names the worker process that took its task (see `State.mark_taken`)."""
    return f"{host}:{pid}"


def _load(raw: bytes | str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


class State:
    """Typed access to bdp's namespaces; every write is one atomic storage call."""

    def __init__(self, huey: Huey) -> None:
        self._markers = namespace_storage(huey, "markers")
        self._runs = namespace_storage(huey, "runs")
        self._beats = namespace_storage(huey, "beats")
        self._progress = namespace_storage(huey, "progress")
        self._outcomes = namespace_storage(huey, "outcomes")
        self._repos = namespace_storage(huey, "repos")
        self._meta = namespace_storage(huey, "meta")
        self._counters = namespace_storage(huey, "counters")
        self.inbox = Inbox(huey)  # what `bdp say` and `bdp stop` send running runs

    # -- enqueue markers ---------------------------------------------------------------
    def mark_queued(
        self, repo: str, issue_id: str, task_id: str, payload: dict[str, Any] | None = None
    ) -> bool:
        """Atomically take the marker; False when the issue is already queued or running.

        ``payload`` (the task's arguments) lets the janitor queue the issue again should the
        task be lost after a worker took it off the queue.
        """
        marker = {"state": "queued", "task_id": task_id, "since": time.time(), "payload": payload}
        return bool(self._markers.put_if_empty(marker_key(repo, issue_id), _dump(marker)))

    def mark_running(self, repo: str, issue_id: str, task_id: str) -> None:
        marker = {"state": "running", "task_id": task_id, "since": time.time()}
        self._markers.put_data(marker_key(repo, issue_id), _dump(marker))

    def remark_queued(
        self, repo: str, issue_id: str, task_id: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Point the marker at a new task (a requeue), whatever it said before."""
        marker = {"state": "queued", "task_id": task_id, "since": time.time(), "payload": payload}
        self._markers.put_data(marker_key(repo, issue_id), _dump(marker))

    def mark_taken(self, repo: str, issue_id: str, task_id: str, by: str) -> None:
        """Say a worker holds the task between the dequeue and the claim, so a sweep does not
        take it for lost while that worker lives (a lost one is queued again)."""
        self._retake(repo, issue_id, task_id, {"taken_by": by, "taken_at": time.time()})

    def release_taken(self, repo: str, issue_id: str, task_id: str) -> None:
        """The worker gave the task up unclaimed (bd failed): the janitor queues it again."""
        self._retake(repo, issue_id, task_id, {"taken_by": None, "taken_at": None})

    def _retake(self, repo: str, issue_id: str, task_id: str, fields: dict[str, Any]) -> None:
        key = marker_key(repo, issue_id)
        raw = self._markers.peek_data(key)
        if raw is EmptyData:
            return
        marker = _load(raw)
        if marker["state"] == "queued" and marker["task_id"] == task_id:
            self._markers.put_data(key, _dump({**marker, **fields}))

    def unmark(self, repo: str, issue_id: str) -> None:
        self._markers.delete_data(marker_key(repo, issue_id))

    def marker(self, repo: str, issue_id: str) -> Marker | None:
        key = marker_key(repo, issue_id)
        raw = self._markers.peek_data(key)
        return None if raw is EmptyData else _marker(key, raw)

    def markers(self) -> list[Marker]:
        return [_marker(k, v) for k, v in self._markers.result_items().items()]

    # -- run registry and heartbeats ---------------------------------------------------
    def register(self, run: Run) -> None:
        self._runs.put_data(run.run_id, _dump(run.to_json()))
        self.beat(run.run_id, run.heartbeat)

    def beat(self, run_id: str, at: float | None = None) -> None:
        self._beats.put_data(run_id, str(time.time() if at is None else at).encode())

    def has_run(self, run_id: str) -> bool:
        return bool(self._runs.has_data_for_key(run_id))

    def unregister(self, run_id: str) -> Run | None:
        """Remove the run atomically; only the caller that gets it back owns its clean-up."""
        raw = self._runs.pop_data(run_id)
        self._beats.delete_data(run_id)
        self._progress.delete_data(run_id)
        self.inbox.clear(run_id)
        return None if raw is EmptyData else Run.from_json(_load(raw))

    def runs(self) -> list[Run]:
        """Registered runs, oldest first, each with its latest heartbeat."""
        beats = {k: float(v) for k, v in self._beats.result_items().items()}
        runs = [Run.from_json(_load(v)) for v in self._runs.result_items().values()]
        for run in runs:
            run.heartbeat = beats.get(run.run_id, run.heartbeat)
        return sorted(runs, key=lambda r: r.started)

    def report_activity(self, run_id: str, activity: Activity) -> None:
        """Publish what a run's session is doing (written by its watchdog while it runs)."""
        if self.has_run(run_id):  # never recreate progress for a run already taken away
            self._progress.put_data(run_id, _dump(activity.to_json()))

    def activities(self) -> dict[str, Activity]:
        """The latest published activity of each running run."""
        items = self._progress.result_items().items()
        return {run_id: Activity.from_json(_load(raw)) for run_id, raw in items}

    def orphan_beats(self) -> list[str]:
        """Heartbeats of runs no longer registered (a beat racing an unregister)."""
        runs = set(self._runs.result_items())
        return [run_id for run_id in self._beats.result_items() if run_id not in runs]

    def drop_beat(self, run_id: str) -> None:
        self._beats.delete_data(run_id)

    # -- outcomes ----------------------------------------------------------------------
    def record(self, record: RunRecord) -> None:
        """Keep the outcome (trimmed to the newest OUTCOMES_KEPT) and count it for metrics."""
        self._count(record)
        kept = scrub_tree(record.to_json())  # summaries and reasons are the agent's words
        self._outcomes.put_data(outcome_key(record.finished, record.run_id), _dump(kept))
        if self._outcomes.result_store_size() > OUTCOMES_KEPT:
            self._trim(self._outcomes.result_items().keys())

    def _trim(self, keys: Iterable[str]) -> None:
        for key in sorted(keys)[:-OUTCOMES_KEPT]:
            self._outcomes.delete_data(key)

    def outcomes(self, limit: int | None = None) -> list[RunRecord]:
        """Outcome records, oldest first; the newest ``limit`` when given."""
        items = sorted(self._outcomes.result_items().items())
        if limit is not None:
            items = items[-limit:] if limit else []
        return [RunRecord.from_json(_load(v)) for _, v in items]

    def last_attempt(self, repo: str, issue_id: str) -> int:
        """The newest attempt of the issue the outcomes remember (1 when none)."""
        found = [r.attempt for r in self.outcomes() if (r.repo, r.issue_id) == (repo, issue_id)]
        return max(found, default=1)

    def _count(self, record: RunRecord) -> None:
        incr = self._counters.incr
        incr(f"outcomes:{record.outcome.value}")
        if record.landed:
            incr("landed")
        cost = round((record.cost_usd + record.review_cost_usd) * 1_000_000)
        incr(SPENT_COUNTER, cost)
        if cost:
            incr(issue_cost_key(record.repo, record.issue_id), cost)
        incr("input_tokens", record.input_tokens)
        incr("output_tokens", record.output_tokens)
        if record.lock_waits:
            incr("lock_waits", record.lock_waits)
            incr("lock_wait_ms", round(record.lock_wait_seconds * 1000))
            incr("lock_timeouts", record.lock_timeouts)
        if record.outcome.ran_session:
            incr("duration_count")
            incr("duration_ms_sum", round(record.duration * 1000))
            for bound in DURATION_BUCKETS:
                if record.duration <= bound:
                    incr(f"duration_le:{bound}")

    def count(self, key: str, amount: int = 1) -> None:
        """Add to a metrics counter (janitor actions and the like)."""
        self._counters.incr(key, amount)

    def counters(self, keys: Iterable[str]) -> dict[str, int]:
        """Current values of counters (an atomic add of zero reads one)."""
        return {key: int(self._counters.incr(key, 0)) for key in keys}

    def spent_usd(self) -> float:
        """USD spent by every session recorded on this queue (the queue budget's measure)."""
        return self.counters([SPENT_COUNTER])[SPENT_COUNTER] / 1_000_000

    def issue_cost(self, repo: str, issue_id: str) -> float:
        """USD one issue's recorded attempts have cost."""
        key = issue_cost_key(repo, issue_id)
        return self.counters([key])[key] / 1_000_000

    # -- the queue-wide pause ------------------------------------------------------------
    def set_pause(self, pause: dict[str, Any]) -> None:
        self.put_meta(PAUSE_KEY, pause)

    def pause(self) -> dict[str, Any] | None:
        return self.get_meta(PAUSE_KEY)

    # -- repositories and janitor bookkeeping --------------------------------------------
    def remember_repo(self, repo: str) -> None:
        """Note a repo bdp has queued work for, so the janitor knows where to look."""
        self._repos.put_data(repo, str(time.time()).encode())

    def repos(self) -> list[str]:
        return sorted(self._repos.result_items())

    def claim_once(self, key: str, expires: float | None = None) -> bool:
        """True for exactly one caller per key: makes a janitor action happen once.

        With ``expires`` (seconds), a claim that old counts as abandoned (its claimer died
        before it acted, or before it gave the key back) and the key can be claimed again.
        """
        name, now = f"once:{key}", time.time()
        if self._meta.put_if_empty(name, str(now).encode()):
            return True
        if expires is None:
            return False
        raw = self._meta.peek_data(name)
        try:
            claimed = float(raw) if raw is not EmptyData else now
        except (TypeError, ValueError):
            claimed = 0.0  # an old-style claim without a time: long abandoned
        if now - claimed < expires:
            return False
        self._meta.delete_data(name)
        return bool(self._meta.put_if_empty(name, str(now).encode()))

    def release_once(self, key: str) -> None:
        """Give back a `claim_once` key whose action failed, so a later caller can retry it."""
        self._meta.delete_data(f"once:{key}")

    def put_meta(self, key: str, value: dict[str, Any]) -> None:
        self._meta.put_data(key, _dump(value))

    def get_meta(self, key: str) -> dict[str, Any] | None:
        raw = self._meta.peek_data(key)
        return None if raw is EmptyData else _load(raw)


def _marker(key: str, raw: bytes | str) -> Marker:
    repo, _, issue_id = key.rpartition("::")
    data = _load(raw)
    since, payload = float(data["since"]), data.get("payload")
    taken = data.get("taken_by"), data.get("taken_at")
    return Marker(repo, issue_id, data["state"], data["task_id"], since, payload, *taken)
