"""`bdp say` and `bdp stop` against a real consumer, the real Claude CLI and the fake API."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, marker
from tests.integration.test_recovery import (
    comments,
    consumer,
    hang_after_a_write,
    hang_then_finish,
    lock_count,
    script_attempt,
)
from tests.support.beads import create_issue, show_issue
from tests.support.fake_api import FakeApi, Text, ToolUse
from tests.support.processes import agent_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
STEER = "please use the helper in util.py"


def run_log(home: Path, issue_id: str) -> str:
    """The readable log of the issue's run, "" before it starts."""
    found = sorted((home / "logs").glob(f"*-{issue_id}-*.log"))
    return found[-1].read_text() if found else ""


def requests_carrying(api: FakeApi, text: str) -> int:
    return sum(1 for r in api.messages_requests() if text in json.dumps(r.body["messages"]))


def test_a_message_reaches_the_running_session_within_seconds(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, bdp_home: Path
) -> None:
    # Given a session busy in a Bash command that lasts until the test lets it end
    issue_id = create_issue(repo, "Listen while you work")
    go = tmp_path / "go"
    busy = ToolUse("Bash", {"command": f"while [ ! -e {go} ]; do sleep 0.1; done"})
    script_attempt(fake_api, issue_id, 1, [busy, Text("DONE: listened")])
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    worker = consumer(env, tmp_path, "worker")
    wait_for(lambda: "tool Bash" in run_log(bdp_home, issue_id), timeout=30)

    # When someone says something to it
    said = bdp(env, "say", issue_id, STEER)

    # Then its watchdog takes it within seconds and it is in the run's log
    assert said.returncode == 0, said.stderr
    assert f"of {issue_id}" in said.stdout
    wait_for(lambda: f"(bdp say): {STEER}" in run_log(bdp_home, issue_id), timeout=5)
    assert requests_carrying(fake_api, STEER) == 0  # the agent is still in its command
    # And once the command ends, the model sees it with the command's result
    go.touch()
    wait_for(lambda: requests_carrying(fake_api, STEER) > 0, timeout=20)
    assert "passed the waiting message on after the Bash call" in run_log(bdp_home, issue_id)
    wait_for(lambda: bdp_json(env, "status")["running"] == [], timeout=30)
    worker.stop()


def waits_on_its_reply(api: FakeApi, *issue_ids: str) -> bool:
    """Each issue's session has had its first tool call answered (it waits on the next)."""
    return all(len(api.messages_requests(match=marker(i))) >= 2 for i in issue_ids)


def test_stop_ends_a_hanging_run_and_with_requeue_its_next_attempt_does_the_work(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given two sessions, each hanging on the API after locking and writing its file (the
    # second one's next attempt would finish the work)
    left = create_issue(repo, "Stop and leave me")
    again = create_issue(repo, "Stop and start me over")
    hang_after_a_write(fake_api, left, "left.txt")
    hang_then_finish(fake_api, again, "again.txt", "finished after the restart")
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    worker = consumer(env, tmp_path, "worker")
    wait_for(lambda: waits_on_its_reply(fake_api, left, again), timeout=60)
    wait_for(lambda: lock_count(env) == 2, timeout=10)

    # When someone stops the first, and stops the second asking for it to be queued again
    assert bdp(env, "stop", left).returncode == 0
    assert bdp(env, "stop", again, "--requeue").returncode == 0

    # Then the second's next attempt does the work, on the same consumer, which lives on
    wait_for(lambda: show_issue(repo, again)["status"] == "closed", timeout=40)
    wait_for(lambda: bdp_json(env, "status")["running"] == [], timeout=20)
    assert worker.process is not None
    assert worker.process.poll() is None
    assert git(repo, "show", "main:again.txt") == "done right\n"
    # And both stopped runs ended INTERRUPTED, with comments naming who stopped them; the
    # first issue is open and unassigned; no lock, no CLI and no queued task is left
    report = bdp_json(env, "status")
    ended = sorted((r["issue_id"], r["attempt"], r["outcome"]) for r in report["recent"])
    assert ended == sorted(
        [(left, 1, "INTERRUPTED"), (again, 1, "INTERRUPTED"), (again, 2, "DONE")]
    )
    issue = show_issue(repo, left)
    assert (issue["status"], issue.get("assignee") or "") == ("open", "")
    by = rf"stopped by \S+@{re.escape(socket.gethostname())} with bdp stop"
    assert re.search(rf"INTERRUPTED on attempt 1: {by}\.", comments(repo, left))
    assert re.search(
        rf"INTERRUPTED on attempt 1: {by}; queued again as attempt 2", comments(repo, again)
    )
    assert (report["locks"], report["queued"]) == ([], 0)
    assert agent_processes(fake_api.url) == []
    worker.stop()
