"""What ClaudeAgentRunner's model requests carry, on the real CLI and the fake API: only the
tools a session may use, and a system prompt and tool block that are the same bytes for every
issue, so the API's prompt cache serves them."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, SystemMessage

from bdp.agent.report import output_format
from bdp.config import CLI_TOOLS, DEFAULT_ALLOWED_TOOLS, unknown_tools
from bdp.models import Issue, Outcome
from tests.agent.test_claude import REVIEW, request_for, run
from tests.support.fake_api import FakeApi, RecordedRequest, Report, Text, ToolUse, tool_results

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
BDP_OWN = {
    f"mcp__bdp__{name}" for name in ("lock_files", "unlock_files", "list_locks", "file_issue")
}


def offered(request: RecordedRequest) -> set[str]:
    """The tools a request offered the model (less the CLI's stand-in for deferred ones)."""
    return {tool["name"] for tool in request.body["tools"]} - {"DeferredToolPlaceholder"}


def test_a_session_is_offered_only_the_tools_it_may_use_and_they_work(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session that locks its file with bdp's tool, writes it, and reports
    api.script(
        [
            ToolUse("mcp__bdp__lock_files", {"paths": ["a.txt"]}),
            ToolUse("Write", {"file_path": "a.txt", "content": "a\n"}),
            Report("DONE", "wrote a.txt"),
        ]
    )

    result = run(workdir, tmp_path)

    # Then each request offered the allowed tools, bdp's own and the report tool, no other
    requests = api.messages_requests()
    for request in requests:
        assert offered(request) == {*DEFAULT_ALLOWED_TOOLS, *BDP_OWN, "StructuredOutput"}
        assert "file-based memory" not in json.dumps(request.body)  # the CLI's memory is off
    # And they work: the lock, the edit and the structured report
    assert "Locked: a.txt" in str(tool_results(requests[1].body))
    assert (result.outcome, result.verdict, result.changed_files) == (
        Outcome.DONE,
        "structured",
        ["a.txt"],
    )


def test_an_allowed_rule_offers_its_tool_and_a_shorter_list_offers_less(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script([Report("BLOCKED", "nothing to go on")])

    run(workdir, tmp_path, allowed_tools=("Read", "Bash(git log:*)"))

    [request] = api.messages_requests()
    assert offered(request) == {"Read", "Bash", *BDP_OWN, "StructuredOutput"}


def test_every_tool_bdp_knows_is_one_the_cli_offers_and_the_retired_ones_are_not(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given every tool bdp knows the CLI by (ToolSearch aside: it would defer the others)
    # and two the CLI no longer has
    asked = (*sorted(CLI_TOOLS - {"ToolSearch"}), "TodoWrite", "MultiEdit")
    api.script([Report("BLOCKED", "nothing to go on")])

    run(workdir, tmp_path, allowed_tools=asked)

    # Then the CLI offered each known one (Task is Agent's other name), and neither of those
    names = offered(api.messages_requests()[0])
    assert CLI_TOOLS - {"ToolSearch", "Task"} - names == set()
    assert names & {"TodoWrite", "MultiEdit"} == set()
    assert unknown_tools(asked) == ["TodoWrite", "MultiEdit"]


async def tools_the_cli_has(workdir: Path) -> list[str]:
    """The tools a session of the bundled CLI has when nobody narrows them (its init message)."""
    options = ClaudeAgentOptions(
        cwd=str(workdir), max_turns=1, permission_mode="acceptEdits", output_format=output_format()
    )
    names: list[str] = []
    async with ClaudeSDKClient(options) as client:
        await client.query("hello")
        async for message in client.receive_response():
            if isinstance(message, SystemMessage) and message.subtype == "init":
                names = list(message.data["tools"])
    return names


def test_bdp_knows_every_tool_the_bundled_cli_has(api: FakeApi, workdir: Path) -> None:
    api.script([Text("DONE: hello")])

    names = asyncio.run(tools_the_cli_has(workdir))

    assert names  # the CLI listed them
    assert unknown_tools(tuple(names)) == []


def test_a_reviewer_is_offered_only_its_read_only_tools(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    api.script(
        [ToolUse("Write", {"file_path": "x.py", "content": "x = 1\n"}), Report("DONE", "added x")],
        match="Implement beads issue t-abc",
    )
    api.script([Text("APPROVE")], match=REVIEW)

    result = run(
        workdir, tmp_path, request=replace(request_for(workdir, tmp_path), review_rounds=0)
    )

    assert result.review == "APPROVE"
    [review] = api.messages_requests(match=REVIEW)
    assert offered(review) == {"Read", "Glob", "Grep"}


def work_tree(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", path], check=True)
    return path


def test_two_issues_first_requests_share_system_prompt_and_tools_byte_for_byte(
    api: FakeApi, tmp_path: Path
) -> None:
    # Given two issues on different attempts, each in a work tree of its own (as worktree
    # isolation gives each run)
    issues = {
        Issue("t-abc", "Add a greeting", "Write hello.txt"): 1,
        Issue("proj-7x2", "Fix the parser", "It breaks on tabs"): 2,
    }
    trees = {}
    for issue, attempt in issues.items():
        trees[issue.id] = tree = work_tree(tmp_path / issue.id / "tree")
        api.script([Report("BLOCKED", "nothing to go on")], match=f"issue {issue.id} in")
        request = replace(request_for(tree, tmp_path / issue.id), issue=issue, attempt=attempt)
        run(tree, tmp_path / issue.id, request=request)

    # When their first requests are compared
    first, other = (api.messages_requests(match=f"issue {i.id} in")[0].body for i in issues)

    # Then the system prompt and the tools are the same bytes (the cacheable prefix)
    assert json.dumps(first["system"]) == json.dumps(other["system"])
    assert json.dumps(first["tools"]) == json.dumps(other["tools"])
    assert "Do not commit" in json.dumps(first["system"])  # bdp's rules are part of it
    # And what is the session's own (issue, attempt, work tree) is in its first user message
    for body, issue in zip((first, other), issues, strict=True):
        system, opening = json.dumps(body["system"]), json.dumps(body["messages"][0])
        assert issue.id not in system
        assert str(trees[issue.id]) not in system
        assert f"beads issue {issue.id} in the repository at {trees[issue.id]}" in opening
    assert "(attempt 2)" in json.dumps(other["messages"][0])
