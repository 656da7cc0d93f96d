"""Terminal rendering of bdp's results with rich; no logic beyond layout."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bdp.models import Outcome, RunRecord
from bdp.status import StatusReport

if TYPE_CHECKING:  # enqueue pulls in Huey; status rendering must not
    from bdp.enqueue import Enqueued

_STYLE = {
    "queued": "green", "would queue": "cyan", "already queued": "yellow", "running": "magenta",
    Outcome.DONE: "green", Outcome.BLOCKED: "yellow", Outcome.FAILED: "red",
    Outcome.TIMED_OUT: "red", Outcome.SKIPPED: "dim", Outcome.INTERRUPTED: "yellow",
    Outcome.SUPERSEDED: "dim", Outcome.ABANDONED: "red",
}  # fmt: skip


def age(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h04m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def enqueue_table(results: Iterable[Enqueued]) -> Table:
    table = Table(title="bdp enqueue", title_justify="left")
    for column in ("issue", "priority", "title", "state"):
        table.add_column(column)
    for item in results:
        style = _STYLE.get(item.state, "")
        table.add_row(item.issue.id, f"P{item.issue.priority}", item.issue.title,
                      f"[{style}]{item.state}[/]")  # fmt: skip
    return table


def outcome_table(records: Iterable[RunRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("issue", "outcome", "attempt", "time", "turns", "cost", "summary"):
        table.add_column(column)
    for r in records:
        style = _STYLE.get(r.outcome, "")
        table.add_row(r.issue_id, f"[{style}]{r.outcome.value}[/]", str(r.attempt),
                      age(r.duration), str(r.turns), f"${r.cost_usd:.4f}", r.summary)  # fmt: skip
    return table


def print_status(console: Console, report: StatusReport) -> None:
    console.print(f"[bold]broker[/] {report.broker}")
    console.print(f"[bold]queued[/] {report.queued}   [bold]scheduled[/] {report.scheduled}   "
                  f"[bold]running[/] {len(report.runs)}")  # fmt: skip
    if report.runs:
        table = Table(title="running", title_justify="left")
        for column in ("issue", "title", "repo", "worker", "elapsed", "heartbeat"):
            table.add_column(column)
        for run in report.runs:
            beat = f"{age(report.now - run.heartbeat)} ago"
            elapsed = age(report.now - run.started)
            worker = f"{run.host}/{run.worker}"
            table.add_row(run.issue_id, run.title, run.repo, worker, elapsed, beat)
        console.print(table)
    if report.locks:
        table = Table(title="locks (this machine)", title_justify="left")
        for column in ("path", "issue", "run", "host", "held for"):
            table.add_column(column)
        for lock in report.locks:
            h = lock.holder
            table.add_row(lock.path, h.issue_id, h.run_id, h.host, age(report.now - lock.acquired))
        console.print(table)
    if report.recent:
        console.print(outcome_table(reversed(report.recent), "recent outcomes"))
    if report.last_sweep:
        sweep = report.last_sweep
        console.print(
            f"[bold]janitor[/] last sweep {age(report.now - sweep['at'])} ago on {sweep['host']}: "
            f"freed {len(sweep['freed_locks'])} locks, reset {len(sweep['reset'])}, "
            f"requeued {len(sweep['requeued'])}, cleared {len(sweep['cleared_markers'])} markers"
        )


def summary_line(records: list[RunRecord]) -> str:
    counts = {o: sum(1 for r in records if r.outcome is o) for o in Outcome}
    cost = sum(r.cost_usd for r in records)
    parts = [f"{counts[Outcome.DONE]} closed", f"{counts[Outcome.BLOCKED]} blocked",
             f"{counts[Outcome.FAILED] + counts[Outcome.TIMED_OUT]} failed",
             f"{counts[Outcome.SKIPPED]} skipped", f"${cost:.4f}"]  # fmt: skip
    return ", ".join(parts)


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
