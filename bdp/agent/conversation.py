"""One SDK client's conversation for a run: send a message, read the whole answer, and send
the quality gate's failures back for fixing, and the `bdp say` messages that came meanwhile.

Every message is logged to the transcript and counted in the tally as it arrives, so the
watchdog can publish live progress; API errors are collected for the runner to classify.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    RateLimitEvent,
    ResultMessage,
    UserMessage,
)

from bdp.agent.api_errors import CONTEXT_FULL, reset_time
from bdp.agent.prompt import CONTINUE, build_prompt
from bdp.agent.session import SessionRequest
from bdp.agent.tally import Tally
from bdp.agent.transcript import Transcript, describe


@dataclass
class Conversation:
    """The exchanges of one client: what came back is in ``tally``, API errors in ``errors``."""

    client: ClaudeSDKClient
    request: SessionRequest
    tally: Tally
    errors: list[str] = field(default_factory=list)

    async def send(self, text: str) -> None:
        """Send one user message and read the whole response into the tally; then, as new
        turns, the `bdp say` messages no tool result carried (the answer had no tool call,
        or they came after its last one). After an API error they wait for the retry."""
        await self._exchange(text)
        while not self.errors and (note := self.request.steering.take()):
            self.request.transcript.line("bdp: passed the waiting message on as a new turn")
            await self._exchange(note)

    async def _exchange(self, text: str) -> None:
        await self.client.query(text)
        async for message in self.client.receive_response():
            self.tally.last_message = time.monotonic()
            log_message(self.request.transcript, message)
            self._take(message)
            self.request.progress.publish(self.tally.activity())

    def _take(self, message: Any) -> None:
        tally = self.tally
        if isinstance(message, AssistantMessage) and message.error:
            self._api_error(message)
        elif isinstance(message, AssistantMessage):
            tally.add_assistant(message)
        elif isinstance(message, UserMessage):
            tally.tool = ""  # the tool call's result is back
        elif isinstance(message, RateLimitEvent):
            _note_rate_limit(message, tally)
        elif isinstance(message, ResultMessage):
            tally.add_result(message)

    def _api_error(self, message: AssistantMessage) -> None:
        self.errors.append(str(message.error))
        text = " ".join(getattr(block, "text", "") for block in message.content)
        if CONTEXT_FULL in text.lower():
            self.tally.context_full = True
        self.tally.limit_reset = self.tally.limit_reset or reset_time(text)

    def said_done(self) -> bool:
        """The last answer closes the issue (DONE, or a claim that no code is needed), and no
        API error came in the meantime: what the gate and the reviewer check."""
        verdict = self.tally.verdict()
        return not self.errors and verdict is not None and verdict.outcome.closes_issue

    async def gate_rounds(self) -> None:
        """After each DONE, run the gate; a failure goes back for at most ``fix_rounds``."""
        request, tally = self.request, self.tally
        if request.gate is None:
            return
        for round_number in range(request.fix_rounds + 1):
            if not self.said_done():
                return
            with tally.working():
                tally.gate = await asyncio.to_thread(request.gate)
            state = "passed" if tally.gate.passed else f"failed: {tally.gate.command}"
            request.transcript.line(f"bdp: quality gate {state}")
            if not tally.gate.passed:  # the whole tail in the run's log (redacted there)
                request.transcript.line(tally.gate.output)
            if tally.gate.passed or round_number == request.fix_rounds:
                return
            await self.send(tally.gate.feedback())


def first_message(request: SessionRequest, resume: str) -> str:
    """The prompt of a new session, or the nudge that continues a resumed one."""
    if resume:
        return request.landing or CONTINUE
    prompt = build_prompt(request.issue, request.repo, request.attempt, request.prior)
    return f"{prompt}\n\n{request.landing}" if request.landing else prompt


def log_message(transcript: Transcript, message: Any, prefix: str = "") -> None:
    """One SDK message into both transcript files: readable lines and the raw JSON."""
    for line in describe(message):
        transcript.line(prefix + line)
    is_instance = dataclasses.is_dataclass(message) and not isinstance(message, type)
    payload = dataclasses.asdict(message) if is_instance else {}
    transcript.message(type(message).__name__, payload)


def _note_rate_limit(event: RateLimitEvent, tally: Tally) -> None:
    """A refused request's limit says when it resets (subscription logins report this)."""
    info = event.rate_limit_info
    if info.status == "rejected" and info.resets_at:
        tally.limit_reset = float(info.resets_at)
