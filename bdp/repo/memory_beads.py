"""An in-memory double of `bdp.repo.beads.Beads` with bd's claim rules, for unit tests and
benchmarks: no subprocess, no store on disk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bdp.errors import BeadsError, UnknownIssue
from bdp.models import Issue
from bdp.repo.beads import Claim, FollowUp, ReadyFilters
from bdp.repo.epics import EpicProgress, is_epic


class MemoryBeads:
    """In-memory double of `Beads` with bd's claim rules, for unit tests and benchmarks."""

    def __init__(self, issues: list[Issue] | None = None) -> None:
        self.issues = {issue.id: issue for issue in issues or []}
        self.comments: dict[str, list[str]] = {}
        self.close_reasons: dict[str, str] = {}
        self.found_from: dict[str, str] = {}  # a filed follow-up and where it was found
        self.blockers: dict[str, set[str]] = {}  # issue -> the issues it waits for

    def ready(self, filters: ReadyFilters) -> list[Issue]:
        ready = [
            i
            for i in self.issues.values()
            if i.status == "open" and not i.assignee and not self._waits(i.id)
        ]
        return ready[: filters.limit] if filters.limit else ready

    def _waits(self, issue_id: str) -> bool:
        blockers = self.blockers.get(issue_id, set())
        return any(self.issues[b].status != "closed" for b in blockers if b in self.issues)

    def show(self, issue_id: str) -> Issue:
        if issue_id not in self.issues:
            raise UnknownIssue(f"bd knows no issue {issue_id!r}", "check the id with `bd list`")
        return self.issues[issue_id]

    def claim(self, issue_id: str, actor: str) -> Claim:
        issue = self.show(issue_id)
        if issue.assignee and issue.assignee != actor:
            return Claim(False, f"issue already claimed by {issue.assignee}")
        if issue.status != "open" and issue.assignee != actor:
            return Claim(False, f"issue not claimable: status {issue.status}")
        self.issues[issue_id] = replace(issue, status="in_progress", assignee=actor)
        return Claim(True, issue=self.issues[issue_id])

    def close(self, issue_id: str, reason: str, actor: str) -> None:
        issue = self.show(issue_id)
        left = [c for c in self._children(issue_id) if c.status != "closed"]
        if is_epic(issue) and left:  # as bd: "cannot close epic X: N open child issue(s)"
            raise BeadsError(f"bd could not close {issue_id}: {len(left)} open child issue(s)")
        self.issues[issue_id] = replace(issue, status="closed")
        self.close_reasons[issue_id] = reason

    def reset(self, issue_id: str, actor: str) -> None:
        self.issues[issue_id] = replace(self.show(issue_id), status="open", assignee="")

    def file(self, follow_up: FollowUp, actor: str) -> str:
        self.show(follow_up.found_in)
        new = Issue(f"m-{len(self.issues) + 1}", follow_up.title, follow_up.description)
        self.issues[new.id] = replace(new, issue_type=follow_up.issue_type, parent=follow_up.parent)
        if not follow_up.parent:
            self.found_from[new.id] = follow_up.found_in
        return new.id

    def comment(self, issue_id: str, text: str, actor: str) -> None:
        self.show(issue_id)
        self.comments.setdefault(issue_id, []).append(text)

    def comment_texts(self, issue_id: str) -> list[str]:
        self.show(issue_id)
        return list(self.comments.get(issue_id, []))

    def discovered(self, issue_id: str) -> dict[str, str]:
        self.show(issue_id)
        found = [new for new, origin in self.found_from.items() if origin == issue_id]
        return {self.issues[new].title: new for new in found}

    def add_dependency(self, issue_id: str, depends_on: str, actor: str) -> None:
        self.show(issue_id)
        self.show(depends_on)
        self.blockers.setdefault(issue_id, set()).add(depends_on)

    def renew_lease(self, issue_id: str, actor: str) -> None:
        self.show(issue_id)

    def in_progress(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.status == "in_progress"]

    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]:
        open_epics = [i.id for i in self.issues.values() if is_epic(i) and i.status != "closed"]
        ids = list(epic_ids) or open_epics
        return [EpicProgress(self.show(e), tuple(self._children(e))) for e in ids]

    def _children(self, parent: str) -> list[Issue]:
        return [issue for issue in self.issues.values() if issue.parent == parent]
