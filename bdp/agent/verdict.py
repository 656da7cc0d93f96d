"""How a finished session's tally becomes its result: the agent's verdict, checked.

The agent's own report (DONE, BLOCKED, UNFINISHED, ALREADY_DONE, OBSOLETE: structured, or
its last line) counts only when nothing contradicts it: a spent budget, a full context, a
gate still failing, the turn limit, or a reviewer who still has findings.
"""

from __future__ import annotations

from bdp.agent.report import Verdict
from bdp.agent.session import SessionResult
from bdp.agent.tally import Tally
from bdp.models import Outcome

#: Characters of a failing gate's output kept with the outcome (and its bd comment).
GATE_EXCERPT = 1500

#: ResultMessage.subtype when the session crossed ``max_budget_usd``.
OVER_BUDGET = "error_max_budget_usd"
#: ResultMessage.subtype when the session used all its turns.
MAX_TURNS = "error_max_turns"


def session_result(tally: Tally, max_turns: int) -> SessionResult:
    """The result of a session that ran to its end (not stopped, not failed)."""
    result = _plain_result(tally, max_turns)
    review = tally.review
    if review is not None:
        result.review = "APPROVE" if review.approved else f"CHANGES: {review.findings}"
        result.review_cost_usd = round(tally.review_cost, 6)
        if not review.approved and result.outcome.closes_issue:
            result.outcome, result.summary = Outcome.FAILED, "the reviewer still has findings"
            result.details = review.findings
    return result


def _plain_result(tally: Tally, max_turns: int) -> SessionResult:
    if tally.subtype == OVER_BUDGET:
        summary = f"stopped at ${tally.cost_usd:.2f}: over the issue's budget"
        return tally.result(Outcome.OVER_BUDGET, summary)
    if tally.context_full:
        return tally.result(Outcome.UNFINISHED, "the session's context is full")
    gate = tally.gate
    verdict = tally.verdict()
    if gate and not gate.passed and verdict and verdict.outcome.closes_issue:
        result = tally.result(Outcome.FAILED, f"quality gate still failing: {gate.command}")
        result.details = gate.output[-GATE_EXCERPT:]  # the whole tail is in the run's log
        return result
    if tally.subtype == MAX_TURNS:
        return tally.result(Outcome.UNFINISHED, f"reached the limit of {max_turns} turns")
    if verdict is None:
        return tally.result(Outcome.FAILED, "the session ended without a report or a DONE line")
    return _verdict_result(tally, verdict)


def _verdict_result(tally: Tally, verdict: Verdict) -> SessionResult:
    """The agent's own verdict, with where it was read and what it asks bdp to do."""
    result = tally.result(verdict.outcome, verdict.summary)
    result.verdict = verdict.source
    result.cited_commit = verdict.commit
    result.follow_ups = verdict.follow_ups
    return result
