"""bdp's shared bookkeeping: enqueue markers, the run registry and outcome records.

It lives in the broker beside the queue (a Redis hash per namespace, or SQLite kv rows), so
every feature works on both and every consumer sharing the broker sees the same state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from huey import Huey
from huey.constants import EmptyData

from bdp.config import OUTCOMES_KEPT
from bdp.models import Run, RunRecord
from bdp.queue import namespace_storage

MarkerState = Literal["queued", "running"]


def marker_key(repo: str, issue_id: str) -> str:
    """The key of one (repo, issue) enqueue marker."""
    return f"{repo}::{issue_id}"


@dataclass(frozen=True)
class Marker:
    """Says an issue of a repo is queued or running, so it is never queued twice."""

    repo: str
    issue_id: str
    state: MarkerState
    task_id: str
    since: float


def _load(raw: bytes | str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


class State:
    """Typed access to the three namespaces; all writes are single atomic storage calls."""

    def __init__(self, huey: Huey) -> None:
        self._markers = namespace_storage(huey, "markers")
        self._runs = namespace_storage(huey, "runs")
        self._outcomes = namespace_storage(huey, "outcomes")

    # -- enqueue markers ---------------------------------------------------------------
    def mark_queued(self, repo: str, issue_id: str, task_id: str) -> bool:
        """Atomically take the marker; False when the issue is already queued or running."""
        marker = {"state": "queued", "task_id": task_id, "since": time.time()}
        return bool(self._markers.put_if_empty(marker_key(repo, issue_id), _dump(marker)))

    def mark_running(self, repo: str, issue_id: str, task_id: str) -> None:
        marker = {"state": "running", "task_id": task_id, "since": time.time()}
        self._markers.put_data(marker_key(repo, issue_id), _dump(marker))

    def unmark(self, repo: str, issue_id: str) -> None:
        self._markers.delete_data(marker_key(repo, issue_id))

    def marker(self, repo: str, issue_id: str) -> Marker | None:
        key = marker_key(repo, issue_id)
        raw = self._markers.peek_data(key)
        return None if raw is EmptyData else _marker(key, raw)

    def markers(self) -> list[Marker]:
        return [_marker(k, v) for k, v in self._markers.result_items().items()]

    # -- run registry ------------------------------------------------------------------
    def register(self, run: Run) -> None:
        self._runs.put_data(run.run_id, _dump(run.to_json()))

    def unregister(self, run_id: str) -> None:
        self._runs.delete_data(run_id)

    def runs(self) -> list[Run]:
        items = self._runs.result_items().values()
        return sorted((Run.from_json(_load(v)) for v in items), key=lambda r: r.started)

    # -- outcomes ----------------------------------------------------------------------
    def record(self, record: RunRecord) -> None:
        """Keep the outcome; trims to the newest OUTCOMES_KEPT records."""
        key = f"{record.finished:017.6f}:{record.run_id}"
        self._outcomes.put_data(key, _dump(record.to_json()))
        if self._outcomes.result_store_size() > OUTCOMES_KEPT:
            self._trim(self._outcomes.result_items().keys())

    def _trim(self, keys: Iterable[str]) -> None:
        for key in sorted(keys)[:-OUTCOMES_KEPT]:
            self._outcomes.delete_data(key)

    def outcomes(self, limit: int | None = None) -> list[RunRecord]:
        """Outcome records, oldest first; the newest ``limit`` when given."""
        items = sorted(self._outcomes.result_items().items())
        if limit is not None:
            items = items[-limit:]
        return [RunRecord.from_json(_load(v)) for _, v in items]


def _marker(key: str, raw: bytes | str) -> Marker:
    repo, _, issue_id = key.rpartition("::")
    data = _load(raw)
    return Marker(repo, issue_id, data["state"], data["task_id"], float(data["since"]))
