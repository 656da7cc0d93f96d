"""What an epic's reviewer is told and asked to return, and how its answer is read.

The reviewer checks the epic's description and acceptance criteria against what its
children landed. Its answer is asked for as structured output (the verdict, the findings,
and follow-up issues for what is missing); a text reply ending in ``APPROVE`` or
``CHANGES: …`` is the fallback, read like a diff reviewer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bdp.agent.prompt import parse_review
from bdp.agent.report import FOLLOW_UP_SCHEMA, read_follow_ups
from bdp.repo.beads import FollowUp
from bdp.repo.epic_work import ChildWork, EpicBrief

EPIC_REVIEWER_RULES = """\
You review a finished epic of a beads backlog: all of its child issues are closed, and bdp
is about to close the epic. You can read the repository but not change it. Check the epic's
description and acceptance criteria against what the children put on the branch. Approve
when the epic's goal is met. Otherwise say what is missing and list it as follow-up issues,
each small enough for one agent session, with what done means in its description.
"""

#: What the reviewer returns (its ``output_format``).
EPIC_REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["APPROVE", "CHANGES"]},
        "findings": {"type": "string", "description": "CHANGES: what is missing, briefly"},
        "follow_ups": {"type": "array", "items": FOLLOW_UP_SCHEMA},
    },
    "required": ["verdict"],
}

_ANSWER = (
    "Return your verdict with the StructuredOutput tool: APPROVE, or CHANGES with the findings "
    "and one follow-up per missing piece. Without that tool, end with exactly one last line: "
    "APPROVE, or CHANGES: <the findings, as one line>."
)


@dataclass(frozen=True)
class EpicVerdict:
    """The reviewer's answer: approve, or what is missing (and the issues to file for it)."""

    approved: bool
    findings: str = ""
    follow_ups: tuple[FollowUp, ...] = ()
    source: str = "text"  # "structured" or "text", as for an agent's report


def epic_output_format() -> dict[str, Any]:
    return {"type": "json_schema", "schema": EPIC_REVIEW_SCHEMA}


def epic_review_prompt(brief: EpicBrief) -> str:
    """The reviewer's task: the epic, each child and its commits, earlier findings, the change."""
    epic = brief.epic
    parts = [
        f"Review the finished epic {epic.id}: {epic.title}",
        "",
        epic.description.strip() or "(no description)",
        "",
        f"Acceptance criteria: {epic.acceptance_criteria.strip() or 'none given'}",
        "",
        "Its children, all closed:",
        *(_child_line(child) for child in brief.children),
    ]
    if brief.earlier:
        parts += ["", "Earlier reviews of this epic asked for:", *brief.earlier]
        parts += ["Their follow-ups are among the children above."]
    if brief.change:
        parts += ["", "What the children's commits changed:", "", brief.change]
    return "\n".join([*parts, "", _ANSWER])


def _child_line(child: ChildWork) -> str:
    commits = "; ".join(child.commits) if child.commits else "no commit of bdp's names it"
    return f"- {child.issue.id} {child.issue.title} [{commits}]"


def read_epic_verdict(structured: object, text: str | None) -> EpicVerdict:
    """The structured answer when usable, else the text's last line (findings otherwise)."""
    if isinstance(structured, dict):
        verdict = str(structured.get("verdict", "")).strip().upper()
        if verdict in ("APPROVE", "CHANGES"):
            findings = " ".join(str(structured.get("findings") or "").split())
            follow_ups = read_follow_ups(structured.get("follow_ups"))
            return EpicVerdict(verdict == "APPROVE", findings, follow_ups, "structured")
    review = parse_review(text)
    return EpicVerdict(review.approved, review.findings)
