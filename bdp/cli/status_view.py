"""What `bdp status` draws: who serves the queue, what runs, what waits, what needs a person.

Issue ids are what a person copies from here into `bdp logs --agent`, `bdp say` or `bd show`,
so their columns never wrap and never shrink below the longest id; titles and summaries give
way instead. Lists are cut with a count ("… and N more"); `bdp status --json` has them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bdp.broker.persistence import VOLATILE_WARNING
from bdp.cli.render import age, compact_table, id_column, outcome_table, repo_cells, styled
from bdp.models import RunRecord
from bdp.ops.status import StatusReport

#: What status says when no consumer is beating.
NO_WORKER = (
    "no worker is running: start one with `bdp worker` (or `huey_consumer bdp.consumer.huey`)"
)


@dataclass
class Rows:
    """How many rows each list of the view shows; the rest is counted."""

    consumers: int = 1000
    running: int = 1000
    queued: int = 10
    locks: int = 1000
    epics: int = 1000
    attention: int = 10
    recent: int = 1000

    def capped(self, cap: int, lists: Sequence[str] | None = None) -> Rows:
        """These rows, no list showing more than ``cap``; with ``lists``, the others none."""
        kept = set(vars(self) if lists is None else lists)
        return Rows(**{n: min(shown, cap) if n in kept else 0 for n, shown in vars(self).items()})


#: The lists in the order a small terminal keeps them: who serves the queue and what runs
#: first, what already happened last.
PRIORITY = ("consumers", "running", "attention", "queued", "locks", "epics", "recent")


def wanted_rows(report: StatusReport) -> dict[str, int]:
    """The rows each list would show uncut."""
    return {
        "consumers": len(report.consumers),
        "running": len(report.runs),
        "queued": len(report.queued_issues),
        "locks": len(report.locks),
        "epics": sum(len(found) for found in report.epics.values()),
        "attention": len(report.attention()),
        "recent": len(report.recent),
    }


def print_status(console: Console, report: StatusReport) -> None:
    console.print(status_view(report))


def status_view(report: StatusReport, rows: Rows | None = None) -> Group:
    """Everything `bdp status` shows, as one renderable (printed once, or live)."""
    rows = rows or Rows()
    shared = len(report.repos()) > 1  # several repos share the queue: say which is which
    parts: list[RenderableType] = [_headline(report), *_warnings(report)]
    if report.hold:
        style = "yellow" if report.hold.kind == "paused" else "red"
        parts.append(Text(f"HOLD: {report.hold.describe()}; no new session starts", style=style))
    parts += _hosts(report)
    parts += _consumers(report, rows.consumers)
    parts += _running(report, rows.running, shared)
    parts += _queued(report, rows.queued, shared)
    parts += _listed("locks", _locks_table(report, rows.locks), len(report.locks))
    parts += _epics(report, rows.epics)
    parts += _attention(report, rows.attention, shared)
    recent = list(reversed(report.recent))
    if recent and rows.recent:
        parts.append(outcome_table(recent[: rows.recent], "recent outcomes", shared, compact=True))
    if len(recent) > rows.recent:
        parts.append(_more(len(recent) - rows.recent, "recent outcomes"))
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
        f"{today['failed']} failed, ${today['spent_usd']:.2f}",
        emoji=False,
    )


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


def _more(count: int, what: str, style: str = "") -> Text:
    return Text(f"… and {count} more {what} (bdp status --json lists them all)", style=style)


def _listed(what: str, table: Table, total: int) -> list[RenderableType]:
    """A list's table (when it has a row), then the count of the rows left out."""
    parts: list[RenderableType] = [table] if table.row_count else []
    if total > table.row_count:
        parts.append(_more(total - table.row_count, what))
    return parts


def _repo_columns(shared: bool) -> tuple[str, ...]:
    return ("repo",) if shared else ()


def _hosts(report: StatusReport) -> list[RenderableType]:
    """Which hosts serve a queue several share: their workers, their runs, their last beat
    (a host with runs but no beat is one that went away; the janitor recovers its runs)."""
    hosts = report.hosts()
    if len(hosts) < 2:
        return []
    table = compact_table("hosts")
    for column in ("host", "consumers", "workers", "running", "last beat"):
        table.add_column(column)
    for host in hosts:
        beat = host.last_beat()
        last = "none" if beat is None else f"{age(report.now - beat)} ago"
        running = ", ".join(host.running) or "-"
        table.add_row(escape(host.host), str(len(host.consumers)), str(host.workers), running, last)
    return [table]


def _consumers(report: StatusReport, shown: int) -> list[RenderableType]:
    if not report.consumers:
        return [Text(NO_WORKER, style="bold yellow")]
    table = compact_table("consumers")
    for column in ("host", "pid", "workers", "kind", "up", "last beat"):
        table.add_column(column)
    for consumer in report.consumers[:shown]:
        up, beat = age(report.now - consumer.started), age(report.now - consumer.beat)
        row = (escape(consumer.host), str(consumer.pid), str(consumer.workers), consumer.kind)
        table.add_row(*row, up, f"{beat} ago")
    return _listed("consumers", table, len(report.consumers))


#: The running table's columns after the issue: numbers first (never wrapped), then the
#: texts, cut to one line each (on a narrow terminal they give way first).
_RUNNING_NUMBERS = ("elapsed", "turns", "tokens", "cost", "beat")
_RUNNING_TEXTS = ("tool", "title", "worker")


def _running(report: StatusReport, shown: int, shared: bool) -> list[RenderableType]:
    runs = report.runs[:shown]
    table = compact_table("running")
    id_column(table, "issue", [run.issue_id for run in runs])
    for column in _RUNNING_NUMBERS:
        table.add_column(column, no_wrap=True)
    table.expand = True  # the texts share what the id and the numbers leave
    for column in (*_RUNNING_TEXTS, *_repo_columns(shared)):
        table.add_column(
            column, no_wrap=True, overflow="ellipsis", ratio=2 if column == "title" else 1
        )
    for run in runs:
        act = report.activity(run)
        tokens = f"{act.input_tokens + act.output_tokens:,}"
        since, beat = age(report.now - run.started), f"{age(report.now - run.heartbeat)} ago"
        numbers = (since, str(act.turns), tokens, f"${act.cost_usd:.4f}", beat)
        texts = (escape(act.tool) or "-", escape(run.title), f"{run.host}/{run.worker}")
        table.add_row(run.issue_id, *numbers, *texts, *repo_cells(run.repo, shared))
    return _listed("running", table, len(report.runs))


def _queued(report: StatusReport, shown: int, shared: bool) -> list[RenderableType]:
    tasks = report.queued_issues[:shown]
    table = compact_table("queued")
    id_column(table, "issue", [task.issue_id for task in tasks])
    for column in ("attempt", *_repo_columns(shared)):
        table.add_column(column)
    for task in tasks:
        table.add_row(task.issue_id, str(task.attempt), *repo_cells(task.repo, shared))
    return _listed("queued", table, report.queued)  # the count covers more than were read


def _locks_table(report: StatusReport, shown: int) -> Table:
    locks = report.locks[:shown]
    table = compact_table("locks (this machine)")
    table.add_column("path")
    id_column(table, "issue", [lock.holder.issue_id for lock in locks])
    id_column(table, "run", [lock.holder.run_id for lock in locks])
    for column in ("host", "held for"):
        table.add_column(column)
    for lock in locks:
        h, held = lock.holder, age(report.now - lock.acquired)
        table.add_row(escape(lock.path), h.issue_id, h.run_id, h.host, held)
    return table


def _epics(report: StatusReport, shown: int) -> list[RenderableType]:
    found = [(repo, epic) for repo, epics in report.epics.items() for epic in epics]
    table = compact_table("epics in progress")
    id_column(table, "epic", [epic.issue.id for _, epic in found[:shown]])
    for column in ("title", "children closed", "repo"):
        table.add_column(column)
    for repo, epic in found[:shown]:
        done = f"{epic.done} / {epic.total}"
        table.add_row(epic.issue.id, escape(epic.issue.title), done, escape(repo))
    return _listed("epics", table, len(found))


def _attention(report: StatusReport, shown: int, shared: bool) -> list[RenderableType]:
    records = report.attention()
    if not records:
        return []
    parts: list[RenderableType] = []
    if shown:
        parts.append(_attention_table(records[:shown], report.now, shared))
        hint = f"see what happened: bdp logs --agent {records[0].issue_id}"
        parts.append(Text(hint, style="red"))
    if len(records) > shown:
        parts.append(_more(len(records) - shown, "needing attention", style="red"))
    return parts


def _attention_table(records: Sequence[RunRecord], now: float, shared: bool) -> Table:
    table = compact_table("needs attention", "bold red")
    id_column(table, "issue", [r.issue_id for r in records])
    for column in ("outcome", "attempt", "when", "summary", *_repo_columns(shared)):
        table.add_column(column)
    for r in records:
        when = f"{age(now - r.finished)} ago"
        row = [r.issue_id, styled(r.outcome), str(r.attempt), when, escape(r.summary)]
        table.add_row(*row, *repo_cells(r.repo, shared))
    return table


def _sweep_line(report: StatusReport) -> Text:
    sweep = report.last_sweep or {}
    return Text.from_markup(
        f"[bold]janitor[/] last sweep {age(report.now - sweep['at'])} ago on {sweep['host']}: "
        f"freed {len(sweep['freed_locks'])} locks, reset {len(sweep['reset'])}, "
        f"requeued {len(sweep['requeued'])}, cleared {len(sweep['cleared_markers'])} markers; "
        f"{sweep.get('worktrees', 0)} worktrees on {sweep['host']} use "
        f"{sweep.get('worktree_bytes', 0) / 1e6:.1f} MB",
        emoji=False,
    )
