"""Read-only views of the queue for `bdp status`: cheap calls only (counts, small hashes)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bdp.app import App
from bdp.models import Run, RunRecord

#: Outcomes `bdp status` shows.
RECENT_OUTCOMES = 10


@dataclass
class StatusReport:
    """A snapshot of the queue, its runs and its recent results."""

    broker: str
    queued: int
    scheduled: int
    runs: list[Run]
    recent: list[RunRecord]
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
        }  # fmt: skip


def collect_status(app: App, recent: int = RECENT_OUTCOMES) -> StatusReport:
    """Queue depth, scheduled retries, running runs and the newest outcomes."""
    return StatusReport(
        broker=app.settings.broker_label,
        queued=app.huey.pending_count(),
        scheduled=app.huey.scheduled_count(),
        runs=app.state.runs(),
        recent=app.state.outcomes(limit=recent),
    )
