"""Terminal rendering of bdp's results with rich; no logic beyond layout."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.markup import escape
from rich.table import Table

from bdp.models import Outcome, RunRecord

if TYPE_CHECKING:  # enqueue pulls in Huey; status rendering must not
    from bdp.queue.enqueue import Enqueued

_STYLE = {
    "queued": "green",
    "would queue": "cyan",
    "already queued": "yellow",
    "running": "magenta",
    "landed already": "dim",
    Outcome.DONE: "green",
    Outcome.BLOCKED: "yellow",
    Outcome.FAILED: "red",
    Outcome.TIMED_OUT: "red",
    Outcome.SKIPPED: "dim",
    Outcome.INTERRUPTED: "yellow",
    Outcome.SUPERSEDED: "dim",
    Outcome.ABANDONED: "red",
    Outcome.OVER_BUDGET: "red",
    Outcome.PAUSED: "yellow",
    Outcome.NO_CHANGE: "yellow",
    Outcome.UNFINISHED: "cyan",
    Outcome.ALREADY_DONE: "green",
    Outcome.OBSOLETE: "green",
    Outcome.FOLLOW_UPS: "cyan",
}


def age(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h04m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def styled(state: str) -> str:
    """An enqueue state or an outcome, in its colour."""
    return f"[{_STYLE.get(state, '')}]{state}[/]"


def _table(title: str, columns: Iterable[str], title_style: str = "") -> Table:
    table = Table(title=title, title_justify="left", title_style=title_style or None)
    for column in columns:
        table.add_column(column)
    return table


def compact_table(title: str, title_style: str = "bold") -> Table:
    """A table with a rule under its header and spaces between columns: no box to eat the
    width of a narrow terminal, or to come along when a row is selected and copied."""
    return Table(
        title=title,
        title_justify="left",
        title_style=title_style,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def enqueue_table(results: Iterable[Enqueued]) -> Table:
    table = _table("bdp enqueue", ("issue", "priority", "title", "state"))
    for item in results:
        issue = item.issue
        table.add_row(issue.id, f"P{issue.priority}", issue.title, styled(item.state))
    return table


def id_column(table: Table, header: str, ids: Iterable[str]) -> None:
    """A column of ids a person copies: never wrapped, never narrower than the longest id
    (rich narrows the other columns instead)."""
    widest = max((len(value) for value in ids), default=0)
    table.add_column(header, no_wrap=True, min_width=max(widest, len(header)))


def repo_cells(repo: str, shared: bool) -> tuple[str, ...]:
    """The repo column's cell (the repo's directory name) when several repos share a table."""
    return (escape(Path(repo).name or repo),) if shared else ()


def outcome_table(
    records: Sequence[RunRecord], title: str, shared: bool = False, compact: bool = False
) -> Table:
    """One row per run: issue, outcome, attempt, time, turns, cost, summary (and repo)."""
    table = compact_table(title) if compact else Table(title=title, title_justify="left")
    id_column(table, "issue", [r.issue_id for r in records])
    for column in ("outcome", "attempt", "time", "turns", "cost", "summary"):
        table.add_column(column)
    if shared:
        table.add_column("repo")
    for r in records:
        cost = f"${r.cost_usd:.4f}"
        row = (r.issue_id, styled(r.outcome), str(r.attempt), age(r.duration), str(r.turns), cost)
        table.add_row(*row, escape(r.summary), *repo_cells(r.repo, shared))
    return table


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
