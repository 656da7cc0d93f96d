"""Unit tests for what an agent's report asks of the finishing run: closing without code
(bdp/run/no_code.py), filing follow-ups (bdp/run/follow_ups.py), and a deadlock victim's
wait for its blocker (bdp/run/finish.py). Both isolation modes; the stub agent, the bd
stand-in and real git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey

from bdp.agent.session import StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.repo.beads import FollowUp
from bdp.run.deps import RunDeps
from bdp.run.work import work_on
from tests.support.beads import create_issue, run_bd_ok, show_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture(params=["shared", "worktree"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation=request.param)


def work(repo: Path, settings: Settings, issue_id: str, agent: StubAgentRunner) -> RunRecord:
    state = State(MemoryHuey("claims"))
    assert state.mark_queued(str(repo), issue_id, "task-1")
    return work_on(TaskArgs(str(repo), issue_id), "task-1", RunDeps(settings, state, agent))


def claim(outcome: Outcome, summary: str, **report: Any) -> StubAgentRunner:
    return StubAgentRunner(outcome=outcome, summary=summary, report=report)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def comments_of(repo: Path, issue_id: str) -> str:
    return run_bd_ok(repo, "comments", issue_id, "--json")


# --- ALREADY_DONE and OBSOLETE --------------------------------------------------------------


def test_already_done_citing_a_commit_on_the_target_closes_the_issue_without_a_commit(
    repo: Path, settings: Settings
) -> None:
    # Given an issue whose change an earlier commit made
    issue_id = create_issue(repo, "Add a greeting")
    (repo / "hello.txt").write_text("hi\n")
    git(repo, "add", "hello.txt")
    git(repo, "commit", "-qm", "greeting")
    cited, before = git(repo, "rev-parse", "--short", "HEAD"), git(repo, "rev-parse", "HEAD")

    # When the agent says so, citing it
    record = work(repo, settings, issue_id, claim(Outcome.ALREADY_DONE, "hi", cited_commit=cited))

    # Then the issue is closed with the claim and the full commit, and nothing was committed
    assert record.outcome is Outcome.ALREADY_DONE
    issue = show_issue(repo, issue_id)
    assert issue["status"] == "closed"
    assert issue["close_reason"] == f"ALREADY_DONE: hi (commit {before[:12]})"
    assert git(repo, "rev-parse", "HEAD") == before
    assert record.commit == ""


@pytest.mark.parametrize(
    "cited", ["", "0000000deadbeef", "not-a-commit", "--show-toplevel", "HEAD", "main~0"]
)
def test_already_done_without_a_commit_on_the_target_fails_and_resets(
    repo: Path, settings: Settings, cited: str
) -> None:
    issue_id = create_issue(repo, "Add a greeting")

    record = work(repo, settings, issue_id, claim(Outcome.ALREADY_DONE, "hi", cited_commit=cited))

    assert record.outcome is Outcome.FAILED
    assert "ALREADY_DONE" in record.summary
    issue = show_issue(repo, issue_id)
    assert (issue["status"], issue.get("assignee", "")) == ("open", "")
    assert "FAILED on attempt 1: said ALREADY_DONE" in comments_of(repo, issue_id)


def test_already_done_citing_a_commit_only_on_another_branch_does_not_close(
    repo: Path, settings: Settings
) -> None:
    issue_id = create_issue(repo, "Add a greeting")
    git(repo, "checkout", "-qb", "side")
    (repo / "side.txt").write_text("side\n")
    git(repo, "add", "side.txt")
    git(repo, "commit", "-qm", "side work")
    side = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")

    record = work(repo, settings, issue_id, claim(Outcome.ALREADY_DONE, "s", cited_commit=side))

    assert record.outcome is Outcome.FAILED
    assert show_issue(repo, issue_id)["status"] == "open"


def test_obsolete_closes_the_issue_with_its_reason(repo: Path, settings: Settings) -> None:
    issue_id = create_issue(repo, "Fix the old uploader")

    record = work(repo, settings, issue_id, claim(Outcome.OBSOLETE, "the uploader was removed"))

    assert record.outcome is Outcome.OBSOLETE
    issue = show_issue(repo, issue_id)
    assert (issue["status"], issue["close_reason"]) == (
        "closed",
        "OBSOLETE: the uploader was removed",
    )


def test_a_no_code_claim_with_edits_is_a_done_whose_work_lands(
    repo: Path, settings: Settings
) -> None:
    issue_id = create_issue(repo, "Fix the old uploader")
    agent = StubAgentRunner(outcome=Outcome.OBSOLETE, summary="gone", files={"x.txt": "x\n"})

    record = work(repo, settings, issue_id, agent)

    assert record.outcome is Outcome.DONE
    assert "said OBSOLETE, but changed files" in record.summary
    assert git(repo, "show", "main:x.txt") == "x"
    assert show_issue(repo, issue_id)["status"] == "closed"


# --- follow-ups -------------------------------------------------------------------------------


def test_follow_ups_in_the_report_are_filed_once_as_discovered_from_the_issue(
    repo: Path, settings: Settings
) -> None:
    # Given a report listing two follow-ups, one of them filed already (a redo after a crash)
    issue_id = create_issue(repo, "Add a greeting")
    ups = (FollowUp("", "Document it", "In the README"), FollowUp("", "Translate it"))
    run_bd_ok(repo, "create", "Translate it", "--deps", f"discovered-from:{issue_id}")
    agent = StubAgentRunner(files={"hello.txt": "hi\n"}, report={"follow_ups": ups})

    # When the run finishes
    record = work(repo, settings, issue_id, agent)

    # Then only the new one was filed, linked to the issue, and the close reason names it
    assert record.outcome is Outcome.DONE
    listed = json.loads(run_bd_ok(repo, "list", "--json"))
    titles = sorted(item["title"] for item in listed)
    assert titles == ["Document it", "Translate it"]
    [new] = [item for item in listed if item["title"] == "Document it"]
    assert {"depends_on_id": issue_id, "type": "discovered-from"}.items() <= (
        new["dependencies"][0].items()
    )
    reason = str(show_issue(repo, issue_id)["close_reason"])
    assert reason.endswith(f"follow-ups filed: {new['id']}")


# --- deadlock victims -------------------------------------------------------------------------


def test_a_deadlock_victim_waits_for_its_blocker_in_bd(repo: Path, settings: Settings) -> None:
    # Given a run stopped as the victim of a deadlock with the run of another issue
    blocker = create_issue(repo, "Refactor the config")
    victim = create_issue(repo, "Add a setting")
    agent = claim(Outcome.BLOCKED, "deadlock: ...", waits_for=blocker)

    # When it finishes
    record = work(repo, settings, victim, agent)

    # Then it is open again, depends on the blocker, so bd ready leaves it out until then
    assert record.outcome is Outcome.BLOCKED
    assert show_issue(repo, victim)["status"] == "open"
    ready = [item["id"] for item in json.loads(run_bd_ok(repo, "ready", "--json"))]
    assert ready == [blocker]
    assert f"It now depends on {blocker}" in comments_of(repo, victim)
    run_bd_ok(repo, "close", blocker)
    assert victim in [item["id"] for item in json.loads(run_bd_ok(repo, "ready", "--json"))]
