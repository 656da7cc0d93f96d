"""The agent's final report: asked for as structured output, read back into a `Verdict`.

A session is started with a JSON schema (the SDK's ``output_format``); the CLI then offers
the model a tool to return its result in that shape, and hands it back as
``ResultMessage.structured_output``. That is what bdp trusts first. Older CLIs, a model that
never calls the tool, or a session cut short leave only text: the ``DONE: …`` line on the
last line of the final message is the fallback, and the verdict says which one it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bdp.models import Outcome
from bdp.repo.beads import FollowUp

#: The outcomes an agent may report; the rest are decided by bdp.
REPORTED = (
    Outcome.DONE,
    Outcome.BLOCKED,
    Outcome.UNFINISHED,
    Outcome.ALREADY_DONE,
    Outcome.OBSOLETE,
)
#: Follow-ups bdp files from one report at most (a runaway list is cut, not filed).
MAX_FOLLOW_UPS = 10

#: One follow-up, in a report and in the `file_issue` tool's arguments.
FOLLOW_UP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "issue_type": {"type": "string", "enum": ["task", "bug", "feature", "chore"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 4},
    },
    "required": ["title"],
}

#: What the session is asked to return (its ``output_format``).
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "outcome": {"type": "string", "enum": [o.value for o in REPORTED]},
        "summary": {"type": "string", "description": "one line: what you changed or found"},
        "reason": {"type": "string", "description": "BLOCKED/OBSOLETE: why"},
        "commit": {"type": "string", "description": "ALREADY_DONE: the commit that did it"},
        "follow_ups": {"type": "array", "items": FOLLOW_UP_SCHEMA},
    },
    "required": ["outcome", "summary"],
}


@dataclass(frozen=True)
class Verdict:
    """The agent's own account of how it ended, and where bdp read it."""

    outcome: Outcome
    summary: str
    source: str = "text"  # "structured" (the schema's answer) or "text" (the last line)
    commit: str = ""  # ALREADY_DONE: the commit the agent cites
    follow_ups: tuple[FollowUp, ...] = ()


_LINE = re.compile(
    r"^([\s*`>#_-]*)(DONE|BLOCKED|UNFINISHED|ALREADY_DONE|OBSOLETE)\b`?[*_]*\s*[:\-\u2014]?[*_]*"
    r"\s*(.*?)\s*$"
)

#: A commit id as an agent cites one in its text line (7 to 40 hex digits).
_COMMIT = re.compile(r"\b[0-9a-f]{7,40}\b")


def output_format() -> dict[str, Any]:
    """The SDK option that asks the session for its report in `REPORT_SCHEMA`'s shape."""
    return {"type": "json_schema", "schema": REPORT_SCHEMA}


def read_verdict(structured: object, text: str | None) -> Verdict | None:
    """The structured report when there is a usable one, else the text line, else None.

    Its follow-ups name no issue they were found in: the run that files them fills that in.
    """
    verdict = _from_report(structured)
    if verdict is not None:
        return verdict
    return parse_verdict(text)


def parse_verdict(text: str | None) -> Verdict | None:
    """The verdict on the last non-empty line, or None when the agent gave none."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    match = _LINE.match(lines[-1])
    if not match:
        return None
    outcome = Outcome(match.group(2))
    summary = _unwrap(match.group(3), match.group(1).strip(" >#-")) or _no_summary(outcome)
    cited = _COMMIT.search(summary) if outcome is Outcome.ALREADY_DONE else None
    return Verdict(outcome, summary, commit=cited.group(0) if cited else "")


def _unwrap(summary: str, opening: str) -> str:
    """Drop the closing half of markdown wrapped around the whole line (``**``, a backtick)."""
    closing = opening[::-1]
    summary = summary.strip()
    if closing and summary.endswith(closing):
        summary = summary[: -len(closing)].rstrip()
    return summary


def _no_summary(outcome: Outcome) -> str:
    return "done" if outcome is Outcome.DONE else "no reason given"


def _from_report(report: object) -> Verdict | None:
    if not isinstance(report, dict):
        return None
    try:
        outcome = Outcome(str(report.get("outcome", "")).strip().upper())
    except ValueError:
        return None
    if outcome not in REPORTED:
        return None
    summary = _text(report.get("summary"))
    reason = _text(report.get("reason"))
    if reason and outcome in (Outcome.BLOCKED, Outcome.OBSOLETE):
        summary = f"{summary}: {reason}" if summary and reason not in summary else reason
    summary = summary or _no_summary(outcome)
    follow_ups = read_follow_ups(report.get("follow_ups"))
    return Verdict(outcome, summary, "structured", _text(report.get("commit")), follow_ups)


def read_follow_ups(items: object) -> tuple[FollowUp, ...]:
    """The usable follow-ups of a structured answer (at most `MAX_FOLLOW_UPS`)."""
    if not isinstance(items, list):
        return ()
    found = []
    for item in items[:MAX_FOLLOW_UPS]:
        if isinstance(item, dict) and _text(item.get("title")):
            found.append(_follow_up(item))
    return tuple(found)


def _follow_up(item: dict[str, Any]) -> FollowUp:
    kind = _text(item.get("issue_type")) or "task"
    priority = item.get("priority")
    return FollowUp(
        found_in="",
        title=_text(item.get("title")),
        description=str(item.get("description") or "").strip(),
        issue_type=kind if kind in ("task", "bug", "feature", "chore") else "task",
        priority=priority if isinstance(priority, int) and 0 <= priority <= 4 else 2,
    )


def _text(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str | int | float) else ""
