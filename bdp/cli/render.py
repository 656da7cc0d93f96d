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

from bdp.broker.persistence import VOLATILE_WARNING
from bdp.models import Outcome, RunRecord
from bdp.ops.status import StatusReport

if TYPE_CHECKING:  # enqueue pulls in Huey; status rendering must not
    from bdp.queue.enqueue import Enqueued

#: Rows of the "needs attention" table; the rest is counted (JSON has them all).
ATTENTION_ROWS = 10
_STYLE = {
    "queued": "green",
    "would queue": "cyan",
    "already queued": "yellow",
    "running": "magenta",
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


def enqueue_table(results: Iterable[Enqueued]) -> Table:
    table = _table("bdp enqueue", ("issue", "priority", "title", "state"))
    for item in results:
        issue = item.issue
        table.add_row(issue.id, f"P{issue.priority}", issue.title, styled(item.state))
    return table


def outcome_table(records: Iterable[RunRecord], title: str) -> Table:
    table = _table(title, ("issue", "outcome", "attempt", "time", "turns", "cost", "summary"))
    for r in records:
        cost = f"${r.cost_usd:.4f}"
        row = (r.issue_id, styled(r.outcome), str(r.attempt), age(r.duration), str(r.turns), cost)
        table.add_row(*row, escape(r.summary))
    return table


def print_status(console: Console, report: StatusReport) -> None:
    console.print(status_view(report))


def _warnings(report: StatusReport) -> list[Text]:
    """What is unsafe about this setup: no sandbox, a broker that forgets, an open state dir."""
    warnings = []
    if not report.sandbox:
        warning = "SANDBOX OFF (BDP_SANDBOX=off): agents' shells run without the OS sandbox"
        warnings.append(Text(warning, style="bold yellow"))
    if report.persistence == "none":
        warnings.append(Text(f"BROKER: {VOLATILE_WARNING}", style="bold red"))
    if report.exposed_home:
        exposed = f"STATE DIR readable by others: {report.exposed_home}; chmod 700 it"
        warnings.append(Text(exposed, style="bold yellow"))
    return warnings


def status_view(report: StatusReport) -> Group:
    """Everything `bdp status` shows, as one renderable (printed once, or live)."""
    parts: list[RenderableType] = [_headline(report), *_warnings(report)]
    if report.hold:
        style = "yellow" if report.hold.kind == "paused" else "red"
        parts.append(Text(f"HOLD: {report.hold.describe()}; no new session starts", style=style))
    if report.runs:
        parts.append(_running_table(report))
    if report.locks:
        parts.append(_locks_table(report))
    if report.epics:
        parts.append(_epics_table(report))
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


_RUNNING_COLUMNS = ("issue", "title", "worker", "elapsed", "tool", "turns", "tokens", "cost")


def _running_table(report: StatusReport) -> Table:
    table = _table("running", (*_RUNNING_COLUMNS, "heartbeat"))
    for run in report.runs:
        act = report.activity(run)
        tokens = f"{act.input_tokens + act.output_tokens:,}"
        since = age(report.now - run.started)
        who, tool = f"{run.host}/{run.worker}", escape(act.tool) or "-"
        row = (run.issue_id, escape(run.title), who, since, tool, str(act.turns), tokens)
        table.add_row(*row, f"${act.cost_usd:.4f}", f"{age(report.now - run.heartbeat)} ago")
    return table


def _epics_table(report: StatusReport) -> Table:
    table = _table("epics in progress", ("epic", "title", "children closed", "repo"))
    for repo, epics in report.epics.items():
        for epic in epics:
            done = f"{epic.done} / {epic.total}"
            table.add_row(epic.issue.id, escape(epic.issue.title), done, escape(repo))
    return table


def _locks_table(report: StatusReport) -> Table:
    table = _table("locks (this machine)", ("path", "issue", "run", "host", "held for"))
    for lock in report.locks:
        h, held = lock.holder, age(report.now - lock.acquired)
        table.add_row(escape(lock.path), h.issue_id, h.run_id, h.host, held)
    return table


def _attention_table(records: Iterable[RunRecord], now: float) -> Table:
    columns = ("issue", "outcome", "attempt", "when", "summary", "log")
    table = _table("needs attention", columns, title_style="bold red")
    for r in records:
        when = f"{age(now - r.finished)} ago"
        row = (r.issue_id, styled(r.outcome), str(r.attempt), when, escape(r.summary))
        table.add_row(*row, r.log_path)
    return table


def _sweep_line(report: StatusReport) -> Text:
    sweep = report.last_sweep or {}
    return Text.from_markup(
        f"[bold]janitor[/] last sweep {age(report.now - sweep['at'])} ago on {sweep['host']}: "
        f"freed {len(sweep['freed_locks'])} locks, reset {len(sweep['reset'])}, "
        f"requeued {len(sweep['requeued'])}, cleared {len(sweep['cleared_markers'])} markers; "
        f"{sweep.get('worktrees', 0)} worktrees on {sweep['host']} use "
        f"{sweep.get('worktree_bytes', 0) / 1e6:.1f} MB"
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


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
