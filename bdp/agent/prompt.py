"""What the agent is told, and how its final answer is read.

The last non-empty line of the session's final text is the machine-readable verdict:
``DONE: <one-line summary>`` or ``BLOCKED: <reason>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bdp.models import Issue, Outcome

_VERDICT = re.compile(
    r"^([\s*`>#_-]*)(DONE|BLOCKED|UNFINISHED)\b`?[*_]*\s*[:\-\u2014]?[*_]*\s*(.*?)\s*$"
)

RULES = """\
You are one of several coding agents working in the same git work tree at the same time.
Rules that keep everyone's work safe:
- Write only inside the repository. Edit files with the Write/Edit tools; bdp records them.
- Do not run git commands that touch other agents' uncommitted work: no git stash, git reset
  --hard, git checkout -- ., git clean, git add -A or git add ., git commit -a, git push.
  Do not commit at all: when you finish with DONE, bdp commits exactly the files you edited.
- If the work needs a follow-up that is out of scope, file it with the mcp__bdp__file_issue
  tool (bdp links it to {issue_id}) and mention it in your summary.
"""

RETRY_NOTE = (
    "An earlier attempt at this issue did not finish (its worker stopped or failed). "
    "Files may hold part of its work: check `git status` and `git diff` before you start."
)

WORKFLOW = """\
Work in this order:
1. Understand: read the code involved and how this repository is tested and checked.
2. Implement the change, in small steps.
3. Run the repository's own quality checks (tests, linters, type checks) and fix what fails.
4. Review your own diff as a careful reviewer would, and fix what you find.
5. End your final message with exactly one last line, either
   DONE: <one-line summary of what you changed>
   or, if you cannot finish (missing information, a decision for a human, a blocker),
   BLOCKED: <one-line reason>
   or, if the work is too big for this session but can go on later,
   UNFINISHED: <what is done and what remains>
"""

CONTINUE = (
    "Continue where you left off: finish the issue, run the checks, then end with the "
    "DONE / BLOCKED / UNFINISHED line."
)


LANDING = """\
Your finished work could not land on the target branch:

{why}

Your tree now holds the target branch's newest commit, with your changes applied again on top,
uncommitted. {task} Then run the checks and end with the DONE / BLOCKED line."""

CONFLICTS = (
    "These files hold git conflict markers (<<<<<<<, =======, >>>>>>>) where your changes and "
    "newer commits touched the same lines: {paths}. Resolve each conflict so that what both "
    "sides meant survives, and remove every marker."
)


def landing_message(why: str, conflicts: Sequence[str]) -> str:
    """What a session is told when its finished work comes back from the lander."""
    if conflicts:
        task = CONFLICTS.format(paths=", ".join(conflicts))
    else:
        task = "Make it work together with the newer commits."
    return LANDING.format(why=why.strip() or "it conflicted with newer commits", task=task)


@dataclass(frozen=True)
class Verdict:
    """The agent's own account of how it ended."""

    outcome: Outcome
    summary: str


def build_prompt(issue: Issue, repo: Path, attempt: int = 1, prior: str = "") -> str:
    """The first user message of a session: the issue, then the workflow."""
    parts = [
        f"Implement beads issue {issue.id} in the repository at {repo} (attempt {attempt}).",
        "",
    ]
    if attempt > 1:
        parts += [RETRY_NOTE, ""]
    if prior:
        parts += [
            "An earlier session on this issue ran out of room before finishing. "
            "Its work is in the tree, uncommitted. What it reported:",
            prior,
            "",
        ]
    parts.append(f"# {issue.id}: {issue.title}")
    for heading, text in (
        ("Description", issue.description),
        ("Design", issue.design),
        ("Acceptance criteria", issue.acceptance_criteria),
        ("Notes", issue.notes),
    ):
        if text.strip():
            parts += ["", f"## {heading}", text.strip()]
    parts += ["", WORKFLOW]
    return "\n".join(parts)


def system_rules(issue: Issue) -> str:
    return RULES.format(issue_id=issue.id)


def parse_verdict(text: str | None) -> Verdict | None:
    """The verdict on the last non-empty line, or None when the agent gave none."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    match = _VERDICT.match(lines[-1])
    if not match:
        return None
    outcome = Outcome(match.group(2))
    summary = _unwrap(match.group(3), match.group(1).strip(" >#-")) or (
        "done" if outcome is Outcome.DONE else "no reason given"
    )
    return Verdict(outcome, summary)


def _unwrap(summary: str, opening: str) -> str:
    """Drop the closing half of markdown wrapped around the whole line (``**``, a backtick)."""
    closing = opening[::-1]
    summary = summary.strip()
    if closing and summary.endswith(closing):
        summary = summary[: -len(closing)].rstrip()
    return summary


REVIEWER_RULES = """\
You review a change another agent made for one beads issue. You can read the repository but
not change it. Check that the change does what the issue asks, is correct, is tested, and
fits the code around it. End with exactly one last line: APPROVE, or
CHANGES: <the findings, briefly, as one line>.
"""


@dataclass(frozen=True)
class Review:
    """A reviewer's verdict on a change."""

    approved: bool
    findings: str

    def feedback(self) -> str:
        return (
            f"A reviewer read your change and asks for changes:\n\n{self.findings}\n\n"
            "Address them, run the checks, then end again with the DONE / BLOCKED line."
        )


def review_prompt(issue: Issue, diff: str) -> str:
    return (
        f"Review the change for beads issue {issue.id}: {issue.title}\n\n"
        f"{issue.description.strip()}\n\nAcceptance criteria: "
        f"{issue.acceptance_criteria.strip() or 'none given'}\n\nThe diff:\n\n```diff\n{diff}\n```"
    )


def parse_review(text: str | None) -> Review:
    """APPROVE on the last line approves; anything else counts as findings."""
    lines = [line.strip(" *`") for line in (text or "").splitlines() if line.strip()]
    if lines and lines[-1].upper().startswith("APPROVE"):
        return Review(True, "")
    if lines and lines[-1].startswith("CHANGES"):
        return Review(False, lines[-1].partition(":")[2].strip() or "\n".join(lines))
    return Review(False, "\n".join(lines) or "the reviewer gave no verdict")
