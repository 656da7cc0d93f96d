"""`bdp enqueue`: ready bd issues become queued tasks, each issue at most once.

The per-(repo, issue) marker is taken atomically before the task is queued, so repeated or
concurrent enqueues of the same backlog never queue an issue twice.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from bdp.errors import BeadsError
from bdp.models import Issue, TaskArgs
from bdp.queue.app import App
from bdp.repo import known_repos
from bdp.repo.beads import INSTALL_BD, BdCli
from bdp.repo.git import work_tree_root
from bdp.repo.selection import ReadyFilters, Scope, select

EnqueueState = Literal[
    "queued", "already queued", "running", "would queue", "not ready", "landed already"
]
#: The states of an issue this enqueue (or an earlier one) has queued, or that is running.
TAKEN: frozenset[EnqueueState] = frozenset({"queued", "already queued", "running"})


@dataclass(frozen=True)
class EnqueueOptions:
    """Which ready issues to queue, and with what budget."""

    filters: ReadyFilters = field(default_factory=ReadyFilters)
    max_cost: float | None = None  # each issue's budget in USD (else BDP_MAX_COST_PER_ISSUE)
    dry_run: bool = False  # report what would be queued; queue nothing
    isolation: str | None = None  # carried in each task: "worktree" or "shared"
    skip: frozenset[str] = frozenset()  # ids not to queue (done or tried in this `bdp run`)
    scope: Scope = field(default_factory=Scope)  # --ids, --epic and --order


class WatchReport(Protocol):
    """Where `watch_ready` reports: issues it queued, and polls that failed."""

    def queued(self, items: list[Enqueued]) -> None: ...
    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Enqueued:
    """One ready issue and what enqueue did with it."""

    issue: Issue
    state: EnqueueState


def resolve_repo(path: Path, bd: str) -> Path:
    """The work tree root of ``path``, after checking it and that `bd` can be run."""
    root = work_tree_root(path.expanduser().resolve())
    if shutil.which(bd) is None and not os.access(bd, os.X_OK):
        raise BeadsError(
            f"`{bd}` was not found on PATH",
            INSTALL_BD,
        )
    return root


def enqueue_ready(app: App, path: Path, options: EnqueueOptions) -> list[Enqueued]:
    """Queue one task per ready issue of the repo at ``path`` in scope, in the scope's order;
    report each issue's state (issues named with --ids that are not ready, too)."""
    root = resolve_repo(path, app.settings.bd)
    repo = app.settings.repo_key(root)  # its BDP_REPOS name, when it has one
    chosen = select(BdCli(root, app.settings.bd), options.filters, options.scope)
    issues = [issue for issue in chosen.ready if issue.id not in options.skip]
    if issues and not options.dry_run:
        app.state.remember_repo(repo)
        known_repos.remember(app.settings.home, str(root))
    landed = set(app.claims.landed(repo, [issue.id for issue in issues]))  # bd may lag behind
    queued = [
        Enqueued(issue, "landed already")
        if issue.id in landed
        else _enqueue_one(app, repo, issue, options)
        for issue in issues
    ]
    unready = [issue for issue in chosen.not_ready if issue.id not in options.skip]
    return queued + [_marked(app, repo, i) or Enqueued(i, "not ready") for i in unready]


def _marked(app: App, repo: str, issue: Issue) -> Enqueued | None:
    """The issue's state when it has a marker (queued by anyone, or running), else None."""
    marker = app.state.marker(repo, issue.id)
    if marker is None:
        return None
    return Enqueued(issue, "running" if marker.state == "running" else "already queued")


def _enqueue_one(app: App, repo: str, issue: Issue, options: EnqueueOptions) -> Enqueued:
    marked = _marked(app, repo, issue)
    if marked is not None:
        return marked
    if options.dry_run:
        return Enqueued(issue, "would queue")
    args = TaskArgs(
        repo,
        issue.id,
        1,
        max_cost=options.max_cost,
        isolation=options.isolation,
        parent=issue.parent,
    )  # the parent as bd listed it ("": none), which a claim's answer does not name
    task = app.tasks.queue(args)
    if not app.state.mark_queued(repo, issue.id, task.id, args.to_task()):
        return Enqueued(issue, "already queued")
    try:
        app.huey.enqueue(task)
    except BaseException:
        app.state.unmark(repo, issue.id)
        raise
    return Enqueued(issue, "queued")


def watch_ready(
    app: App, path: Path, options: EnqueueOptions, interval: float, report: WatchReport
) -> None:
    """Queue ready issues every ``interval`` seconds until interrupted (Ctrl-C).

    Picks up issues filed or unblocked since the last poll; issues already queued or running
    are skipped by the markers, so polling often is cheap and safe. A failing first poll is a
    mistake to report; a later one (Redis restarting, bd busy) is warned about and retried.
    """
    first = True
    while True:
        try:
            found = enqueue_ready(app, path, options)
        except Exception as error:
            if first:
                raise
            report.warn(f"poll failed, trying again in {interval:g}s: {error}")
        else:
            report.queued([e for e in found if e.state == "queued"])
        first = False
        time.sleep(interval)
