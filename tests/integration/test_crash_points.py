"""A consumer SIGKILLed at a named step of an issue's life, on real processes.

The stand-in bd kills the process that calls it, right before or right after one bd step
(`FAKE_BD_KILL_CALLER`, `FAKE_BD_KILL_CALLER_AFTER`), so the crash lands exactly there every
time. A second consumer then finishes: each issue ends closed exactly once with exactly one
commit, and nothing is left held.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bdp.repo.procs import pid_alive
from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, first_turns, script_write_then_done
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, ToolUse, tool_results
from tests.support.processes import HueyConsumer, agent_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
FAST_RECOVERY = {"BDP_JANITOR_INTERVAL": "1", "BDP_STALE_AFTER": "3", "BDP_HEARTBEAT": "0.5"}


def commits_of(repo: Path, issue_id: str) -> list[str]:
    """The commits on main carrying ``issue_id``'s Bdp-Issue trailer."""
    log = git(repo, "log", "main", "--format=%H %(trailers:key=Bdp-Issue,valueonly)")
    return [line.split()[0] for line in log.splitlines() if line.split()[1:] == [issue_id]]


def killed_at(env: dict[str, str], tmp_path: Path, hook: str, step: str) -> HueyConsumer:
    """A consumer that bd SIGKILLs at ``step`` (``hook`` says before or after it); waits
    until it is dead."""
    worker = HueyConsumer({**env, hook: step}, tmp_path / "killed.log", workers=1).start()
    wait_for(lambda: not pid_alive(worker.pid), timeout=90)
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    return worker


def finish_with_a_second_consumer(env: dict[str, str], repo: Path, issue_id: str) -> None:
    second = HueyConsumer(env, repo.parent / "second.log", workers=1).start()
    try:
        wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=90)
        wait_for(lambda: bdp_json(env, "status")["running"] == [], timeout=30)
    finally:
        second.stop()
    assert "Traceback" not in second.output()


def assert_nothing_held(env: dict[str, str], fake_api: FakeApi) -> None:
    report = bdp_json(env, "status")
    assert (report["locks"], report["running"], report["queued"]) == ([], [], 0)
    assert agent_processes(fake_api.url) == []


@pytest.mark.parametrize("isolation", ["worktree", "shared"])
def test_killed_between_landing_and_bd_close_the_issue_is_closed_not_redone(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, isolation: str
) -> None:
    # Given a session that finishes its issue, in a consumer that dies at `bd close`
    fast = {**env, **FAST_RECOVERY, "BDP_ISOLATION": isolation}
    issue_id = create_issue(repo, "Crash before close")
    script_write_then_done(fake_api, issue_id, "landed.txt")
    assert bdp(fast, "enqueue", str(repo)).returncode == 0
    killed_at(fast, tmp_path, "FAKE_BD_KILL_CALLER", "close")
    assert len(commits_of(repo, issue_id)) == 1, "the commit landed before the crash"
    assert show_issue(repo, issue_id)["status"] == "in_progress"

    # When another consumer takes over
    finish_with_a_second_consumer(fast, repo, issue_id)

    # Then its janitor closed the issue for the landed commit: no second session, no reset
    assert len(commits_of(repo, issue_id)) == 1
    assert first_turns(fake_api, issue_id) == 1
    assert "reset" not in run_bd_ok(repo, "comments", issue_id, "--json")
    assert [r["outcome"] for r in bdp_json(fast, "status")["recent"]] == ["DONE"]
    assert_nothing_held(fast, fake_api)


@pytest.mark.parametrize(
    "hook", ["FAKE_BD_KILL_CALLER", "FAKE_BD_KILL_CALLER_AFTER"], ids=["before", "after"]
)
def test_killed_at_the_claim_the_dequeued_task_is_not_lost(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, hook: str
) -> None:
    # Given a consumer that dequeued the task and dies right before (or after) claiming it
    fast = {**env, **FAST_RECOVERY}
    issue_id = create_issue(repo, "Crash at the claim")
    script_write_then_done(fake_api, issue_id, "claimed.txt")
    assert bdp(fast, "enqueue", str(repo)).returncode == 0
    killed_at(fast, tmp_path, hook, "update --claim")
    assert bdp_json(fast, "status")["queued"] == 0, "the task was off the queue"

    # When another consumer takes over
    finish_with_a_second_consumer(fast, repo, issue_id)

    # Then the issue was worked once and closed with one commit
    assert len(commits_of(repo, issue_id)) == 1
    assert first_turns(fake_api, issue_id) == 1
    assert_nothing_held(fast, fake_api)


def test_bd_close_failing_after_landing_leaves_the_close_to_the_janitor(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a consumer whose bd refuses every `bd close` (retries included)
    fast = {**env, **FAST_RECOVERY}
    issue_id = create_issue(repo, "Close keeps failing")
    script_write_then_done(fake_api, issue_id, "refused.txt")
    assert bdp(fast, "enqueue", str(repo)).returncode == 0
    failing = HueyConsumer({**fast, "FAKE_BD_FAIL": "close"}, tmp_path / "failing.log").start()
    wait_for(lambda: commits_of(repo, issue_id), timeout=90)
    wait_for(lambda: bdp_json(fast, "status")["running"] == [], timeout=60)
    failing.stop()

    # Then the issue was not reset: it waits, in progress, with its landing noted
    assert show_issue(repo, issue_id)["status"] == "in_progress"
    notes = list((Path(fast["BDP_HOME"]) / "landings").glob("*"))
    assert len(notes) == 1
    assert json.loads(notes[0].read_text())["issue_id"] == issue_id

    # And once bd works again, the janitor closes it, without a second session
    finish_with_a_second_consumer(fast, repo, issue_id)
    assert len(commits_of(repo, issue_id)) == 1
    assert first_turns(fake_api, issue_id) == 1
    assert_nothing_held(fast, fake_api)


def test_killed_right_after_an_epics_last_child_closed_the_epic_is_still_reviewed_once(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a repo that reviews its epics, an epic's only child, and a reviewer that approves
    (repo / ".bdp.toml").write_text("epic_review = true\n")
    git(repo, "add", ".bdp.toml")
    git(repo, "commit", "-qm", "review epics")
    fast = {**env, **FAST_RECOVERY}
    epic = create_issue(repo, "Resumable uploads", type="epic")
    child = create_issue(repo, "Chunked upload", parent=epic)
    script_write_then_done(fake_api, child, "chunks.md")
    review = "Review the finished epic"
    fake_api.script([ToolUse("StructuredOutput", {"verdict": "APPROVE"})], match=review)
    assert bdp(fast, "enqueue", str(repo)).returncode == 0

    # When the consumer dies right after the child's `bd close`, before it queued the review
    killed_at(fast, tmp_path, "FAKE_BD_KILL_CALLER_AFTER", "close")
    assert show_issue(repo, child)["status"] == "closed"
    assert show_issue(repo, epic)["status"] == "open"

    # Then another consumer's janitor queues the review, and its approval closes the epic
    finish_with_a_second_consumer(fast, repo, epic)
    assert "the epic review approved it" in str(show_issue(repo, epic)["close_reason"])
    sessions = [r for r in fake_api.messages_requests(match=review) if not tool_results(r.body)]
    assert len(sessions) == 1
    assert len(commits_of(repo, child)) == 1
    assert_nothing_held(fast, fake_api)
