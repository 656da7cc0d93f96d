"""Unit tests for bdp/run/closing.py: the close at the end of a DONE run, and the epic it may
finish. `work_on` runs with the stub agent, the bd stand-in and real git, in shared isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
from huey import MemoryHuey

from bdp.agent.session import StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.run.deps import RunDeps
from bdp.run.work import work_on
from tests.support.beads import bd_calls, create_issue, run_bd_ok, show_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def deps(tmp_path: Path) -> RunDeps:
    settings = Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="shared")
    return RunDeps(settings, State(MemoryHuey("test-closing")), StubAgentRunner())


def finish_one(deps: RunDeps, repo: Path, issue_id: str) -> RunRecord:
    """Work on ``issue_id`` with an agent that writes one file and says DONE."""
    deps.agent = StubAgentRunner(files={f"{issue_id}.txt": "done\n"})
    return work_on(TaskArgs(str(repo), issue_id, 1), "task-1", deps)


def test_the_run_that_closes_an_epics_last_open_child_closes_the_epic(
    deps: RunDeps, repo: Path
) -> None:
    # Given an epic with two open children
    epic = create_issue(repo, "Uploader", type="epic")
    first = create_issue(repo, "Retry", parent=epic)
    second = create_issue(repo, "Backoff", parent=epic)

    # When the first child is done, the epic stays open; when the second is, it closes
    assert finish_one(deps, repo, first).outcome is Outcome.DONE
    assert show_issue(repo, epic)["status"] == "open"
    assert finish_one(deps, repo, second).outcome is Outcome.DONE

    # Then bd has it closed, with a reason naming both children
    shown = show_issue(repo, epic)
    assert shown["status"] == "closed"
    assert shown["close_reason"] == f"all 2 children closed: {first}, {second}"


def test_closing_an_issue_without_a_parent_costs_one_bd_call_more(
    deps: RunDeps, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue_id = create_issue(repo, "Standalone")
    log = tmp_path / "bd.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(log))

    assert finish_one(deps, repo, issue_id).outcome is Outcome.DONE

    calls = [argv[0] for argv in bd_calls(log)]
    assert calls[calls.index("close") :] == ["close", "show"]


def test_closing_an_issue_enqueue_saw_without_a_parent_costs_no_bd_call_more(
    deps: RunDeps, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue_id = create_issue(repo, "Standalone")
    log = tmp_path / "bd.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(log))
    deps.agent = StubAgentRunner(files={f"{issue_id}.txt": "done\n"})

    record = work_on(TaskArgs(str(repo), issue_id, parent=""), "task-1", deps)

    assert record.outcome is Outcome.DONE
    assert [argv[0] for argv in bd_calls(log)] == ["update", "close"]


def test_the_parent_enqueue_saw_is_the_epic_closed_after_its_last_child(
    deps: RunDeps, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an epic whose only child was queued with the epic as its parent
    epic = create_issue(repo, "Epic", type="epic")
    child = create_issue(repo, "Only child", parent=epic)
    log = tmp_path / "bd.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(log))
    deps.agent = StubAgentRunner(files={f"{child}.txt": "done\n"})

    # When the child is done
    record = work_on(TaskArgs(str(repo), child, parent=epic), "task-1", deps)

    # Then the epic closed, without a `bd show` of the child to find it
    assert record.outcome is Outcome.DONE
    assert show_issue(repo, epic)["status"] == "closed"
    calls = bd_calls(log)
    assert [argv[0] for argv in calls[:2]] == ["update", "close"]
    assert [argv for argv in calls if argv[0] == "show" and child in argv] == []


def test_a_bd_failure_while_closing_the_epic_leaves_the_run_done(
    deps: RunDeps, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an epic's only child, and a bd whose `show` fails from now on
    epic = create_issue(repo, "Epic", type="epic")
    child = create_issue(repo, "Only child", parent=epic)
    monkeypatch.setenv("FAKE_BD_FAIL", "show")

    # When the child's run is done
    record = finish_one(deps, repo, child)

    # Then the child is closed and the run DONE; the epic waits for the janitor
    monkeypatch.delenv("FAKE_BD_FAIL")
    assert record.outcome is Outcome.DONE
    assert show_issue(repo, child)["status"] == "closed"
    assert show_issue(repo, epic)["status"] == "open"
    run_bd_ok(repo, "close", epic)  # bd itself now lets it close
