"""What the agent is told: the issue, the rules, the workflow, the rounds that follow.

How its final answer is read is `bdp.agent.report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bdp.models import Issue

#: The system prompt's part that is bdp's: the same for every session, so that the system
#: prompt is too and the API serves it from its prompt cache. What differs from one session
#: to the next (the issue, its attempt, the repository) goes in the first user message.
RULES = """\
You are one of several coding agents working in the same git work tree at the same time.
Rules that keep everyone's work safe:
- Write only inside the repository. Edit files with the Write/Edit tools; bdp records them.
- Do not run git commands that touch other agents' uncommitted work: no git stash, git reset
  --hard, git checkout -- ., git clean, git add -A or git add ., git commit -a, git push.
  Do not commit at all: when you finish with DONE, bdp commits exactly the files you edited.
- Work you find that is out of this issue's scope goes in your report's follow_ups: bdp files
  each one as an issue discovered from the issue you work on.
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
5. Finish by returning your report with the StructuredOutput tool. Its outcome is one of
   DONE (summary: what you changed), BLOCKED (reason: missing information, a decision for a
   human, a blocker), UNFINISHED (too big for this session: what is done, what remains),
   ALREADY_DONE (the change exists already: commit, the commit that made it, and no edits), or
   OBSOLETE (the issue no longer applies: reason, and no edits).
   If you cannot return a report, end your final message with one last line instead:
   DONE: <summary>, BLOCKED: <reason>, UNFINISHED: <what remains>,
   ALREADY_DONE: <the commit and how it does this> or OBSOLETE: <why>.
"""

CONTINUE = (
    "Continue where you left off: finish the issue, run the checks, then return your report "
    "(DONE / BLOCKED / UNFINISHED)."
)


LANDING = """\
Your finished work could not land on the target branch:

{why}

Your tree now holds the target branch's newest commit, with your changes applied again on top,
uncommitted. {task} Then run the checks and return your report again (DONE / BLOCKED)."""

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
            "Address them, run the checks, then return your report again (DONE / BLOCKED)."
        )


def review_prompt(issue: Issue, diff: str, claim: str = "") -> str:
    """The reviewer's task: the issue, then the diff, or the agent's claim that none is needed."""
    head = (
        f"Review the change for beads issue {issue.id}: {issue.title}\n\n"
        f"{issue.description.strip()}\n\nAcceptance criteria: "
        f"{issue.acceptance_criteria.strip() or 'none given'}\n\n"
    )
    if claim:
        return head + CLAIM_REVIEW.format(claim=claim)
    return head + f"The diff:\n\n```diff\n{diff}\n```"


CLAIM_REVIEW = (
    "The agent changed nothing. It claims that no change is needed: {claim}\n"
    "Read the code involved and check the claim. APPROVE only if the repository already "
    "does what the issue asks (or the issue truly no longer applies)."
)


def parse_review(text: str | None) -> Review:
    """APPROVE on the last line approves; anything else counts as findings."""
    lines = [line.strip(" *`") for line in (text or "").splitlines() if line.strip()]
    if lines and lines[-1].upper().startswith("APPROVE"):
        return Review(True, "")
    if lines and lines[-1].startswith("CHANGES"):
        return Review(False, lines[-1].partition(":")[2].strip() or "\n".join(lines))
    return Review(False, "\n".join(lines) or "the reviewer gave no verdict")
