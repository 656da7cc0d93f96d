"""Continuous mode: `--watch` picks up issues as they become ready, including discovered work."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import BDP, bdp_json, marker
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, Text, ToolUse
from tests.support.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def start(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [BDP, *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    return process, out


def test_run_watch_does_the_follow_up_work_an_agent_files(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given an issue whose agent files a follow-up with bdp's tool (its sandbox cannot write
    # bd's database; the worker files it, discovered from the issue)
    first = create_issue(repo, "Build the parser")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "parser.py", "content": "parse = 1\n"}),
            ToolUse(
                "mcp__bdp__file_issue",
                {"title": "Parser error messages", "description": "found while parsing"},
            ),
            Text("DONE: parser built; filed a follow-up"),
        ],
        match=marker(first),
    )
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "errors.py", "content": "errors = 1\n"}),
            Text("DONE: error messages"),
        ]
    )

    # When `bdp run --watch` works on the repo
    process, out = start(env, tmp_path, "run", str(repo), "-n", "1", "--watch", "--interval", "1s")
    try:
        wait_for(lambda: ": error messages" in out.read_text(), timeout=120)  # its DONE line
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)

    # Then the follow-up was picked up and done too, and Ctrl-C ended the run cleanly
    issues = bdp_json(env, "status")["recent"]
    assert [r["outcome"] for r in issues] == ["DONE", "DONE"]
    follow_up = issues[1]["issue_id"]
    assert follow_up != first
    assert show_issue(repo, follow_up)["status"] == "closed"
    assert "discovered-from" in run_bd_ok(repo, "show", follow_up, "--json")
    assert process.returncode == 0, out.read_text()
    assert "2 closed" in out.read_text()
    assert "Traceback" not in out.read_text()


def test_enqueue_watch_queues_issues_as_they_appear(
    env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    create_issue(repo, "Already there")
    process, out = start(env, tmp_path, "enqueue", str(repo), "--watch", "--interval", "1s")
    try:
        wait_for(lambda: bdp_json(env, "status")["queued"] == 1, timeout=30)
        later = create_issue(repo, "Filed later")
        wait_for(lambda: bdp_json(env, "status")["queued"] == 2, timeout=30)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)

    assert later in out.read_text()
    assert process.returncode == 0
    assert "Traceback" not in out.read_text()
