"""What an epic's children put on the target branch, gathered for the epic's reviewer.

bdp's commits name their issue in a ``Bdp-Issue:`` trailer, so one `git log` of the target
finds every child's commits, and one `git show` their combined change. The reviewer gets
that, the epic's text, and what earlier reviews of the epic asked for; it can read the
tree for more. Children closed without a commit (ALREADY_DONE, OBSOLETE, or by hand) show
as closed with no commit, and their close reason says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bdp.models import Issue
from bdp.repo.epics import CHANGES_ASKED, EpicProgress, review_rounds_used
from bdp.repo.git import git

#: Commits of the target branch searched for the children's trailers (newest first).
HISTORY_DEPTH = 5_000
#: Characters of the children's combined change the reviewer is shown; it reads the rest.
MAX_CHANGE = 60_000
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class ChildWork:
    """One child of the epic and the commits that name it."""

    issue: Issue
    commits: tuple[str, ...] = ()  # "<short id> <subject>", oldest first


@dataclass(frozen=True)
class EpicBrief:
    """What an epic's reviewer is given."""

    epic: Issue
    children: tuple[ChildWork, ...]
    change: str = ""  # the children's commits, as `git show` prints them (cut)
    earlier: tuple[str, ...] = ()  # bdp's comments on what earlier reviews asked for
    rounds: int = 0  # times a review may file follow-ups before a person decides

    @property
    def rounds_used(self) -> int:
        return review_rounds_used(self.earlier)

    @property
    def last_round(self) -> bool:
        """Findings of this review go to a person, not into follow-ups."""
        return self.rounds_used >= self.rounds

    @property
    def exhausted(self) -> bool:
        """Every round has been used: no review runs again, a person decides."""
        return self.rounds_used > self.rounds


def gather(
    repo: Path, ref: str, epic: EpicProgress, comments: Sequence[str], rounds: int
) -> EpicBrief:
    """The brief for ``epic``: its children with their commits on ``ref``, and their change."""
    ids = {child.id for child in epic.children}
    found = _commits_naming(repo, ref, ids)
    children = tuple(ChildWork(c, tuple(found.get(c.id, ()))) for c in epic.children)
    shas = [line.split(" ", 1)[0] for child in children for line in child.commits]
    earlier = tuple(text for text in comments if CHANGES_ASKED in text)
    return EpicBrief(epic.issue, children, _change(repo, shas), earlier, rounds)


def _commits_naming(repo: Path, ref: str, issue_ids: set[str]) -> dict[str, list[str]]:
    """The commits on ``ref`` whose Bdp-Issue trailer is one of ``issue_ids``, oldest first."""
    log = git(
        repo,
        "log",
        f"-n{HISTORY_DEPTH}",
        "--reverse",
        f"--format=%h{_FIELD}%s{_FIELD}%(trailers:key=Bdp-Issue,valueonly,separator=%x20){_RECORD}",
        ref,
        "--",
    )
    found: dict[str, list[str]] = {}
    for record in log.split(_RECORD):
        parts = record.strip("\n").split(_FIELD)
        if len(parts) != 3:
            continue
        short, subject, named = parts
        for issue_id in set(named.split()) & issue_ids:
            found.setdefault(issue_id, []).append(f"{short} {subject}")
    return found


def _change(repo: Path, shas: list[str]) -> str:
    if not shas:
        return ""
    shown = git(repo, "show", "--no-color", "--no-ext-diff", "--no-textconv", "--stat", "-p", *shas)
    if len(shown) <= MAX_CHANGE:
        return shown
    return shown[:MAX_CHANGE] + "\n… (cut: read the files for the rest)\n"
