"""`bdp status` reads the broker without Huey: it must see exactly what Huey and State wrote."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.app import App
from bdp.config import Settings
from bdp.models import Outcome, Run, RunRecord
from bdp.session import StubAgentRunner
from bdp.status import LAST_SWEEP, collect_status


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = Settings(home=tmp_path / "home", redis_url=url, queue="st.atus-q")
    app = App.create(settings, agent=lambda s: StubAgentRunner())
    yield app
    if url:
        app.huey.storage.pool.disconnect()


def record(n: int) -> RunRecord:
    return RunRecord(f"r{n}", f"t-{n}", "/repo", f"Issue {n}", Outcome.DONE, "ok",
                     started=1000.0 + n, finished=2000.0 + n, cost_usd=0.01 * n)  # fmt: skip


def test_status_matches_what_huey_and_the_state_hold(app: App) -> None:
    # Given queued and scheduled tasks, two runs with heartbeats, outcomes and a sweep
    for n in range(7):
        app.tasks.run_issue("/repo", f"t-{n}", 1)
    retry = app.tasks.run_issue.s("/repo", "t-later", 1)
    retry.eta = datetime.datetime.now() + datetime.timedelta(hours=1)
    app.huey.add_schedule(retry)
    now = time.time()
    for n in (2, 1):
        app.state.register(Run(f"run{n}", f"t-{n}", "/repo", "x", "h", 1, "w", 1,
                               now - n, now + 60, now - 30))  # fmt: skip
    app.state.beat("run1", now)
    for n in range(15):
        app.state.record(record(n))
    app.state.put_meta(LAST_SWEEP, {"at": now, "reset": ["t-9"]})

    # When status reads the broker directly
    report = collect_status(app.settings, recent=10)

    # Then it agrees with Huey's own counts and bdp's state
    assert (report.queued, report.scheduled) == (app.huey.pending_count(), 1)
    assert report.queued == 7
    assert app.huey.scheduled_count() == 1
    assert [(r.run_id, r.heartbeat) for r in report.runs] == [
        (r.run_id, r.heartbeat) for r in app.state.runs()
    ]
    assert report.runs[1].heartbeat == now  # the beat, not the registered value
    assert report.recent == app.state.outcomes(limit=10)
    assert [r.run_id for r in report.recent] == [f"r{n}" for n in range(5, 15)]
    assert report.last_sweep == {"at": now, "reset": ["t-9"]}


def test_status_of_a_queue_never_used_is_empty(tmp_path: Path) -> None:
    report = collect_status(Settings(home=tmp_path / "fresh"))

    assert (report.queued, report.scheduled, report.runs, report.recent) == (0, 0, [], [])
    assert not (tmp_path / "fresh" / "queue.db").exists()  # looking creates nothing
