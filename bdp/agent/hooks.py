"""The SDK hooks and in-process tools that keep an agent inside its lane.

Edits are checked (`bdp.repo.guards`) and locked before they happen; Bash commands are
checked; messages people send with `bdp say` ride on the next tool result; the lock tools
let an agent take every file it will edit at once. Each wraps a plain function from
`bdp.repo` or `bdp.agent.tools`, so the rules are tested without a session.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from claude_agent_sdk import HookCallback, HookMatcher, McpSdkServerConfig, tool
from claude_agent_sdk import create_sdk_mcp_server as create_mcp_server
from claude_agent_sdk.types import HookEvent

from bdp.agent import tools
from bdp.agent.report import FOLLOW_UP_SCHEMA
from bdp.agent.session import SessionRequest
from bdp.agent.tally import Tally
from bdp.errors import DeadlockError, LockError
from bdp.models import Outcome
from bdp.repo.guards import EDIT_TOOLS, check_bash, check_edit, edit_target, resolve_in_repo

#: The tools bdp's own server offers the agent.
BDP_TOOLS = ("lock_files", "unlock_files", "list_locks", "file_issue")
#: The CLI's tool for the session's final report: its result ends the turn, so a message
#: waits for the new turn after it instead of riding on it.
REPORT_TOOL = "StructuredOutput"
#: Seconds the edit hook may take beyond the lock wait before the CLI gives up on it.
HOOK_MARGIN = 30.0
_PATHS_SCHEMA = {
    "type": "object",
    "properties": {"paths": {"type": "array", "items": {"type": "string"}}},
    "required": ["paths"],
}
_NO_ARGS_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_HookReply = dict[str, Any]


def session_hooks(
    request: SessionRequest, tally: Tally, lock_wait: float
) -> dict[HookEvent, list[HookMatcher]]:
    """PreToolUse hooks: edits inside the repo and locked, Bash commands checked; a
    PostToolUse hook that passes on waiting `bdp say` messages."""

    async def guard_edit(data: Any, _tool_use_id: str | None, _ctx: Any) -> _HookReply:
        return await _guard_edit(request, tally, lock_wait, data)

    async def guard_bash(data: Any, _tool_use_id: str | None, _ctx: Any) -> _HookReply:
        command = str((data.get("tool_input") or {}).get("command", ""))
        reason = check_bash(command, read_only_git=request.shared_tree)
        if reason:
            request.transcript.line(f"bdp: denied command: {reason}")
            return _deny(reason)
        return {}

    edits = HookMatcher(
        matcher="|".join(EDIT_TOOLS),
        hooks=[cast(HookCallback, guard_edit)],
        timeout=lock_wait + HOOK_MARGIN,
    )

    async def steer(data: Any, _tool_use_id: str | None, _ctx: Any) -> _HookReply:
        tally.last_message = time.monotonic()  # a tool just finished: the session is alive
        return _steer_after_tool(request, str(data.get("tool_name", "")))

    bash = HookMatcher(matcher="Bash", hooks=[cast(HookCallback, guard_bash)])
    after_any_tool = HookMatcher(matcher=None, hooks=[cast(HookCallback, steer)])
    return {"PreToolUse": [edits, bash], "PostToolUse": [after_any_tool]}


async def _guard_edit(
    request: SessionRequest, tally: Tally, lock_wait: float, data: Any
) -> _HookReply:
    target = edit_target(data.get("tool_name", ""), data.get("tool_input") or {})
    if target is None:
        return {}
    with tally.working():
        reason = check_edit(request.repo, target) or await _lock_for_edit(
            request, target, lock_wait
        )
    if reason:
        request.transcript.line(f"bdp: denied edit: {reason}")
        return _deny(reason)
    tally.changed.add(str(resolve_in_repo(request.repo, target)))
    return {}


async def _lock_for_edit(request: SessionRequest, target: str, wait: float) -> str | None:
    """Take the lock of an edit's file; why the edit is denied, or None when it is ours."""
    try:
        await asyncio.to_thread(request.locks.acquire, [target], request.holder, wait)
    except DeadlockError as error:
        request.stop.stop(Outcome.BLOCKED, str(error), waits_for=error.waits_for)
        return f"{error}. End now with BLOCKED."
    except LockError as error:
        return f"{error}. {tools.LOCK_ADVICE}"
    if request.freshen is None:
        return None
    fresh: list[str] = await asyncio.to_thread(request.freshen, [target])
    return tools.refreshed_note(fresh, request.issue.id) if fresh else None


def _steer_after_tool(request: SessionRequest, tool: str) -> _HookReply:
    """Waiting `bdp say` messages, as context the agent reads with the tool's result: it
    need not finish its whole turn (maybe many tool calls) before it hears them."""
    note = "" if tool == REPORT_TOOL else request.steering.take()
    if not note:
        return {}
    request.transcript.line(f"bdp: passed the waiting message on after the {tool} call")
    return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": note}}


def _deny(reason: str) -> _HookReply:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def tool_server(request: SessionRequest, wait: float) -> McpSdkServerConfig:
    """The agent's lock tools and its way to file follow-up issues, as an in-process MCP
    server named ``bdp`` (it runs in the worker, outside the sandbox, where bd can write)."""
    locks, holder = request.locks, request.holder

    def reply(text: str) -> dict[str, Any]:
        request.transcript.line(f"bdp: {text}")
        return {"content": [{"type": "text", "text": text}]}

    lock_help = "Lock repository files you will edit (all or none; waits if taken)."

    @tool("lock_files", lock_help, _PATHS_SCHEMA)
    async def lock_files(args: dict[str, Any]) -> dict[str, Any]:
        paths = list(args.get("paths") or [])
        text = await asyncio.to_thread(tools.lock_files, request, paths, wait)
        return reply(text)

    @tool("unlock_files", "Release locks on files you will not edit after all.", _PATHS_SCHEMA)
    async def unlock_files(args: dict[str, Any]) -> dict[str, Any]:
        return reply(tools.unlock_files(locks, holder, list(args.get("paths") or [])))

    @tool("list_locks", "List locked files and who holds them.", _NO_ARGS_SCHEMA)
    async def list_locks(args: dict[str, Any]) -> dict[str, Any]:
        return reply(tools.list_locks(locks, holder))

    @tool(
        "file_issue", "File follow-up work you found, out of this issue's scope.", FOLLOW_UP_SCHEMA
    )
    async def file_issue(args: dict[str, Any]) -> dict[str, Any]:
        text = await asyncio.to_thread(tools.file_follow_up, request, args)
        return reply(text)

    offered = [lock_files, unlock_files, list_locks, file_issue]
    return create_mcp_server("bdp", tools=offered)
