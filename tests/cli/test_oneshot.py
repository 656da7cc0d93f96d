"""`bdp run` in-process: what it does when the queue is held, and its scope (--ids, --epic)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bdp.agent.session import SessionRequest, StubAgentRunner
from bdp.broker.hold import Hold
from bdp.cli.oneshot import RunEvents, RunOptions, run_repo
from bdp.config import Settings
from bdp.models import Outcome, RunRecord
from bdp.queue.app import App
from bdp.queue.enqueue import EnqueueOptions
from bdp.repo.selection import Scope
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


def one_file_per_issue() -> StubAgentRunner:
    """A stub agent that writes a file named after the issue it works on, then says DONE."""
    stub = StubAgentRunner(summary="did it")

    def write(request: SessionRequest) -> None:
        stub.files = {f"{request.issue.id}.txt": "done\n"}

    stub.on_run = write
    return stub


def run_scoped(tmp_path: Path, repo: Path, scope: Scope) -> list[RunRecord]:
    """`bdp run` with one agent on ``scope``, in this process."""
    settings = Settings(home=tmp_path / "home", heartbeat=0.05, isolation="shared")
    app = App.create(settings, agent=lambda _s: one_file_per_issue())
    options = RunOptions(EnqueueOptions(scope=scope), max_agents=1)
    return run_repo(app, repo, options, RunEvents())


def test_with_ids_a_run_picks_up_only_the_named_issues_a_close_unblocked(
    tmp_path: Path, repo: Path
) -> None:
    # Given a base issue and two that wait for it, only one of them named
    base = create_issue(repo, "Base")
    named = create_issue(repo, "Named", deps=base)
    unnamed = create_issue(repo, "Unnamed", deps=base)

    # When `bdp run --ids base,named` works on the repo
    records = run_scoped(tmp_path, repo, Scope((base, named)))

    # Then both named issues were done in this run, and the other was left alone
    assert sorted((r.issue_id, r.outcome) for r in records) == sorted(
        [(base, Outcome.DONE), (named, Outcome.DONE)]
    )
    assert show_issue(repo, unnamed)["status"] == "open"


def test_with_an_epic_a_run_does_its_descendants_only_and_closes_the_epic(
    tmp_path: Path, repo: Path
) -> None:
    # Given an epic whose second child waits for its first, and an outside issue waiting too
    epic = create_issue(repo, "Epic", type="epic")
    first = create_issue(repo, "First", parent=epic)
    second = create_issue(repo, "Second", parent=epic, deps=first)
    outside = create_issue(repo, "Outside", deps=first)

    # When `bdp run --epic` works on it
    records = run_scoped(tmp_path, repo, Scope(epic=epic))

    # Then both children were done, the outside issue was not, and bdp closed the epic
    assert [r.issue_id for r in records] == [first, second]
    assert show_issue(repo, outside)["status"] == "open"
    shown = show_issue(repo, epic)
    assert (shown["status"], shown["close_reason"]) == (
        "closed",
        f"all 2 children closed: {first}, {second}",
    )
