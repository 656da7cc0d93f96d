"""ClaudeAgentRunner on the real Claude CLI against the fake Messages API."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.agent import ClaudeAgentRunner
from bdp.config import Settings
from bdp.models import Issue, Outcome
from bdp.session import SessionRequest, SessionResult
from bdp.transcript import Redactor, Transcript
from tests.support.fake_api import Delay, FakeApi, Status, Text, ToolUse, cli_env
from tests.support.processes import agent_processes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ISSUE = Issue(id="t-abc", title="Add a greeting", description="Write hello.txt")


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    with FakeApi() as fake:
        for name, value in cli_env(fake.url, tmp_path / "claude-home").items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


def run(workdir: Path, tmp_path: Path, timeout: float = 60, **settings: object) -> SessionResult:
    config = Settings(home=tmp_path / "home", retry_wait=0.05, **settings)  # type: ignore[arg-type]
    transcript = Transcript(tmp_path / "run.log", Redactor([]))
    request = SessionRequest("run123", ISSUE, workdir, time.time() + timeout, transcript)
    try:
        return ClaudeAgentRunner(config).run(request)
    finally:
        transcript.close()


def test_a_done_session_reports_its_files_cost_and_summary(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([ToolUse("Write", {"file_path": "hello.txt", "content": "hi\n"}),
                Text("All good.\nDONE: wrote hello.txt")])  # fmt: skip

    result = run(workdir, tmp_path)

    assert (result.outcome, result.summary) == (Outcome.DONE, "wrote hello.txt")
    assert result.changed_files == ["hello.txt"]
    assert result.cost_usd > 0
    assert result.turns == 2
    assert result.attempts == 1
    assert result.input_tokens > 0
    assert result.output_tokens > 0
    assert "tool Write" in (tmp_path / "run.log").read_text()


def test_the_prompt_carries_the_issue_and_the_workflow(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("DONE: nothing to do")])

    run(workdir, tmp_path)

    first = str(api.messages_requests()[0].body)
    assert "t-abc: Add a greeting" in first
    assert "Write hello.txt" in first
    assert "BLOCKED: <one-line reason>" in first
    assert "Do not commit" in first  # the rules ride in the system prompt


def test_a_blocked_session_is_blocked_with_its_reason(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("I need the API spec.\nBLOCKED: no API spec in the repo")])

    result = run(workdir, tmp_path)

    assert (result.outcome, result.summary) == (Outcome.BLOCKED, "no API spec in the repo")


def test_a_session_without_a_verdict_line_fails(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("I changed some things, probably fine.")])

    result = run(workdir, tmp_path)

    assert result.outcome is Outcome.FAILED
    assert "without a DONE or BLOCKED line" in result.summary


def test_running_out_of_turns_fails_with_the_limit_named(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [
            ToolUse("Write", {"file_path": "a.txt", "content": "a"}),
            ToolUse("Write", {"file_path": "b.txt", "content": "b"}),
            Text("DONE: x"),
        ]
    )

    result = run(workdir, tmp_path, max_turns=1)

    assert result.outcome is Outcome.FAILED
    assert "limit of 1 turns" in result.summary


def test_rate_limits_are_retried_until_the_session_succeeds(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("DONE: finally")])
    api.fail_next(Status(429), times=2)

    result = run(workdir, tmp_path, retries=3)

    assert (result.outcome, result.attempts) == (Outcome.DONE, 3)
    assert (tmp_path / "run.log").read_text().count("retrying in") == 2


def test_retries_are_bounded(api: FakeApi, workdir: Path, tmp_path: Path) -> None:
    api.script([Status(529)])

    result = run(workdir, tmp_path, retries=2)

    assert (result.outcome, result.attempts) == (Outcome.FAILED, 2)
    assert "gave up after 2 attempts" in result.summary
    assert len(api.messages_requests()) == 2


def test_a_crashing_cli_is_retried_then_fails(api: FakeApi, workdir: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    crashing = tmp_path / "claude"
    crashing.write_text(f"#!/bin/sh\necho crash >> {calls}\nexit 3\n")
    crashing.chmod(crashing.stat().st_mode | stat.S_IEXEC)

    result = run(workdir, tmp_path, retries=3, claude_cli=str(crashing))

    assert result.outcome is Outcome.FAILED
    assert result.attempts == 3
    assert "the Claude CLI failed" in result.summary
    assert calls.read_text().count("crash") >= 3


def test_the_timeout_stops_a_hanging_session_and_its_cli(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Delay(60, Text("DONE: late"))])

    started = time.monotonic()
    result = run(workdir, tmp_path, timeout=3)

    assert result.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 15
    assert agent_processes(api.url) == []


def test_bypass_permissions_as_root_fails_with_what_to_do(
    api: FakeApi, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    api.script([Text("DONE: should not run")])

    result = run(workdir, tmp_path, permission_mode="bypassPermissions")

    assert result.outcome is Outcome.FAILED
    assert "IS_SANDBOX=1" in result.summary
    assert "acceptEdits" in result.summary
    assert api.messages_requests() == []
