"""Runs one Claude Agent SDK session for one issue: hooks, hard timeout, retry.

The only module that imports ``claude_agent_sdk``: the CLI's fast paths (`bdp --help`,
`bdp status`, `bdp enqueue`) never load it. API errors arrive as ``AssistantMessage.error``
rather than exceptions, so transient and permanent failures are classified from that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import time
from collections.abc import Callable
from typing import Any, cast

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    CLINotFoundError,
    HookCallback,
    HookMatcher,
    McpSdkServerConfig,
    RateLimitEvent,
    ResultMessage,
    UserMessage,
    create_sdk_mcp_server,
    tool,
)
from claude_agent_sdk.types import HookEvent
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bdp.agent import lock_tools
from bdp.agent.prompt import (
    CONTINUE,
    REVIEWER_RULES,
    Review,
    build_prompt,
    parse_review,
    parse_verdict,
    review_prompt,
    system_rules,
)
from bdp.agent.session import (
    PermanentSessionError,
    SessionRequest,
    SessionResult,
    StopSignal,
    TransientSessionError,
    UsageLimitError,
)
from bdp.agent.tally import Tally
from bdp.agent.transcript import Transcript, describe
from bdp.broker.hold import reset_time
from bdp.config import Settings
from bdp.errors import DeadlockError, LockError
from bdp.models import Outcome
from bdp.repo.git import diff_of
from bdp.repo.guards import EDIT_TOOLS, check_bash, check_edit, edit_target, resolve_in_repo
from bdp.repo.procs import RUN_ENV, end_run_processes

#: AssistantMessage.error values that a later attempt may not hit.
TRANSIENT_ERRORS = {"server_error", "unknown"}
#: The CLI has already retried a rate limit: pause the queue rather than retry again.
RATE_LIMITED = "rate_limit"
#: ResultMessage.subtype when the session crossed ``max_budget_usd``.
OVER_BUDGET = "error_max_budget_usd"
_FIXES = {
    "authentication_failed": "check ANTHROPIC_API_KEY (or the credentials the CLI uses)",
    "billing_error": "check the account's billing and credit",
    "invalid_request": "check BDP_MODEL and the other agent settings",
}
_MAX_RETRY_WAIT = 120.0
_LOCK_TOOLS = ("lock_files", "unlock_files", "list_locks")
READ_ONLY_TOOLS = ("Read", "Glob", "Grep")
#: What the API says when a conversation no longer fits the model's context window.
CONTEXT_FULL = "prompt is too long"
_PATHS_SCHEMA = {
    "type": "object",
    "properties": {"paths": {"type": "array", "items": {"type": "string"}}},
    "required": ["paths"],
}


class ClaudeAgentRunner:
    """The real agent: one `ClaudeSDKClient` session per attempt."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, request: SessionRequest) -> SessionResult:
        return asyncio.run(self._run(request))

    async def _run(self, request: SessionRequest) -> SessionResult:
        tally = Tally()
        try:
            async with asyncio.timeout(request.deadline - time.time()):
                idle = _idle_check(tally, request.stop, self.settings.idle_timeout)
                stopped = await _until_stopped(self._attempts(request, tally), request.stop, idle)
            result = (
                tally.result(request.stop.outcome, request.stop.reason)
                if stopped
                else self._verdict(tally)
            )
            if result.outcome is Outcome.UNFINISHED:
                result.details = tally.unfinished_note()
            return result
        except TimeoutError:
            minutes = self.settings.timeout / 60
            return tally.result(Outcome.TIMED_OUT, f"stopped after the {minutes:g} min timeout")
        except PermanentSessionError as error:
            return tally.result(Outcome.FAILED, str(error))
        except TransientSessionError as error:
            return tally.result(Outcome.FAILED, f"gave up after {tally.attempts} attempts: {error}")
        except UsageLimitError as error:
            result = tally.result(Outcome.PAUSED, str(error))
            result.resets_at = error.resets_at
            return result
        finally:
            leftovers = end_run_processes(request.run_id)
            if leftovers:
                request.transcript.line(f"bdp: ended leftover processes {leftovers}")
            # A cancelled session can leave the SDK's subprocess transport unreferenced but
            # open; collect it while this loop still runs, not after asyncio.run closed it.
            gc.collect()

    async def _attempts(self, request: SessionRequest, tally: Tally) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientSessionError),
            stop=stop_after_attempt(self.settings.retries),
            wait=wait_exponential_jitter(
                multiplier=self.settings.retry_wait,
                jitter=self.settings.retry_wait,
                max=_MAX_RETRY_WAIT,
            ),
            before_sleep=lambda state: _note_retry(request.transcript, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                tally.attempts += 1
                await self._session(request, tally)

    async def _session(self, request: SessionRequest, tally: Tally) -> None:
        errors: list[str] = []
        tally.cost_before_session = tally.cost_usd
        try:
            resume = request.resume if tally.attempts == 1 else ""  # a retry starts afresh
            async with ClaudeSDKClient(self._options(request, tally, resume)) as client:
                await _exchange(client, _first_message(request, resume), request, tally, errors)
                await _gate_rounds(client, request, tally, errors)
                await self._review_rounds(client, request, tally, errors)
        except CLINotFoundError as error:
            raise PermanentSessionError(f"the Claude CLI was not found: {error}") from None
        except ClaudeSDKError as error:
            if not errors:
                raise TransientSessionError(f"the Claude CLI failed: {error}") from None
        if not tally.context_full:  # a full context is unfinished work, not an API failure
            _raise_for(errors[-1] if errors else None, tally)

    async def _review_rounds(
        self, client: ClaudeSDKClient, request: SessionRequest, tally: Tally, errors: list[str]
    ) -> None:
        """A read-only reviewer must approve; its findings go back for a bounded fix."""
        if request.review_rounds is None:
            return
        for round_number in range(request.review_rounds + 1):
            verdict = parse_verdict(tally.final_text)
            gate_failed = tally.gate is not None and not tally.gate.passed
            if errors or gate_failed or verdict is None or verdict.outcome is not Outcome.DONE:
                return
            with tally.working():
                tally.review = await self._review(request, tally)
            if tally.review.approved or round_number == request.review_rounds:
                return
            await _exchange(client, tally.review.feedback(), request, tally, errors)
            await _gate_rounds(client, request, tally, errors)

    async def _review(self, request: SessionRequest, tally: Tally) -> Review:
        """One reviewer session over the diff of the run's files."""
        diff = await asyncio.to_thread(diff_of, request.repo, sorted(tally.changed))
        options = ClaudeAgentOptions(
            cwd=str(request.repo), env={RUN_ENV: request.run_id}, model=self.settings.model,
            max_turns=self.settings.max_turns, permission_mode="default",
            allowed_tools=list(READ_ONLY_TOOLS), disallowed_tools=[*EDIT_TOOLS, "Bash"],
            system_prompt=REVIEWER_RULES, cli_path=self.settings.claude_cli,
        )  # fmt: skip
        final: str | None = None
        async with ClaudeSDKClient(options) as reviewer:
            await reviewer.query(review_prompt(request.issue, diff))
            async for message in reviewer.receive_response():
                tally.last_message = time.monotonic()
                _log(request.transcript, message, prefix="review: ")
                if isinstance(message, ResultMessage):
                    tally.review_cost += message.total_cost_usd or 0.0
                    final = message.result
        review = parse_review(final)
        request.transcript.line(f"bdp: review {'approved' if review.approved else 'has findings'}")
        return review

    def _options(
        self, request: SessionRequest, tally: Tally, resume: str = ""
    ) -> ClaudeAgentOptions:
        mode = self.settings.permission_mode
        if mode == "bypassPermissions" and os.geteuid() == 0 and not os.environ.get("IS_SANDBOX"):
            raise PermanentSessionError(
                "permission mode bypassPermissions is refused by the Claude CLI as root: "
                "use BDP_PERMISSION_MODE=acceptEdits, or set IS_SANDBOX=1 inside a sandbox"
            )
        return ClaudeAgentOptions(
            cwd=str(request.repo),
            env={RUN_ENV: request.run_id},
            model=self.settings.model,
            max_turns=self.settings.max_turns,
            permission_mode=mode,  # type: ignore[arg-type]
            allowed_tools=[*self.settings.allowed_tools, *(f"mcp__bdp__{t}" for t in _LOCK_TOOLS)],
            mcp_servers={"bdp": _lock_server(request, self.settings.lock_wait)},
            system_prompt={
                "type": "preset",
                "preset": "claude_code",
                "append": system_rules(request.issue),
            },
            hooks=_hooks(request, tally, self.settings.lock_wait),
            cli_path=self.settings.claude_cli,
            resume=resume or None,
            max_budget_usd=_budget_left(request, tally),
        )

    def _verdict(self, tally: Tally) -> SessionResult:
        result = self._plain_verdict(tally)
        review = tally.review
        if review is not None:
            result.review = "APPROVE" if review.approved else f"CHANGES: {review.findings}"
            result.review_cost_usd = round(tally.review_cost, 6)
            if not review.approved and result.outcome is Outcome.DONE:
                result.outcome, result.summary = Outcome.FAILED, "the reviewer still has findings"
                result.details = review.findings
        return result

    def _plain_verdict(self, tally: Tally) -> SessionResult:
        if tally.subtype == OVER_BUDGET:
            return tally.result(Outcome.OVER_BUDGET, f"stopped at ${tally.cost_usd:.2f}: "
                                "over the issue's budget")  # fmt: skip
        if tally.context_full:
            return tally.result(Outcome.UNFINISHED, "the session's context is full")
        gate = tally.gate
        verdict = parse_verdict(tally.final_text)
        if gate and not gate.passed and verdict and verdict.outcome is Outcome.DONE:
            result = tally.result(Outcome.FAILED, f"quality gate still failing: {gate.command}")
            result.details = gate.output
            return result
        if tally.subtype == "error_max_turns":
            limit = f"reached the limit of {self.settings.max_turns} turns"
            return tally.result(Outcome.UNFINISHED, limit)
        verdict = parse_verdict(tally.final_text)
        if verdict is None:
            return tally.result(Outcome.FAILED, "the session ended without a DONE or BLOCKED line")
        return tally.result(verdict.outcome, verdict.summary)


def _budget_left(request: SessionRequest, tally: Tally) -> float | None:
    """What this session may still spend: the run's budget less earlier attempts' cost."""
    if request.max_cost is None:
        return None
    return max(request.max_cost - tally.cost_usd, 1e-6)


def _raise_for(api_error: str | None, tally: Tally) -> None:
    if api_error is None:
        return
    if api_error == RATE_LIMITED:
        raise UsageLimitError("the API account is rate- or usage-limited", tally.limit_reset)
    if api_error in TRANSIENT_ERRORS:
        raise TransientSessionError(f"API error: {api_error}")
    fix = _FIXES.get(api_error, "see the run's log")
    raise PermanentSessionError(f"API error: {api_error}; {fix}")


def _note_retry(transcript: Transcript, state: RetryCallState) -> None:
    wait = state.next_action.sleep if state.next_action else 0.0
    error = state.outcome.exception() if state.outcome else None
    transcript.line(
        f"bdp: attempt {state.attempt_number} failed ({error}); retrying in {wait:.1f}s"
    )


def _log(transcript: Transcript, message: Any, prefix: str = "") -> None:
    for line in describe(message):
        transcript.line(prefix + line)
    is_instance = dataclasses.is_dataclass(message) and not isinstance(message, type)
    payload = dataclasses.asdict(message) if is_instance else {}
    transcript.message(type(message).__name__, payload)


async def _exchange(
    client: ClaudeSDKClient, text: str, request: SessionRequest, tally: Tally, errors: list[str]
) -> None:
    """Send one user message and read the whole response into the tally."""
    await client.query(text)
    async for message in client.receive_response():
        tally.last_message = time.monotonic()
        _log(request.transcript, message)
        if isinstance(message, AssistantMessage) and message.error:
            errors.append(message.error)
            text = " ".join(getattr(block, "text", "") for block in message.content)
            if CONTEXT_FULL in text.lower():
                tally.context_full = True
            tally.limit_reset = tally.limit_reset or reset_time(text)
        elif isinstance(message, AssistantMessage):
            tally.add_assistant(message)
        elif isinstance(message, UserMessage):
            tally.tool = ""  # the tool call's result is back
        elif isinstance(message, RateLimitEvent):
            _note_rate_limit(message, tally)
        elif isinstance(message, ResultMessage):
            tally.add_result(message)
        request.progress.publish(tally.activity())


def _note_rate_limit(event: RateLimitEvent, tally: Tally) -> None:
    """A refused request's limit says when it resets (subscription logins report this)."""
    info = event.rate_limit_info
    if info.status == "rejected" and info.resets_at:
        tally.limit_reset = float(info.resets_at)


async def _gate_rounds(
    client: ClaudeSDKClient, request: SessionRequest, tally: Tally, errors: list[str]
) -> None:
    """After each DONE, run the gate; send a failure back for at most ``fix_rounds`` rounds."""
    if request.gate is None:
        return
    for round_number in range(request.fix_rounds + 1):
        verdict = parse_verdict(tally.final_text)
        if errors or verdict is None or verdict.outcome is not Outcome.DONE:
            return
        with tally.working():
            tally.gate = await asyncio.to_thread(request.gate)
        state = "passed" if tally.gate.passed else f"failed: {tally.gate.command}"
        request.transcript.line(f"bdp: quality gate {state}")
        if tally.gate.passed or round_number == request.fix_rounds:
            return
        await _exchange(client, tally.gate.feedback(), request, tally, errors)


def _first_message(request: SessionRequest, resume: str) -> str:
    if resume:
        return CONTINUE
    return build_prompt(request.issue, request.repo, request.attempt, request.prior)


def _idle_check(tally: Tally, stop: StopSignal, timeout: float) -> Callable[[], None]:
    """Stops a session that sends nothing for ``timeout`` s (bdp's own waits don't count)."""

    def check() -> None:
        quiet = time.monotonic() - tally.last_message
        if quiet > timeout and not tally.busy:
            stop.stop(Outcome.UNFINISHED, f"hung: no message for {quiet:.0f}s, stopped")

    return check


async def _until_stopped(work: Any, stop: StopSignal, check: Callable[[], None]) -> bool:
    """Await ``work``; cancel it when ``stop`` is set. True if it was stopped."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.2)
        check()
        if stop.is_set() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return True
    task.result()
    return stop.is_set()


def _lock_server(request: SessionRequest, wait: float) -> McpSdkServerConfig:
    """The agent's lock tools, as an in-process MCP server named ``bdp``."""
    locks, holder, stop = request.locks, request.holder, request.stop

    def reply(text: str) -> dict[str, Any]:
        request.transcript.line(f"bdp: {text}")
        return {"content": [{"type": "text", "text": text}]}

    @tool("lock_files", "Lock repository files you will edit (all or none; waits if taken).",
          _PATHS_SCHEMA)  # fmt: skip
    async def lock_files(args: dict[str, Any]) -> dict[str, Any]:
        paths = list(args.get("paths") or [])
        return reply(
            await asyncio.to_thread(lock_tools.lock_files, locks, holder, paths, wait, stop)
        )

    @tool("unlock_files", "Release locks on files you will not edit after all.", _PATHS_SCHEMA)
    async def unlock_files(args: dict[str, Any]) -> dict[str, Any]:
        return reply(lock_tools.unlock_files(locks, holder, list(args.get("paths") or [])))

    @tool(
        "list_locks", "List locked files and who holds them.", {"type": "object", "properties": {}}
    )
    async def list_locks(args: dict[str, Any]) -> dict[str, Any]:
        return reply(lock_tools.list_locks(locks, holder))

    return create_sdk_mcp_server("bdp", tools=[lock_files, unlock_files, list_locks])


def _hooks(
    request: SessionRequest, tally: Tally, lock_wait: float
) -> dict[HookEvent, list[HookMatcher]]:
    repo = request.repo

    async def guard_edit(data: Any, _tool_use_id: str | None, _ctx: Any) -> dict[str, Any]:
        target = edit_target(data.get("tool_name", ""), data.get("tool_input") or {})
        if target is None:
            return {}
        with tally.working():
            reason = check_edit(repo, target) or await _lock_for_edit(request, target, lock_wait)
        if reason:
            request.transcript.line(f"bdp: denied edit: {reason}")
            return _deny(reason)
        tally.changed.add(str(resolve_in_repo(repo, target)))
        return {}

    async def guard_bash(data: Any, _tool_use_id: str | None, _ctx: Any) -> dict[str, Any]:
        reason = check_bash(str((data.get("tool_input") or {}).get("command", "")))
        if reason:
            request.transcript.line(f"bdp: denied command: {reason}")
            return _deny(reason)
        return {}

    return {
        "PreToolUse": [
            HookMatcher(
                matcher="|".join(EDIT_TOOLS),
                hooks=[cast(HookCallback, guard_edit)],
                timeout=lock_wait + 30,
            ),
            HookMatcher(matcher="Bash", hooks=[cast(HookCallback, guard_bash)]),
        ]
    }


async def _lock_for_edit(request: SessionRequest, target: str, wait: float) -> str | None:
    """Take the lock of an edit's file; why the edit is denied, or None when it is ours."""
    try:
        await asyncio.to_thread(request.locks.acquire, [target], request.holder, wait)
    except DeadlockError as error:
        request.stop.stop(Outcome.BLOCKED, str(error))
        return f"{error}. End now with BLOCKED."
    except LockError as error:
        return f"{error}. {lock_tools.LOCK_ADVICE}"
    return None


def _deny(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }
