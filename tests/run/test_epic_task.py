"""Unit tests for bdp/run/epic_task.py: with ``epic_review = true`` a finished epic is not
closed by its last child's run but reviewed as its own task, closed on approval, given
follow-up children on findings, and left to a person once its rounds are used.

`work_on` runs with the stub agent as the reviewer, the bd stand-in and real git, in shared
isolation (the review's SDK session is tested in tests/agent/test_epic_review.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huey import MemoryHuey

from bdp.agent.session import StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.repo.beads import BdCli, FollowUp
from bdp.repo.epics import CHANGES_ASKED
from bdp.run.deps import RunDeps
from bdp.run.epic_task import epics_to_review
from bdp.run.work import work_on
from tests.conftest import git
from tests.support.beads import create_issue, run_bd_ok, show_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def queued() -> list[TaskArgs]:
    return []


@pytest.fixture
def deps(tmp_path: Path, queued: list[TaskArgs]) -> RunDeps:
    settings = Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="shared")

    def requeue(args: TaskArgs) -> str:
        queued.append(args)
        return f"task-{len(queued)}"

    return RunDeps(
        settings, State(MemoryHuey("test-epic-task")), StubAgentRunner(), requeue=requeue
    )


@pytest.fixture
def reviewed(repo: Path) -> Path:
    """The repo, with epic reviews on (two rounds of follow-ups) committed."""
    (repo / ".bdp.toml").write_text("epic_review = true\nepic_review_rounds = 2\n")
    git(repo, "add", ".bdp.toml")
    git(repo, "commit", "-qm", "review epics")
    return repo


def finish_child(deps: RunDeps, repo: Path, issue_id: str) -> RunRecord:
    """Work on ``issue_id`` with an agent that writes one file and says DONE."""
    deps.agent = StubAgentRunner(files={f"{issue_id}.txt": "done\n"})
    return work_on(TaskArgs(str(repo), issue_id, 1), "task-child", deps)


def review(deps: RunDeps, repo: Path, epic: str, reviewer: StubAgentRunner) -> RunRecord:
    deps.agent = reviewer
    return work_on(TaskArgs(str(repo), epic, 1), "task-epic", deps)


def epic_with_children(repo: Path, deps: RunDeps, count: int = 2) -> tuple[str, list[str]]:
    """An epic whose ``count`` children are all done (the review of it queued)."""
    epic = create_issue(repo, "Uploader", type="epic", acceptance="uploads resume after a crash")
    children = [create_issue(repo, f"Part {n}", parent=epic) for n in range(1, count + 1)]
    for child in children:
        assert finish_child(deps, repo, child).outcome is Outcome.DONE
    return epic, children


def test_the_last_childs_close_queues_the_epics_review_instead_of_closing_it(
    deps: RunDeps, reviewed: Path, queued: list[TaskArgs]
) -> None:
    # Given an epic with two children, reviews on
    epic = create_issue(reviewed, "Uploader", type="epic")
    first, second = (create_issue(reviewed, f"Part {n}", parent=epic) for n in (1, 2))

    # When the first child is done nothing is queued; when the second is, the epic's task is
    finish_child(deps, reviewed, first)
    assert queued == []
    finish_child(deps, reviewed, second)

    # Then the epic is still open, and its review is queued once
    assert show_issue(reviewed, epic)["status"] == "open"
    assert [(args.issue_id, args.attempt) for args in queued] == [(epic, 1)]


def test_an_approving_review_closes_the_epic_naming_its_children(
    deps: RunDeps, reviewed: Path
) -> None:
    # Given a finished epic
    epic, children = epic_with_children(reviewed, deps)
    reviewer = StubAgentRunner(outcome=Outcome.DONE, summary="the epic review approved it")

    # When its task runs and the reviewer approves
    record = review(deps, reviewed, epic, reviewer)

    # Then bd has it closed, with the children and the approval in the reason
    assert record.outcome is Outcome.DONE
    shown = show_issue(reviewed, epic)
    assert shown["status"] == "closed"
    assert shown["close_reason"] == (
        f"all 2 children closed: {children[0]}, {children[1]}; the epic review approved it"
    )
    # And the reviewer was given the epic, each child and the commit that names it
    [request] = reviewer.requests
    brief = request.epic
    assert brief is not None
    assert brief.epic.acceptance_criteria == "uploads resume after a crash"
    assert [child.issue.id for child in brief.children] == children
    assert all(child.commits for child in brief.children)
    assert f"{children[0]}.txt" in brief.change
    assert request.gate is None


def test_findings_become_children_of_the_epic_which_stays_open(
    deps: RunDeps, reviewed: Path, queued: list[TaskArgs]
) -> None:
    # Given a finished epic, and a reviewer that finds the resume test missing
    epic, _children = epic_with_children(reviewed, deps)
    missing = FollowUp(epic, "Test resuming an upload", "kill it mid-upload", parent=epic)
    summary = f"{CHANGES_ASKED} (round 1 of 2): no test resumes an upload"
    reviewer = StubAgentRunner(Outcome.FOLLOW_UPS, summary, report={"follow_ups": (missing,)})

    # When the review runs
    record = review(deps, reviewed, epic, reviewer)

    # Then the follow-up is a new open child of the epic (bd keeps one edge per pair, so
    # "child of" stands for "discovered from" here)
    assert record.outcome is Outcome.FOLLOW_UPS
    shown = json.loads(run_bd_ok(reviewed, "show", epic, "--include-dependents", "--json"))[0]
    new = [d for d in shown["dependents"] if d["title"] == "Test resuming an upload"]
    assert [(d["dependency_type"], d["status"]) for d in new] == [("parent-child", "open")]
    # And the epic is open, unclaimed, with a comment saying what the review asked
    assert (shown["status"], shown.get("assignee") or "") == ("open", "")
    texts = BdCli(reviewed, "bd").comment_texts(epic)
    assert any(CHANGES_ASKED in text and "no test resumes" in text for text in texts)
    # And when the follow-up is done, the epic's review is queued again
    queued.clear()
    finish_child(deps, reviewed, new[0]["id"])
    assert [args.issue_id for args in queued] == [epic]


def test_once_its_rounds_are_used_the_epic_is_left_to_a_person_without_a_session(
    deps: RunDeps, reviewed: Path
) -> None:
    # Given a finished epic whose review asked for changes three times (two rounds + last)
    epic, _children = epic_with_children(reviewed, deps, count=1)
    for round_number in range(3):
        run_bd_ok(reviewed, "comment", epic, f"bdp: {CHANGES_ASKED} ({round_number})")
    reviewer = StubAgentRunner()

    # When its task runs
    record = review(deps, reviewed, epic, reviewer)

    # Then no review ran, the epic is open and unclaimed, and the janitor would not queue it
    assert reviewer.requests == []
    assert record.outcome is Outcome.SKIPPED
    assert "a person decides" in record.summary
    shown = show_issue(reviewed, epic)
    assert (shown["status"], shown.get("assignee") or "") == ("open", "")
    assert epics_to_review(BdCli(reviewed, "bd"), rounds=2) == []


def test_an_epic_with_open_children_is_given_back_without_a_review(
    deps: RunDeps, reviewed: Path
) -> None:
    epic = create_issue(reviewed, "Uploader", type="epic")
    create_issue(reviewed, "Part 1", parent=epic)
    reviewer = StubAgentRunner()

    record = review(deps, reviewed, epic, reviewer)

    assert (record.outcome, reviewer.requests) == (Outcome.SKIPPED, [])
    assert "open children" in record.summary
    assert show_issue(reviewed, epic)["status"] == "open"


def test_without_epic_review_the_epics_task_never_runs_a_session(deps: RunDeps, repo: Path) -> None:
    epic = create_issue(repo, "Uploader", type="epic")
    reviewer = StubAgentRunner()

    record = review(deps, repo, epic, reviewer)

    assert (record.outcome, reviewer.requests) == (Outcome.SKIPPED, [])
    assert show_issue(repo, epic)["status"] == "open"
