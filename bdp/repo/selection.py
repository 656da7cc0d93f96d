"""Which ready issues bdp takes, and in what order.

Two layers: the filters bd applies itself (`bd ready`'s flags, `ReadyFilters`), and the scope
bdp applies on top (`Scope`: named ids, an epic's descendants, the queue order). Epics are
never taken, whatever the scope: they have no work of their own (`bdp.repo.epics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bdp.errors import ConfigError
from bdp.models import Issue
from bdp.repo.epics import is_epic

#: The orders tasks are queued in: bd's priority order, oldest first, or as --ids lists them.
ORDERS = ("priority", "created", "input")
_BD_SORT = {"priority": "priority", "created": "oldest"}


@dataclass(frozen=True)
class ReadyFilters:
    """Filters passed through to `bd ready`."""

    limit: int = 0
    priority: int | None = None
    labels: tuple[str, ...] = ()
    issue_type: str | None = None
    parent: str | None = None  # only descendants of this issue (an epic), at any depth
    sort: str | None = None  # bd's order: priority (its default) or oldest

    def args(self) -> list[str]:
        args = ["--limit", str(self.limit)]
        for flag, value in (("--parent", self.parent), ("--sort", self.sort)):
            args += [flag, value] if value else []
        if self.priority is not None:
            args += ["--priority", str(self.priority)]
        for label in self.labels:
            args += ["--label", label]
        if self.issue_type:
            args += ["--type", self.issue_type]
        return args


@dataclass(frozen=True)
class Scope:
    """The part of the backlog to work on: named issues, an epic's descendants, or all."""

    ids: tuple[str, ...] = ()
    epic: str | None = None
    order: str = "priority"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"unknown order {self.order!r}", f"use one of {', '.join(ORDERS)}")
        if self.order == "input" and not self.ids:
            raise ConfigError("--order input needs --ids", "name the issues in order: --ids A,B,C")

    @classmethod
    def parse(cls, ids: str | None, epic: str | None, order: str) -> Scope:
        """From the command line: ``ids`` is a comma list (duplicates dropped)."""
        named = tuple(dict.fromkeys(part.strip() for part in (ids or "").split(",")))
        named = tuple(part for part in named if part)
        if ids is not None and not named:
            raise ConfigError("--ids names no issue", "give ids separated by commas: --ids A,B")
        return cls(named, epic or None, order)


@dataclass(frozen=True)
class Selection:
    """What a scope takes from `bd ready`, in queue order, and the named issues it does not."""

    ready: list[Issue] = field(default_factory=list)
    not_ready: list[Issue] = field(default_factory=list)  # named, but bd does not offer them


class ReadySource(Protocol):
    """What selecting needs of bd (`bdp.repo.beads.BdCli` has it)."""

    def ready(self, filters: ReadyFilters) -> list[Issue]: ...
    def show(self, issue_id: str) -> Issue: ...
    def show_many(self, issue_ids: Sequence[str]) -> list[Issue]: ...


def select(bd: ReadySource, filters: ReadyFilters, scope: Scope) -> Selection:
    """The ready issues in ``scope``, epics left out, at most ``filters.limit`` of them.

    Named ids and the epic are looked up first, so an id bd does not know is an error
    (UnknownIssue) before anything is queued. bd is asked for every ready issue, and the
    limit applied after the epics and the ids not named are left out.
    """
    named = bd.show_many(scope.ids) if scope.ids else []
    parent = bd.show(scope.epic).id if scope.epic else None
    query = replace(filters, limit=0, parent=parent, sort=_BD_SORT.get(scope.order))
    ready = [issue for issue in bd.ready(query) if not is_epic(issue)]
    if scope.ids:
        position = {issue.id: n for n, issue in enumerate(named)}
        ready = [issue for issue in ready if issue.id in position]
        if scope.order == "input":
            ready.sort(key=lambda issue: position[issue.id])
    offered = {issue.id for issue in ready}
    not_ready = [issue for issue in named if issue.id not in offered and not is_epic(issue)]
    return Selection(ready[: filters.limit] if filters.limit else ready, not_ready)
