"""The epic review (``epic_review = true``): one read-only session before bdp closes an epic.

It runs as the epic's own task, once all the epic's children are closed, and ends in one of
three outcomes: DONE (approved: bdp closes the epic), FOLLOW_UPS (what is missing is filed as
new children of the epic, which keep it open until they close and it is reviewed again), or
BLOCKED (findings in the last round: a person decides). The reviewer reads the tree; it has
no edit tools and no Bash, so it cannot change what it reviews.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
)

from bdp.agent.confinement import SETTING_SOURCES
from bdp.agent.conversation import log_message
from bdp.agent.epic_prompt import (
    EPIC_REVIEWER_RULES,
    EpicVerdict,
    epic_output_format,
    epic_review_prompt,
    read_epic_verdict,
)
from bdp.agent.review import read_only_options
from bdp.agent.session import SessionRequest, SessionResult
from bdp.agent.tally import Tally
from bdp.config import Settings
from bdp.models import Outcome
from bdp.repo.beads import FollowUp
from bdp.repo.epic_work import EpicBrief
from bdp.repo.epics import CHANGES_ASKED


async def review_epic(
    request: SessionRequest, brief: EpicBrief, settings: Settings
) -> SessionResult:
    """Ask a reviewer whether the finished epic meets its goal; the outcome says what next."""
    tally = Tally(attempts=1)
    try:
        async with asyncio.timeout(request.deadline - time.time()):
            await _ask(request, brief, settings, tally)
    except TimeoutError:
        return tally.result(Outcome.TIMED_OUT, "the epic review ran out of time")
    except ClaudeSDKError as error:
        return tally.result(Outcome.FAILED, f"the epic review failed: {error}")
    if request.stop.is_set():
        return tally.result(request.stop.outcome, request.stop.reason)
    if tally.final_text is None and tally.structured is None:
        return tally.result(Outcome.FAILED, "the epic review gave no verdict")
    verdict = read_epic_verdict(tally.structured, tally.final_text)
    request.transcript.line(
        f"bdp: epic review {'approved' if verdict.approved else 'has findings'}"
    )
    return _outcome(brief, verdict, tally)


async def _ask(request: SessionRequest, brief: EpicBrief, settings: Settings, tally: Tally) -> None:
    options = read_only_options(
        request,
        settings,
        EPIC_REVIEWER_RULES,
        setting_sources=SETTING_SOURCES,
        output_format=epic_output_format(),
    )
    async with ClaudeSDKClient(options) as reviewer:
        await reviewer.query(epic_review_prompt(brief))
        async for message in reviewer.receive_response():
            tally.last_message = time.monotonic()
            log_message(request.transcript, message)
            if isinstance(message, AssistantMessage):
                tally.add_assistant(message)
            elif isinstance(message, ResultMessage):
                tally.add_result(message)
            request.progress.publish(tally.activity())
            if request.stop.is_set():
                return


def _outcome(brief: EpicBrief, verdict: EpicVerdict, tally: Tally) -> SessionResult:
    if verdict.approved:
        result = tally.result(Outcome.DONE, "the epic review approved it")
    elif brief.last_round:
        used = brief.rounds_used
        summary = f"{CHANGES_ASKED} after {used} rounds of follow-ups; a person decides"
        result = tally.result(Outcome.BLOCKED, f"{summary}: {verdict.findings}")
    else:
        number = f"round {brief.rounds_used + 1} of {brief.rounds}"
        result = tally.result(Outcome.FOLLOW_UPS, f"{CHANGES_ASKED} ({number}): {verdict.findings}")
        result.follow_ups = _children(brief, verdict)
    result.verdict = verdict.source
    return result


def _children(brief: EpicBrief, verdict: EpicVerdict) -> tuple[FollowUp, ...]:
    """The reviewer's follow-ups as children of the epic (saying where they come from); one
    from its findings if it listed none, so the epic always has open work to wait for."""
    epic = brief.epic
    listed = verdict.follow_ups or (
        FollowUp("", f"Finish epic {epic.id}: what its review found missing", verdict.findings),
    )
    found = f"Found by the review of epic {epic.id} ({epic.title})."
    return tuple(
        replace(f, found_in=epic.id, parent=epic.id, description=f"{f.description}\n\n{found}")
        for f in listed
    )
