"""Epics: bd issues that group others, their children, and have no work of their own.

bdp never gives an epic to an agent, and closes one once every child is closed: bd lists
epics in `bd ready` like any issue, and leaves an epic open when its last child closes (it
only refuses to close one that still has open children). Closing is idempotent: two workers
that close an epic's last two children at once may both close it, and bd takes the second
close of a closed issue as a success.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bdp.errors import BdpError
from bdp.models import Issue

log = logging.getLogger(__name__)

EPIC = "epic"
#: Levels of epics above an issue that one close may finish (bd's default nesting limit is 3).
MAX_DEPTH = 8
#: What bdp's comment on an epic says when its review found something missing: bd's comments
#: are where the rounds an epic's review has had are counted, so a restart forgets none.
CHANGES_ASKED = "the epic review asked for changes"


def is_epic(issue: Issue) -> bool:
    return issue.issue_type == EPIC


@dataclass(frozen=True)
class EpicProgress:
    """An epic and its direct children as bd last reported them."""

    issue: Issue
    children: tuple[Issue, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpicProgress:
        """From one element of `bd show --include-dependents --json`: its parent-child
        dependents are the children (shallow: id, title, status, priority, type)."""
        dependents = data.get("dependents") or ()
        children = tuple(
            Issue.from_json(d)
            for d in dependents
            if isinstance(d, dict) and d.get("dependency_type") == "parent-child"
        )
        return cls(Issue.from_json(data), children)

    @property
    def done(self) -> int:
        return sum(child.status == "closed" for child in self.children)

    @property
    def total(self) -> int:
        return len(self.children)

    def finished(self, closed: Iterable[str] = ()) -> bool:
        """An open epic whose children are all closed (in bd, or in ``closed``)."""
        also = set(closed)
        return (
            self.issue.status != "closed"
            and bool(self.children)
            and all(c.status == "closed" or c.id in also for c in self.children)
        )

    def close_reason(self) -> str:
        ids = ", ".join(child.id for child in self.children)
        noun = "child" if self.total == 1 else "children"
        return f"all {self.total} {noun} closed: {ids}"

    def to_json(self) -> dict[str, Any]:
        issue = self.issue
        return {"id": issue.id, "title": issue.title, "done": self.done, "total": self.total}


def progress_of(issues: Sequence[Issue]) -> list[EpicProgress]:
    """The open epics among ``issues`` that have children there, with those children: for a
    listing of every issue of a repo (one bd call for `bdp status`)."""
    children: dict[str, list[Issue]] = {}
    for issue in issues:
        if issue.parent:
            children.setdefault(issue.parent, []).append(issue)
    return [
        EpicProgress(issue, tuple(children[issue.id]))
        for issue in issues
        if is_epic(issue) and issue.status != "closed" and issue.id in children
    ]


def to_close(epics: Sequence[EpicProgress]) -> list[EpicProgress]:
    """The epics to close, children first: an epic whose last open child is an epic closed
    here is closed too, in the same pass."""
    closing: dict[str, EpicProgress] = {}
    while True:
        ready = [e for e in epics if e.issue.id not in closing and e.finished(closing)]
        if not ready:
            return list(closing.values())
        closing.update((epic.issue.id, epic) for epic in ready)


def review_rounds_used(comments: Iterable[str]) -> int:
    """How many of an epic's reviews found something missing (bdp's comments say so)."""
    return sum(CHANGES_ASKED in text for text in comments)


class EpicBeads(Protocol):
    """What closing epics needs of bd (every `bdp.repo.beads.Beads` has it)."""

    def show(self, issue_id: str) -> Issue: ...
    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]: ...
    def close(self, issue_id: str, reason: str, actor: str) -> None: ...
    def comment_texts(self, issue_id: str) -> list[str]: ...


def close_open_epics(beads: EpicBeads, actor: str) -> list[str]:
    """Close every open epic whose children are all closed (the janitor's backstop); their ids.

    Costs one `bd list --type epic`, one `bd show` of the open epics and a close per epic.
    """
    closed = []
    for epic in to_close(beads.epics()):
        try:
            beads.close(epic.issue.id, epic.close_reason(), actor)
        except BdpError as error:  # a child reopened meanwhile, or bd is busy: next sweep
            log.warning("could not close epic %s: %s", epic.issue.id, error)
            continue
        closed.append(epic.issue.id)
    return closed


def finished_parent(beads: EpicBeads, issue: Issue) -> EpicProgress | None:
    """The epic ``issue`` is a child of, when it is open and all its children are closed.

    ``issue.parent`` is used when set; else one `bd show` finds it (a claim's answer has no
    parent), so an issue with no parent costs one bd call.
    """
    parent = issue.parent or beads.show(issue.id).parent
    if not parent:
        return None
    [epic] = beads.epics([parent])
    return epic if is_epic(epic.issue) and epic.finished() else None


def close_parents(beads: EpicBeads, issue: Issue, actor: str) -> list[str]:
    """After ``issue`` closed: close its epic if that was the last open child, then that
    epic's epic, and so on up; the ids closed."""
    closed: list[str] = []
    epic = finished_parent(beads, issue)
    while epic is not None and epic.issue.id not in closed and len(closed) < MAX_DEPTH:
        beads.close(epic.issue.id, epic.close_reason(), actor)
        log.info("closed epic %s: %s", epic.issue.id, epic.close_reason())
        closed.append(epic.issue.id)
        epic = finished_parent(beads, epic.issue) if epic.issue.parent else None
    return closed
