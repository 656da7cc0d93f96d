"""How a finished session's tally becomes its result: the agent's verdict, checked.

The agent's own last line (DONE, BLOCKED, UNFINISHED) counts only when nothing contradicts
it: a spent budget, a full context, a gate still failing, the turn limit, or a reviewer who
still has findings.
"""

from __future__ import annotations

from bdp.agent.prompt import parse_verdict
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
        if not review.approved and result.outcome is Outcome.DONE:
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
    verdict = parse_verdict(tally.final_text)
    if gate and not gate.passed and verdict and verdict.outcome is Outcome.DONE:
        result = tally.result(Outcome.FAILED, f"quality gate still failing: {gate.command}")
        result.details = gate.output[-GATE_EXCERPT:]  # the whole tail is in the run's log
        return result
    if tally.subtype == MAX_TURNS:
        return tally.result(Outcome.UNFINISHED, f"reached the limit of {max_turns} turns")
    if verdict is None:
        return tally.result(Outcome.FAILED, "the session ended without a DONE or BLOCKED line")
    return tally.result(verdict.outcome, verdict.summary)
