"""`bdp run` in-process: what it does when the queue is held."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bdp.agent.session import StubAgentRunner
from bdp.broker.hold import Hold
from bdp.cli.oneshot import RunEvents, RunOptions, run_repo
from bdp.config import Settings
from bdp.models import Outcome, RunRecord
from bdp.queue.app import App
from tests.support.beads import create_issue, show_issue

pytestmark = [pytest.mark.usefixtures("stand_in_bd"), pytest.mark.timeout(60)]


def test_a_spent_budget_ends_bdp_run_with_its_issues_still_queued(
    tmp_path: Path, repo: Path
) -> None:
    # Given a queue whose budget is already spent, and two ready issues
    settings = Settings(home=tmp_path / "home", budget_usd=0.05, heartbeat=0.05)
    app = App.create(settings, agent=lambda _s: StubAgentRunner(files={"x.txt": "x\n"}))
    app.state.record(RunRecord("r0", "t-old", str(repo), "x", Outcome.DONE, "ok", cost_usd=0.05))
    issues = [create_issue(repo, f"issue {n}") for n in range(2)]
    holds: list[Hold | None] = []

    # When `bdp run` works on the repo
    started = time.monotonic()
    records = run_repo(app, repo, RunOptions(), RunEvents(held=holds.append))

    # Then it says why it holds and returns soon, with nothing run and nothing dropped
    assert time.monotonic() - started < 30
    assert records == []
    [hold] = holds
    assert hold is not None
    assert hold.kind == "budget"
    assert all(show_issue(repo, issue)["status"] == "open" for issue in issues)
    assert sorted(m.issue_id for m in app.state.markers()) == sorted(issues)
    assert app.huey.pending_count() + app.huey.scheduled_count() == 2
