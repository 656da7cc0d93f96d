"""ClaudeAgentRunner on the real Claude CLI against the fake Messages API."""

from __future__ import annotations

import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bdp.agent.claude import ClaudeAgentRunner
from bdp.agent.session import SessionRequest, SessionResult
from bdp.agent.transcript import Transcript
from bdp.config import Settings
from bdp.models import Activity, Issue, Outcome
from bdp.redact import Redactor
from bdp.repo.locks import Holder, LockTable
from bdp.repo.quality_gate import GateResult
from tests.support.fake_api import (
    ENFORCE_NUDGE,
    Delay,
    FakeApi,
    Report,
    Status,
    Text,
    ToolUse,
    cli_env,
    tool_results,
)
from tests.support.processes import agent_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ISSUE = Issue(id="t-abc", title="Add a greeting", description="Write hello.txt")


def request_for(workdir: Path, tmp_path: Path, timeout: float = 60) -> SessionRequest:
    transcript = Transcript(tmp_path / "run.log", Redactor([]))
    locks = LockTable(tmp_path / "home", workdir)
    run_id = f"run-{uuid.uuid4().hex[:8]}"  # unique: a run's clean-up ends its id's processes
    holder = Holder.here(run_id, ISSUE.id)
    return SessionRequest(run_id, ISSUE, workdir, time.time() + timeout, transcript, locks, holder)


def run(
    workdir: Path,
    tmp_path: Path,
    timeout: float = 60,
    request: SessionRequest | None = None,
    **settings: object,
) -> SessionResult:
    config = Settings(home=tmp_path / "home", retry_wait=0.05, **settings)  # type: ignore[arg-type]
    request = request or request_for(workdir, tmp_path, timeout)
    try:
        return ClaudeAgentRunner(config).run(request)
    finally:
        request.transcript.close()


def test_a_done_session_reports_its_files_cost_and_summary(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [
            ToolUse("Write", {"file_path": "hello.txt", "content": "hi\n"}),
            Report("DONE", "wrote hello.txt"),
        ]
    )

    request = request_for(workdir, tmp_path)
    result = run(workdir, tmp_path, request=request)

    assert (result.outcome, result.summary) == (Outcome.DONE, "wrote hello.txt")
    assert result.verdict == "structured"
    assert result.changed_files == ["hello.txt"]
    [lock] = LockTable(tmp_path / "home", workdir).locks()
    assert (lock.path, lock.holder.run_id) == ("hello.txt", request.run_id)  # the edit's lock
    assert result.cost_usd > 0
    assert len(api.messages_requests()) == 2  # the report ends the session: no extra call
    assert result.attempts == 1
    assert result.input_tokens > 0
    assert result.output_tokens > 0
    assert "tool Write" in (tmp_path / "run.log").read_text()


def test_a_session_that_ends_in_text_is_read_from_its_last_line(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a model that never returns the structured report, only its text line
    api.script([Text("All good.\nBLOCKED: the spec is ambiguous")])

    result = run(workdir, tmp_path)

    # Then the CLI asked once more for the report, and bdp fell back to the text line
    assert (result.outcome, result.summary) == (Outcome.BLOCKED, "the spec is ambiguous")
    assert result.verdict == "text"
    nudged = api.messages_requests()[-1].body["messages"][-1]
    assert ENFORCE_NUDGE in str(nudged)
    schema = {t["name"]: t for t in api.messages_requests()[0].body["tools"]}["StructuredOutput"]
    assert "ALREADY_DONE" in str(schema["input_schema"])


def test_the_prompt_carries_the_issue_and_the_workflow(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("DONE: nothing to do")])

    run(workdir, tmp_path)

    first = str(api.messages_requests()[0].body)
    assert "t-abc: Add a greeting" in first
    assert "Write hello.txt" in first
    assert "BLOCKED (reason" in first
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
    assert "without a report or a DONE line" in result.summary


def test_running_out_of_turns_leaves_the_session_unfinished_with_its_work_noted(
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

    assert result.outcome is Outcome.UNFINISHED
    assert "limit of 1 turns" in result.summary
    assert result.details.startswith("Files changed: a.txt.")
    assert result.session_id  # what a continuation resumes


def test_a_session_that_goes_quiet_is_stopped_as_hung(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [ToolUse("Write", {"file_path": "a.txt", "content": "a"}), Delay(60, Text("DONE: late"))]
    )

    result = run(workdir, tmp_path, idle_timeout=2)

    assert result.outcome is Outcome.UNFINISHED
    assert result.summary.startswith("hung: no message for")
    assert "a.txt" in result.details
    assert agent_processes(api.url) == []


def test_a_cli_slow_to_start_is_not_taken_for_a_hung_session(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a CLI that takes three idle timeouts to start (a loaded machine, a cold cache)
    from bdp.agent.launcher import real_cli

    slow = tmp_path / "slow-claude"
    real = real_cli(Settings(home=tmp_path / "home"))
    slow.write_text(f'#!/bin/sh\nsleep 3\nexec "{real}" "$@"\n')
    slow.chmod(0o755)
    api.script([Report("DONE", "nothing to change")])

    # When a session with a one-second idle limit runs on it
    result = run(workdir, tmp_path, idle_timeout=1, claude_cli=str(slow))

    # Then the wait for its first message did not count as quiet
    assert (result.outcome, result.summary) == (Outcome.DONE, "nothing to change")


def test_a_continuation_resumes_the_earlier_session(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session that ran out of turns after one edit
    api.script(
        [
            ToolUse("Write", {"file_path": "a.txt", "content": "a"}),
            ToolUse("Write", {"file_path": "b.txt", "content": "b"}),
            Text("DONE: both files"),
        ]
    )
    first = run(workdir, tmp_path, max_turns=1)

    # When a continuation resumes it
    request = replace(request_for(workdir, tmp_path), resume=first.session_id)
    result = run(workdir, tmp_path, request=request)

    # Then the model saw the earlier conversation and the session finished it
    resumed = api.messages_requests()[-1].body["messages"]
    assert "Continue where you left off" in str(resumed)
    assert "a.txt" in str(resumed[:3])  # the first session's turns came back
    assert (result.outcome, result.summary) == (Outcome.DONE, "both files")
    assert (workdir / "b.txt").read_text() == "b"


def test_a_continuation_counts_only_its_own_requests_and_keeps_its_whole_budget(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session that ran out of turns after three of its six edits
    writes = [ToolUse("Write", {"file_path": f"p{n}.txt", "content": f"{n}\n"}) for n in range(6)]
    api.script([*writes, Report("DONE", "six parts")])
    first = run(workdir, tmp_path, max_turns=3)
    earlier = len(api.messages_requests())
    price = first.cost_usd / earlier  # the fake API's usage is the same for every request
    assert first.outcome is Outcome.UNFINISHED
    assert first.session_cost_usd == first.cost_usd

    # When a continuation resumes it, allowed to spend a little more than four requests
    request = replace(
        request_for(workdir, tmp_path),
        resume=first.session_id,
        resume_cost=first.session_cost_usd,
        max_cost=4.5 * price,
    )
    second = run(workdir, tmp_path, request=request)

    # Then it finished with its four requests, each counted once: the first session's not again
    own = len(api.messages_requests()) - earlier
    assert (second.outcome, second.summary, own) == (Outcome.DONE, "six parts", 4)
    assert second.cost_usd == pytest.approx(own * price)
    assert second.session_cost_usd == pytest.approx((earlier + own) * price)


def test_a_continuation_over_its_budget_is_stopped_at_what_it_spent_itself(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session that ran out of turns after two of its six edits
    writes = [ToolUse("Write", {"file_path": f"p{n}.txt", "content": f"{n}\n"}) for n in range(6)]
    api.script([*writes, Report("DONE", "six parts")])
    first = run(workdir, tmp_path, max_turns=2)
    earlier = len(api.messages_requests())
    price = first.cost_usd / earlier

    # When a continuation that may spend two and a half requests' worth resumes it
    request = replace(
        request_for(workdir, tmp_path),
        resume=first.session_id,
        resume_cost=first.session_cost_usd,
        max_cost=2.5 * price,
    )
    second = run(workdir, tmp_path, request=request)

    # Then the CLI stopped it after its third request (the first session's cost not held
    # against it), and its cost is those three
    own = len(api.messages_requests()) - earlier
    assert (second.outcome, own) == (Outcome.OVER_BUDGET, 3)
    assert second.cost_usd == pytest.approx(3 * price)


def test_overloaded_api_errors_are_retried_until_the_session_succeeds(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Text("DONE: finally")])
    api.fail_next(Status(529), times=2)

    result = run(workdir, tmp_path, retries=3)

    assert (result.outcome, result.attempts) == (Outcome.DONE, 3)
    assert (tmp_path / "run.log").read_text().count("retrying in") == 2


def test_a_usage_limit_pauses_instead_of_retrying_and_says_when_it_resets(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given an API that refuses with a usage limit giving its reset time
    resets = int(time.time()) + 3600
    body = {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": f"usage limit reached|{resets}"},
    }
    api.script([Text("DONE: never reached")])
    api.fail_next(Status(429, body=body), times=5)

    result = run(workdir, tmp_path, retries=3)

    # Then the session ends PAUSED at once, with the reset time, burning no retries
    assert (result.outcome, result.attempts) == (Outcome.PAUSED, 1)
    assert result.resets_at == resets
    assert len(api.messages_requests()) == 1


def test_a_rate_limit_without_a_reset_time_pauses_with_none(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Status(429)])

    result = run(workdir, tmp_path, retries=3)

    assert (result.outcome, result.resets_at, result.attempts) == (Outcome.PAUSED, None, 1)


def test_a_session_over_its_budget_is_stopped_by_the_cli(
    tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given turns the CLI prices at about $0.44 each, and a budget of $1
    with FakeApi(input_tokens=100_000, output_tokens=2_000) as pricey:
        for name, value in cli_env(pricey.url, tmp_path / "claude-home").items():
            monkeypatch.setenv(name, value)
        writes = [ToolUse("Write", {"file_path": f"f{n}.txt", "content": "x"}) for n in range(8)]
        pricey.script([*writes, Text("DONE: all eight")])
        request = replace(request_for(workdir, tmp_path), max_cost=1.0)

        result = run(workdir, tmp_path, request=request)

    # Then the session stopped soon after crossing it, and says what it cost
    assert result.outcome is Outcome.OVER_BUDGET
    assert 1.0 < result.cost_usd < 2.0
    assert f"${result.cost_usd:.2f}" in result.summary
    assert len(pricey.messages_requests()) < 6


def test_live_progress_is_published_while_the_session_runs(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session whose second turn is slow, so it can be watched mid-way
    api.script(
        [
            ToolUse("Write", {"file_path": "a.txt", "content": "a"}),
            Delay(1.5, Text("DONE: wrote a.txt")),
        ]
    )
    request = request_for(workdir, tmp_path)
    seen: list[Activity] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            activity = request.progress.take()
            if activity is not None and activity.turns >= 1 and activity.cost_usd == 0:
                seen.append(activity)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = run(workdir, tmp_path, request=request)
    watcher.join()

    # Then mid-session it showed a turn and its tokens before any cost was settled
    [live] = seen
    assert live.input_tokens > 0
    assert result.outcome is Outcome.DONE
    final = request.progress.take()
    assert final is not None
    assert (final.turns, final.cost_usd) == (result.turns, result.cost_usd)
    assert final.tool == ""


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


def test_an_edit_of_a_file_another_run_holds_is_denied_with_the_holder_named(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    LockTable(tmp_path / "home", workdir).acquire(["shared.py"], Holder.here("other", "t-zzz"))
    api.script(
        [
            ToolUse("Write", {"file_path": "shared.py", "content": "mine\n"}),
            Text("BLOCKED: shared.py is busy"),
        ]
    )

    result = run(workdir, tmp_path, lock_wait=0.3)

    assert not (workdir / "shared.py").exists()
    [denied] = tool_results(api.messages_requests()[-1].body)
    assert denied["is_error"] is True
    assert "locked by issue t-zzz" in str(denied["content"])
    assert "run other" in str(denied["content"])
    assert result.outcome is Outcome.BLOCKED
    assert result.changed_files == []


def test_the_agent_can_lock_list_and_unlock_files_with_its_tools(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [
            ToolUse("mcp__bdp__lock_files", {"paths": ["b.py", "a.py"]}),
            ToolUse("mcp__bdp__list_locks", {}),
            ToolUse("mcp__bdp__unlock_files", {"paths": ["b.py"]}),
            Text("DONE: planned"),
        ]
    )

    result = run(workdir, tmp_path)

    texts = [str(tool_results(r.body)[-1]["content"]) for r in api.messages_requests()[1:]]
    assert "Locked: a.py, b.py" in texts[0]
    assert "a.py: yours" in texts[1]
    assert "b.py: yours" in texts[1]
    assert "Unlocked: b.py" in texts[2]
    assert [lock.path for lock in LockTable(tmp_path / "home", workdir).locks()] == ["a.py"]
    assert result.outcome is Outcome.DONE


def test_a_deadlock_ends_the_younger_run_at_once_as_blocked(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given an older run holding x.py and waiting for y.py, which this (younger) run holds
    table = LockTable(tmp_path / "home", workdir)
    older = Holder.here("older", "t-old", started=1.0)
    table.acquire(["x.py"], older)
    request = request_for(workdir, tmp_path)
    table.acquire(["y.py"], request.holder)
    waiter = threading.Thread(target=lambda: table.acquire(["y.py"], older, wait=30))
    waiter.start()
    wait_for(lambda: table.waits(), timeout=10)
    api.script([ToolUse("Write", {"file_path": "x.py", "content": "x"}), Text("DONE: never")])

    # When this run edits x.py
    started = time.monotonic()
    result = run(workdir, tmp_path, request=request, lock_wait=30)

    # Then it ends BLOCKED well before the lock wait, naming the cycle
    assert result.outcome is Outcome.BLOCKED
    assert "deadlock" in result.summary
    assert "t-old" in result.summary
    assert result.waits_for == "t-old"  # the run of t-old holds what this one waited for
    assert time.monotonic() - started < 20
    table.release_all(request.holder.run_id)
    waiter.join(timeout=10)
    holder = table.holder_of("y.py")
    assert holder is not None
    assert holder.holder.run_id == "older"


def test_a_stop_signal_ends_the_session_and_its_cli(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Delay(60, Text("DONE: late"))])
    request = request_for(workdir, tmp_path)

    def stop_once_asked() -> None:
        wait_for(lambda: api.messages_requests(), timeout=30)
        request.stop.stop(Outcome.INTERRUPTED, "the worker was stopped")

    threading.Thread(target=stop_once_asked).start()

    result = run(workdir, tmp_path, request=request)

    assert (result.outcome, result.summary) == (Outcome.INTERRUPTED, "the worker was stopped")
    assert agent_processes(api.url) == []


def gate_on(workdir: Path, calls: list[str]) -> Callable[[], GateResult]:
    """A gate that passes once feature.py says "good"."""

    def gate() -> GateResult:
        text = (workdir / "feature.py").read_text()
        calls.append(text)
        return GateResult(True) if "good" in text else GateResult(False, "pytest -q", "1 failed")

    return gate


def test_a_failing_gate_goes_back_to_the_session_until_it_passes(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given an agent that first writes a broken file, then fixes it when the gate complains
    api.script(
        [
            ToolUse("Write", {"file_path": "feature.py", "content": "bad\n"}),
            Report("DONE", "wrote the feature"),
            ToolUse("Write", {"file_path": "feature.py", "content": "good\n"}),
            Report("DONE", "fixed the failing test"),
        ]
    )
    calls: list[str] = []
    request = replace(request_for(workdir, tmp_path), gate=gate_on(workdir, calls), fix_rounds=2)

    # When the session runs
    result = run(workdir, tmp_path, request=request)

    # Then the gate ran after each DONE, its failure reached the same session, and it passed
    assert calls == ["bad\n", "good\n"]
    follow_up = str(api.messages_requests()[2].body["messages"][-1])
    assert "quality gate failed" in follow_up
    assert "1 failed" in follow_up
    assert (result.outcome, result.summary) == (Outcome.DONE, "fixed the failing test")
    assert len(api.messages_requests()) == 4


def test_a_gate_that_never_passes_fails_the_run_with_its_output(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [
            ToolUse("Write", {"file_path": "feature.py", "content": "bad\n"}),
            Text("DONE: wrote it"),
            Text("DONE: I am sure it is fine"),
            Text("DONE: really"),
        ]
    )
    calls: list[str] = []
    request = replace(request_for(workdir, tmp_path), gate=gate_on(workdir, calls), fix_rounds=1)

    result = run(workdir, tmp_path, request=request)

    assert len(calls) == 2  # the first DONE and one fix round
    assert result.outcome is Outcome.FAILED
    assert result.summary == "quality gate still failing: pytest -q"
    assert result.details == "1 failed"


REVIEW = "Review the change for beads issue t-abc"


def test_a_reviewer_rejects_then_approves_after_a_fix_round(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given an implementing session that fixes what the reviewer finds
    api.script(
        [
            ToolUse("Write", {"file_path": "feature.py", "content": "x = 1\n"}),
            Report("DONE", "added x"),
            ToolUse("Write", {"file_path": "test_feature.py", "content": "assert True\n"}),
            Report("DONE", "added x with a test"),
        ],
        match="Implement beads issue t-abc",
    )
    api.fail_next(Text("No test for x.\nCHANGES: add a test for x"), match=REVIEW)
    api.script([Text("Looks right now.\nAPPROVE")], match=REVIEW)
    request = replace(request_for(workdir, tmp_path), review_rounds=1)

    # When the session runs with review on
    result = run(workdir, tmp_path, request=request)

    # Then the first review's findings reached the implementer, and the second review approved
    reviews = api.messages_requests(match=REVIEW)
    assert len(reviews) == 2
    assert "+x = 1" in str(reviews[0].body)  # the reviewer saw the diff of the new file
    implementer = api.messages_requests(match="Implement beads issue t-abc")
    assert "add a test for x" in str(implementer[2].body["messages"][-1])
    assert (result.outcome, result.summary) == (Outcome.DONE, "added x with a test")
    assert result.review == "APPROVE"
    assert result.review_cost_usd > 0
    assert sorted(result.changed_files) == ["feature.py", "test_feature.py"]


def test_findings_that_outlast_the_review_rounds_fail_the_run(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [
            ToolUse("Write", {"file_path": "feature.py", "content": "x = 1\n"}),
            Text("DONE: added x"),
        ],
        match="Implement beads issue t-abc",
    )
    api.script([Text("CHANGES: x is wrong")], match=REVIEW)
    request = replace(request_for(workdir, tmp_path), review_rounds=0)

    result = run(workdir, tmp_path, request=request)

    assert result.outcome is Outcome.FAILED
    assert result.summary == "the reviewer still has findings"
    assert result.review == "CHANGES: x is wrong"
    assert result.details == "x is wrong"


def test_a_session_whose_context_is_full_is_unfinished_not_failed(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    too_long = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 250000 tokens > 200000 maximum",
        },
    }
    api.script([ToolUse("Write", {"file_path": "a.txt", "content": "a"}), Status(400, too_long)])

    result = run(workdir, tmp_path)

    assert result.outcome is Outcome.UNFINISHED
    assert result.summary == "the session's context is full"
    assert "a.txt" in result.details
    assert result.attempts == 1  # not retried as an API failure
