"""The real agent: one Claude Agent SDK session per attempt, with a hard timeout and retry.

Only `bdp.agent` imports ``claude_agent_sdk`` (this module, its hooks, conversation and
review), and a worker loads it when it starts: the CLI's fast paths never do. Transient
failures (the CLI crashing, an overloaded API) are retried with tenacity; permanent ones,
a timeout, a usage limit or a stop from the watchdog end the run with their outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Awaitable, Callable

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError, CLINotFoundError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bdp.agent.api_errors import raise_for
from bdp.agent.confinement import SETTING_SOURCES, sandbox_settings, session_env
from bdp.agent.conversation import Conversation, first_message
from bdp.agent.epic_review import review_epic
from bdp.agent.hooks import BDP_TOOLS, REPORT_TOOL, session_hooks, tool_server
from bdp.agent.launcher import detached_cli
from bdp.agent.mount_points import absent_placeholders, remove_placeholders
from bdp.agent.prompt import RULES
from bdp.agent.report import output_format
from bdp.agent.review import review_rounds
from bdp.agent.session import (
    PermanentSessionError,
    SessionRequest,
    SessionResult,
    StopSignal,
    TransientSessionError,
    UsageLimitError,
)
from bdp.agent.tally import Tally
from bdp.agent.transcript import Transcript
from bdp.agent.verdict import session_result
from bdp.config import Settings, tool_name
from bdp.models import Outcome, remaining_budget
from bdp.repo.procs import end_run_processes

#: Longest wait between retries, in seconds.
MAX_RETRY_WAIT = 120.0
#: Seconds between checks whether a session should stop (the watchdog or the idle limit).
STOP_POLL = 0.2
#: The SDK needs a positive budget; a run with none left is stopped by the worker first.
MIN_BUDGET_USD = 1e-6
#: bdp's own tools, by the names the CLI gives them.
BDP_MCP_TOOLS = tuple(f"mcp__bdp__{name}" for name in BDP_TOOLS)
#: The CLI's auto memory is off: its folder is outside the run's tree (edits there are
#: denied), and how to use it rode on every model request (2.3 KB of each).
NO_MEMORY = {"CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1"}


class ClaudeAgentRunner:
    """The real agent: one `ClaudeSDKClient` session per attempt."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, request: SessionRequest) -> SessionResult:
        if request.epic is not None:  # an epic's task: its review, not work of its own
            return asyncio.run(review_epic(request, request.epic, self.settings))
        return asyncio.run(self._run(request))

    async def _run(self, request: SessionRequest) -> SessionResult:
        tally = Tally()
        absent = absent_placeholders(request.repo) if self.settings.sandbox else set()
        try:
            return await self._until_done(request, tally)
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
            remove_placeholders(request.repo, absent)
            # A cancelled session can leave the SDK's subprocess transport unreferenced but
            # open; collect it while this loop still runs, not after asyncio.run closed it.
            gc.collect()

    async def _until_done(self, request: SessionRequest, tally: Tally) -> SessionResult:
        """The attempts, within the run's deadline and until a stop; then the result."""
        async with asyncio.timeout(request.deadline - time.time()):
            idle = _idle_check(tally, request.stop, self.settings.idle_timeout)
            stopped = await _until_stopped(self._attempts(request, tally), request.stop, idle)
        if stopped:
            result = tally.result(request.stop.outcome, request.stop.reason)
            result.waits_for = request.stop.waits_for
        else:
            result = session_result(tally, self.settings.max_turns)
        if result.outcome is Outcome.UNFINISHED:
            result.details = tally.unfinished_note()
        return result

    async def _attempts(self, request: SessionRequest, tally: Tally) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientSessionError),
            stop=stop_after_attempt(self.settings.retries),
            wait=wait_exponential_jitter(
                multiplier=self.settings.retry_wait,
                jitter=self.settings.retry_wait,
                max=MAX_RETRY_WAIT,
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
            tally.resumed_cost = request.resume_cost if resume else 0.0
            async with ClaudeSDKClient(self._options(request, tally, resume)) as client:
                conversation = Conversation(client, request, tally, errors)
                await conversation.send(first_message(request, resume))
                await conversation.gate_rounds()
                await review_rounds(conversation, self.settings)
        except CLINotFoundError as error:
            raise PermanentSessionError(f"the Claude CLI was not found: {error}") from None
        except ClaudeSDKError as error:
            if not errors:
                raise TransientSessionError(f"the Claude CLI failed: {error}") from None
        if not tally.context_full:  # a full context is unfinished work, not an API failure
            raise_for(errors[-1] if errors else None, tally.limit_reset)

    def _options(self, request: SessionRequest, tally: Tally, resume: str) -> ClaudeAgentOptions:
        settings = self.settings
        return ClaudeAgentOptions(
            cwd=str(request.repo),
            env=session_env(request.run_id, os.environ) | NO_MEMORY,
            model=settings.model,
            max_turns=settings.max_turns,
            permission_mode=_permission_mode(settings),  # type: ignore[arg-type]
            sandbox=sandbox_settings(settings),
            setting_sources=SETTING_SOURCES,
            tools=offered_tools(settings),
            allowed_tools=[*settings.allowed_tools, *BDP_MCP_TOOLS],
            mcp_servers={"bdp": tool_server(request, settings.lock_wait)},
            system_prompt={
                "type": "preset",
                "preset": "claude_code",
                "append": RULES,
                # the CLI's per-session sections (working directory, memory, git status)
                # go to the first user message: the system prompt is the same for every run
                "exclude_dynamic_sections": True,
            },
            hooks=session_hooks(request, tally, settings.lock_wait),
            cli_path=detached_cli(settings),
            resume=resume or None,
            session_store=request.session_store,
            max_budget_usd=_session_budget(request, tally),
            output_format=output_format(),
        )


def offered_tools(settings: Settings) -> list[str]:
    """The tools a session is offered: the allowed ones (a rule by its tool), bdp's own and
    the report tool. The CLI leaves out every other tool it has: each one offered is sent
    with every model request, used or not."""
    allowed = [*settings.allowed_tools, *BDP_MCP_TOOLS, REPORT_TOOL]
    return list(dict.fromkeys(tool_name(entry) for entry in allowed))


def _permission_mode(settings: Settings) -> str:
    mode = settings.permission_mode
    if mode == "bypassPermissions" and os.geteuid() == 0 and not os.environ.get("IS_SANDBOX"):
        raise PermanentSessionError(
            "permission mode bypassPermissions is refused by the Claude CLI as root: "
            "use BDP_PERMISSION_MODE=acceptEdits, or set IS_SANDBOX=1 inside a sandbox"
        )
    return mode


def _session_budget(request: SessionRequest, tally: Tally) -> float | None:
    """What this session may still spend: the run's budget less earlier attempts' cost."""
    left = remaining_budget(request.max_cost, tally.cost_usd)
    return None if left is None else max(left, MIN_BUDGET_USD)


def _note_retry(transcript: Transcript, state: RetryCallState) -> None:
    wait = state.next_action.sleep if state.next_action else 0.0
    error = state.outcome.exception() if state.outcome else None
    transcript.line(
        f"bdp: attempt {state.attempt_number} failed ({error}); retrying in {wait:.1f}s"
    )


def _idle_check(tally: Tally, stop: StopSignal, timeout: float) -> Callable[[], None]:
    """Stops a session that sends nothing for ``timeout`` s (bdp's own waits don't count)."""

    def check() -> None:
        if tally.last_message is None:  # still starting: a slow start is not a hang
            return
        quiet = time.monotonic() - tally.last_message
        if quiet > timeout and not tally.busy:
            stop.stop(Outcome.UNFINISHED, f"hung: no message for {quiet:.0f}s, stopped")

    return check


async def _until_stopped(
    work: Awaitable[None], stop: StopSignal, check: Callable[[], None]
) -> bool:
    """Await ``work``; cancel it when ``stop`` is set. True if it was stopped."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=STOP_POLL)
        check()
        if stop.is_set() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return True
    task.result()
    return stop.is_set()
