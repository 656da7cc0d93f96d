"""Terminal rendering of bdp's results with rich; no logic beyond layout."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bdp.models import Outcome, RunRecord
from bdp.ops.status import StatusReport

if TYPE_CHECKING:  # enqueue pulls in Huey; status rendering must not
    from bdp.queue.enqueue import Enqueued

#: Rows of the "needs attention" table; the rest is counted (JSON has them all).
ATTENTION_ROWS = 10
_STYLE = {
    "queued": "green", "would queue": "cyan", "already queued": "yellow", "running": "magenta",
    Outcome.DONE: "green", Outcome.BLOCKED: "yellow", Outcome.FAILED: "red",
    Outcome.TIMED_OUT: "red", Outcome.SKIPPED: "dim", Outcome.INTERRUPTED: "yellow",
    Outcome.SUPERSEDED: "dim", Outcome.ABANDONED: "red", Outcome.OVER_BUDGET: "red",
    Outcome.PAUSED: "yellow", Outcome.NO_CHANGE: "yellow", Outcome.UNFINISHED: "cyan",
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
                      age(r.duration), str(r.turns), f"${r.cost_usd:.4f}",
                      escape(r.summary))  # fmt: skip
    return table


def print_status(console: Console, report: StatusReport) -> None:
    console.print(status_view(report))


def status_view(report: StatusReport) -> Group:
    """Everything `bdp status` shows, as one renderable (printed once, or live)."""
    parts: list[RenderableType] = [_headline(report)]
    if report.hold:
        style = "yellow" if report.hold.kind == "paused" else "red"
        parts.append(Text(f"HOLD: {report.hold.describe()}; no new session starts", style=style))
    if report.runs:
        parts.append(_running_table(report))
    if report.locks:
        parts.append(_locks_table(report))
    attention = report.attention()
    if attention:
        parts.append(_attention_table(attention[:ATTENTION_ROWS], report.now))
    if len(attention) > ATTENTION_ROWS:
        more = len(attention) - ATTENTION_ROWS
        parts.append(Text(f"… and {more} more (bdp status --json lists them all)", style="red"))
    if report.recent:
        parts.append(outcome_table(reversed(report.recent), "recent outcomes"))
    if report.last_sweep:
        parts.append(_sweep_line(report))
    return Group(*parts)


def _headline(report: StatusReport) -> Text:
    today = report.today()
    budget = f" of ${report.budget_usd:.2f}" if report.budget_usd is not None else ""
    return Text.from_markup(
        f"[bold]broker[/] {escape(report.broker)}\n"
        f"[bold]queued[/] {report.queued}   [bold]scheduled[/] {report.scheduled}   "
        f"[bold]running[/] {len(report.runs)}   [bold]spent[/] ${report.spent_usd:.2f}{budget}\n"
        f"[bold]today[/] {today['closed']} closed, {today['blocked']} blocked, "
        f"{today['failed']} failed, ${today['spent_usd']:.2f}"
    )


def _running_table(report: StatusReport) -> Table:
    table = Table(title="running", title_justify="left")
    for column in ("issue", "title", "worker", "elapsed", "tool", "turns", "tokens", "cost",
                   "heartbeat"):  # fmt: skip
        table.add_column(column)
    for run in report.runs:
        act = report.activity(run)
        table.add_row(run.issue_id, escape(run.title), f"{run.host}/{run.worker}",
                      age(report.now - run.started), escape(act.tool) or "-", str(act.turns),
                      f"{act.input_tokens + act.output_tokens:,}", f"${act.cost_usd:.4f}",
                      f"{age(report.now - run.heartbeat)} ago")  # fmt: skip
    return table


def _locks_table(report: StatusReport) -> Table:
    table = Table(title="locks (this machine)", title_justify="left")
    for column in ("path", "issue", "run", "host", "held for"):
        table.add_column(column)
    for lock in report.locks:
        h = lock.holder
        table.add_row(escape(lock.path), h.issue_id, h.run_id, h.host,
                      age(report.now - lock.acquired))  # fmt: skip
    return table


def _attention_table(records: Iterable[RunRecord], now: float) -> Table:
    table = Table(title="needs attention", title_justify="left", title_style="bold red")
    for column in ("issue", "outcome", "attempt", "when", "summary", "log"):
        table.add_column(column)
    for r in records:
        style = _STYLE.get(r.outcome, "")
        table.add_row(r.issue_id, f"[{style}]{r.outcome.value}[/]", str(r.attempt),
                      f"{age(now - r.finished)} ago", escape(r.summary), r.log_path)  # fmt: skip
    return table


def _sweep_line(report: StatusReport) -> Text:
    sweep = report.last_sweep or {}
    return Text.from_markup(
        f"[bold]janitor[/] last sweep {age(report.now - sweep['at'])} ago on {sweep['host']}: "
        f"freed {len(sweep['freed_locks'])} locks, reset {len(sweep['reset'])}, "
        f"requeued {len(sweep['requeued'])}, cleared {len(sweep['cleared_markers'])} markers"
    )


def live_status(console: Console, collect: Callable[[], StatusReport], interval: float) -> None:
    """Redraw the status every ``interval`` seconds until Ctrl-C."""
    with Live(status_view(collect()), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(status_view(collect()), refresh=True)
        except KeyboardInterrupt:
            pass


def summary_line(records: list[RunRecord]) -> str:
    counts = {o: sum(1 for r in records if r.outcome is o) for o in Outcome}
    cost = sum(r.cost_usd for r in records)
    parts = [f"{counts[Outcome.DONE]} closed", f"{counts[Outcome.BLOCKED]} blocked",
             f"{counts[Outcome.FAILED] + counts[Outcome.TIMED_OUT]} failed",
             f"{counts[Outcome.SKIPPED]} skipped", f"${cost:.4f}"]  # fmt: skip
    return ", ".join(parts)


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
