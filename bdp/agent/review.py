"""The optional review: a read-only reviewer session must approve the diff before close.

Its findings go back to the working session for a bounded number of rounds; the reviewer
can read the repository but has no edit tools and no Bash.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

from bdp.agent.conversation import Conversation, log_message
from bdp.agent.launcher import detached_cli
from bdp.agent.prompt import REVIEWER_RULES, Review, parse_review, review_prompt
from bdp.agent.session import SessionRequest
from bdp.agent.tally import Tally
from bdp.config import Settings
from bdp.repo.git import diff_of
from bdp.repo.guards import EDIT_TOOLS
from bdp.repo.procs import RUN_ENV

#: The reviewer's tools: it reads, it does not write or run anything.
READ_ONLY_TOOLS = ("Read", "Glob", "Grep")


async def review_rounds(conversation: Conversation, settings: Settings) -> None:
    """A reviewer must approve each DONE; its findings go back for a bounded fix."""
    request, tally = conversation.request, conversation.tally
    if request.review_rounds is None:
        return
    for round_number in range(request.review_rounds + 1):
        gate_failed = tally.gate is not None and not tally.gate.passed
        if gate_failed or not conversation.said_done():
            return
        with tally.working():
            tally.review = await review(request, tally, settings)
        if tally.review.approved or round_number == request.review_rounds:
            return
        await conversation.send(tally.review.feedback())
        await conversation.gate_rounds()


async def review(request: SessionRequest, tally: Tally, settings: Settings) -> Review:
    """One reviewer session over the diff of the run's files."""
    diff = await asyncio.to_thread(diff_of, request.repo, sorted(tally.changed))
    final: str | None = None
    async with ClaudeSDKClient(read_only_options(request, settings, REVIEWER_RULES)) as reviewer:
        await reviewer.query(review_prompt(request.issue, diff, _claim(tally)))
        async for message in reviewer.receive_response():
            tally.last_message = time.monotonic()
            log_message(request.transcript, message, prefix="review: ")
            if isinstance(message, ResultMessage):
                tally.review_cost += message.total_cost_usd or 0.0
                final = message.result
    verdict = parse_review(final)
    request.transcript.line(f"bdp: review {'approved' if verdict.approved else 'has findings'}")
    return verdict


def _claim(tally: Tally) -> str:
    """The agent's claim that no code is needed ("" for a DONE with a diff)."""
    verdict = tally.verdict()
    if verdict is None or not verdict.outcome.needs_no_code:
        return ""
    cited = f" (commit {verdict.commit})" if verdict.commit else ""
    return f"{verdict.outcome.value}: {verdict.summary}{cited}"


def read_only_options(
    request: SessionRequest, settings: Settings, rules: str, **extra: Any
) -> ClaudeAgentOptions:
    """A reviewer's session: it reads the tree and is offered nothing that writes or runs
    commands (no other tool's definition is sent). ``extra`` adds options, such as an
    ``output_format`` (whose StructuredOutput tool is then offered too)."""
    offered = [*READ_ONLY_TOOLS, *(("StructuredOutput",) if "output_format" in extra else ())]
    return ClaudeAgentOptions(
        cwd=str(request.repo),
        env={RUN_ENV: request.run_id},
        model=settings.model,
        max_turns=settings.max_turns,
        permission_mode="default",
        tools=offered,
        allowed_tools=list(READ_ONLY_TOOLS),
        disallowed_tools=[*EDIT_TOOLS, "Bash"],
        system_prompt=rules,
        cli_path=detached_cli(settings),
        **extra,
    )
