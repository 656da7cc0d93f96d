"""Tests for tests/support/fake_api.py, mostly by driving the real SDK + bundled CLI at it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    Message,
    ResultMessage,
    SystemMessage,
)
from claude_agent_sdk.types import HookEvent

from tests.support.fake_api import (
    NOTHING_SCRIPTED,
    Delay,
    FakeApi,
    Finish,
    Status,
    Text,
    ToolUse,
    cli_env,
    tool_results,
)

SESSION_TIMEOUT = 60


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private HOME for the CLI, outside the session's cwd."""
    return tmp_path_factory.mktemp("home")


def run_session(
    api: FakeApi,
    cwd: Path,
    home: Path,
    prompt: str,
    *,
    hooks: dict[HookEvent, list[HookMatcher]] | None = None,
    extra_env: dict[str, str] | None = None,
    max_retries: int = 0,
) -> list[Message]:
    """Run one real SDK session against ``api`` and return every message it yielded."""
    env = cli_env(api.url, home, max_retries=max_retries) | (extra_env or {})
    options = ClaudeAgentOptions(
        cwd=cwd,
        env=env,
        permission_mode="acceptEdits",  # bypassPermissions is refused as root without IS_SANDBOX
        allowed_tools=["Write", "Edit", "Read", "Bash"],
        max_turns=5,
        hooks=hooks,
    )

    async def go() -> list[Message]:
        messages: list[Message] = []
        async with ClaudeSDKClient(options) as client:  # its __aexit__ never swallows errors
            await client.query(prompt)
            messages.extend([message async for message in client.receive_response()])
        return messages

    return asyncio.run(go())


def result_of(messages: list[Message]) -> ResultMessage:
    last = messages[-1]
    assert isinstance(last, ResultMessage)
    return last


def api_errors(messages: list[Message]) -> list[str | None]:
    return [m.error for m in messages if isinstance(m, AssistantMessage) and m.error]


def post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        f"{url}/v1/messages", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def user(text: str, results: int = 0) -> dict[str, Any]:
    """A request body whose first user message says ``text``, with ``results`` tool_results."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    for n in range(results):
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{n}"}]})
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{n}"}]}
        )
    return {"model": "m", "stream": False, "messages": messages}


# -- the fake on its own (fast, no CLI) ----------------------------------------


@pytest.mark.timeout(10)
def test_steps_follow_tool_result_count_and_scripts_route_by_marker(api: FakeApi) -> None:
    api.script([ToolUse("Bash", {"command": "true"}, text="hm"), Text("default done")])
    api.script([Text("two")], match="ISSUE-2")
    first = json.loads(post(api.url, user("fix ISSUE-1"))[1])
    assert [b["type"] for b in first["content"]] == ["text", "tool_use"]
    assert first["stop_reason"] == "tool_use"
    assert json.loads(post(api.url, user("fix ISSUE-1", 1))[1])["content"][0]["text"] == (
        "default done"
    )
    assert json.loads(post(api.url, user("fix ISSUE-1", 2))[1])["content"][0]["text"] == (
        NOTHING_SCRIPTED
    )
    assert json.loads(post(api.url, user("fix ISSUE-2"))[1])["content"][0]["text"] == "two"
    assert len(api.messages_requests("ISSUE-2")) == 1
    assert len(api.messages_requests()) == 4


@pytest.mark.timeout(10)
def test_one_shot_errors_are_consumed_once_and_secrets_are_not_recorded(api: FakeApi) -> None:
    api.script([Text("ok")])
    api.fail_next(Status(529), times=2)
    assert post(api.url, user("x"))[0] == 529
    code, body = post(api.url, user("x"))
    assert (code, json.loads(body)["error"]["type"]) == (529, "overloaded_error")
    assert post(api.url, user("x"))[0] == 200
    assert all("x-api-key" not in r.headers for r in api.requests)


@pytest.mark.timeout(10)
def test_stop_wakes_a_pending_delay() -> None:
    api = FakeApi().start()
    api.fail_next(Delay(60, Text("never")))
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            post(api.url, user("x"))
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=client)
    started = time.monotonic()
    thread.start()
    assert api.wait_for_requests(1)
    api.stop()
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert len(outcome) == 1  # the connection was dropped, no answer was sent
    assert time.monotonic() - started < 5


# -- the real SDK + bundled CLI ----------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_scripted_write_then_done(api: FakeApi, tmp_path: Path, home: Path) -> None:
    target = tmp_path / "hello.txt"
    api.script([ToolUse("Write", {"file_path": str(target), "content": "hi\n"}), Text("DONE: ok")])

    messages = run_session(api, tmp_path, home, "ISSUE-1: write hello.txt")

    assert target.read_text() == "hi\n"
    result = result_of(messages)
    assert (result.subtype, result.is_error, result.stop_reason) == ("success", False, "end_turn")
    assert result.total_cost_usd is not None
    assert result.total_cost_usd > 0
    assert result.num_turns >= 2
    assert result.result == "DONE: ok"
    calls = api.messages_requests()
    assert len(calls) == 2
    assert all(r.body["stream"] is True for r in calls)
    assert "ISSUE-1: write hello.txt" in json.dumps(calls[0].body["messages"][0])
    assert (home / ".claude").is_dir()  # the CLI used the private config dir


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_overloaded_without_retries_is_a_server_error(
    api: FakeApi, tmp_path: Path, home: Path
) -> None:
    api.fail_next(Status(529))
    api.script([Text("DONE: unreachable")])

    messages = run_session(api, tmp_path, home, "ISSUE-1")

    assert api_errors(messages) == ["server_error"]
    result = result_of(messages)
    assert (result.subtype, result.is_error, result.total_cost_usd) == ("success", True, 0)
    assert len(api.messages_requests()) == 1


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_overloaded_once_then_retry_succeeds(api: FakeApi, tmp_path: Path, home: Path) -> None:
    api.fail_next(Status(529))
    api.script([Text("DONE: after retry")])

    messages = run_session(api, tmp_path, home, "ISSUE-1", max_retries=1)

    retries = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "api_retry"]
    assert [r.data["error_status"] for r in retries] == [529]
    assert api_errors(messages) == []
    assert result_of(messages).is_error is False
    assert len(api.messages_requests()) == 2


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_unauthorized_is_authentication_failed(api: FakeApi, tmp_path: Path, home: Path) -> None:
    api.fail_next(Status(401))

    messages = run_session(api, tmp_path, home, "ISSUE-1")

    assert api_errors(messages) == ["authentication_failed"]
    assert result_of(messages).is_error is True


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_slow_answer_times_out_as_server_error(api: FakeApi, tmp_path: Path, home: Path) -> None:
    api.fail_next(Delay(SESSION_TIMEOUT, Text("too late")))

    messages = run_session(api, tmp_path, home, "ISSUE-1", extra_env={"API_TIMEOUT_MS": "1000"})

    assert api_errors(messages) == ["server_error"]
    assert result_of(messages).is_error is True


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_pre_tool_use_deny_blocks_the_write(api: FakeApi, tmp_path: Path, home: Path) -> None:
    target = tmp_path / "locked.txt"
    api.script([ToolUse("Write", {"file_path": str(target), "content": "no\n"}), Text("DONE")])
    seen: list[str] = []

    async def deny_write(
        input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        seen.append(str(input_data.get("tool_name")))
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": "locked by another agent",
            }
        }

    hooks: dict[HookEvent, list[HookMatcher]] = {
        "PreToolUse": [HookMatcher(matcher="Write", hooks=[deny_write])]
    }
    messages = run_session(api, tmp_path, home, "ISSUE-1", hooks=hooks)

    assert seen == ["Write"]
    assert not target.exists()
    assert result_of(messages).is_error is False
    [denied] = tool_results(api.messages_requests()[1].body)
    assert denied["is_error"] is True
    assert "locked by another agent" in json.dumps(denied["content"])


@pytest.mark.integration
@pytest.mark.timeout(SESSION_TIMEOUT)
def test_concurrent_sessions_follow_their_own_scripts(
    api: FakeApi, tmp_path: Path, home: Path
) -> None:
    for issue in ("ISSUE-1", "ISSUE-2"):
        write = ToolUse("Write", {"file_path": str(tmp_path / f"{issue}.txt"), "content": issue})
        api.script([write, Text(f"DONE: {issue}")], match=issue)

    async def both() -> list[list[Message]]:
        return await asyncio.gather(
            *(
                asyncio.to_thread(run_session, api, tmp_path, home, f"fix {i}")
                for i in ("ISSUE-1", "ISSUE-2")
            )
        )

    results = [result_of(messages) for messages in asyncio.run(both())]

    assert [r.result for r in results] == ["DONE: ISSUE-1", "DONE: ISSUE-2"]
    assert (tmp_path / "ISSUE-2.txt").read_text() == "ISSUE-2"
    assert len(api.messages_requests("ISSUE-1")) == 2


def test_a_finish_step_answers_in_the_form_the_request_offers() -> None:
    finish = Finish("DONE", "wrote it")

    offered = finish.answer({"tools": [{"name": "Write"}, {"name": "StructuredOutput"}]})
    plain = finish.answer({"tools": [{"name": "Write"}]})

    assert offered == ToolUse("StructuredOutput", {"outcome": "DONE", "summary": "wrote it"})
    assert plain == Text("DONE: wrote it")
