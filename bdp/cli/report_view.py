"""`bdp report` in the terminal: a text timeline per worker and tables, 80 columns wide.

Issue ids are never shortened (a person copies them into `bd show`); titles and worker
names give way instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bdp.cli.render import styled
from bdp.models import Outcome
from bdp.ops import figures
from bdp.ops.report import Bar, IssueTotal, Lane, Report, Tally
from bdp.ops.report_svg import colour, shorten

Key = TypeVar("Key")
#: Characters of the worker column of the timeline; longer names are shortened.
LABEL_WIDTH = 22
#: Columns a table's borders and padding take per column (one rule, a space each side).
_TABLE_FRAME = 3
#: Characters a title needs to say anything; with less room, the issue tables leave it out.
_MIN_TITLE = 10
#: The timeline's cells: a run, a run's time waiting for locks, the start of a retry, idle.
RUN, WAITED, RETRY, IDLE = "█", "░", "↻", "·"


def print_report(console: Console, report: Report, window: str) -> None:
    console.print(report_view(report, window, console.width))


def report_view(report: Report, window: str, width: int) -> Group:
    """Everything the terminal shows, for a console ``width`` columns wide."""
    parts: list[RenderableType] = [_headline(report, window)]
    if not report.total.runs:
        return Group(*parts, Text(f"no run finished in the last {window}", style="dim"))
    if report.history_from is not None:
        note = f"the broker keeps only the newest records: this starts at {_at(report)}"
        parts.append(Text(note, style="yellow"))
    parts += [Text(""), *_timeline(report, width)]
    parts.append(_tally_table("outcome", report.by_outcome.items(), styled))
    parts.append(_tally_table("day", report.by_day.items(), escape))
    if report.slowest:
        parts.append(_issue_table("slowest issues", report.slowest, "time", width))
    if report.costliest:
        parts.append(_issue_table("costliest issues", report.costliest, "cost", width))
    return Group(*parts)


def _at(report: Report) -> str:
    return figures.moment(report.history_from or report.since)


def _headline(report: Report, window: str) -> Text:
    total, (waits, waited, _) = report.total, report.lock_waits
    span = f"{figures.moment(report.since)} to {figures.moment(report.until)}"
    return Text.from_markup(
        f"[bold]bdp report[/] last {escape(window)}: {span} {figures.zone(report.until)}\n"
        f"{total.runs} runs, {total.closed} closed, {total.failed} failed, "
        f"{figures.usd(total.cost_usd)}, {figures.count(total.tokens)} tokens\n"
        f"{figures.span(total.seconds)} in sessions, {report.retries} retries, "
        f"{waits} lock waits ({figures.span(waited)})",
        emoji=False,
    )


def _timeline(report: Report, width: int) -> list[Text]:
    """A row of cells per worker; each cell shows the run covering most of its time."""
    if not report.lanes:
        return [Text("no runs in this window", style="dim")]
    cells = max(10, min(width, 120) - LABEL_WIDTH - 1)
    start, end = report.span
    step = max(end - start, 1) / cells
    rows = [Text("runs per worker", style="bold")]
    for lane in report.lanes:
        row = Text(_label(lane.worker).ljust(LABEL_WIDTH) + " ")
        for index in range(cells):
            row.append_text(_cell(lane, start + index * step, step))
        rows.append(row)
    first, last = figures.moment(start, with_date=False), figures.moment(end, with_date=False)
    rows.append(Text(" " * (LABEL_WIDTH + 1) + first + last.rjust(cells - len(first)), "dim"))
    rows += _legend(report, width)
    return rows


def _label(worker: str) -> str:
    return shorten(worker, LABEL_WIDTH)


def _cell(lane: Lane, at: float, step: float) -> Text:
    bar = max(lane.bars, key=lambda b: _overlap(b, at, at + step), default=None)
    if bar is None or _overlap(bar, at, at + step) <= 0:
        return Text(IDLE, style="dim")
    first = bar.start >= at and bar.start < at + step
    if first and bar.retried:
        return Text(RETRY, style=f"bold {colour(bar.outcome)}")
    waited = bar.lock_waits and at + step / 2 < bar.start + bar.lock_wait_seconds
    return Text(WAITED if waited else RUN, style=colour(bar.outcome))


def _overlap(bar: Bar, start: float, end: float) -> float:
    return min(bar.end, end) - max(bar.start, start)


def _legend(report: Report, width: int) -> list[Text]:
    """The outcomes drawn and the marks, wrapped at item boundaries under the timeline."""
    items = [
        Text(RUN, style=colour(o)).append(f" {o.value}")
        for o in Outcome
        if any(b.outcome is o for b in report.bars)
    ]
    items += [Text(f"{RETRY} retry"), Text(f"{WAITED} waiting for locks")]
    lines = [Text(" " * (LABEL_WIDTH + 1))]
    for item in items:
        if len(lines[-1]) + len(item) > width and len(lines[-1]) > LABEL_WIDTH + 1:
            lines.append(Text(" " * (LABEL_WIDTH + 1)))
        lines[-1].append_text(item).append("  ")
    return lines


def _tally_table(
    heading: str, rows: Iterable[tuple[Key, Tally]], name: Callable[[Key], str]
) -> Table:
    table = _table(f"by {heading}", heading, "runs", "closed", "failed", "time", "cost", "tokens")
    for key, tally in rows:
        table.add_row(
            name(key),
            str(tally.runs),
            str(tally.closed),
            str(tally.failed),
            figures.span(tally.seconds),
            figures.usd(tally.cost_usd),
            figures.count(tally.tokens),
        )
    return table


def _issue_table(title: str, issues: tuple[IssueTotal, ...], head: str, width: int) -> Table:
    """Issue ids whole; the title gets what is left of ``width``, shortened with "…", and
    is left out when too little is left (the JSON and the HTML page have it)."""
    measure = _time_of if head == "time" else _cost_of
    rows = [
        (i.issue_id, measure(i), str(i.tally.runs), i.last_outcome.value, i.title) for i in issues
    ]
    heads = ("issue", head, "runs", "last")
    fixed = [max([len(h), *(len(r[n]) for r in rows)]) for n, h in enumerate(heads)]
    table = Table(title=title, title_justify="left")
    for name, size in zip(heads, fixed, strict=True):
        right = name in (head, "runs")
        table.add_column(
            name, justify="right" if right else "left", min_width=size, overflow="fold"
        )
    room = width - sum(fixed) - _TABLE_FRAME * (len(heads) + 1) - 1
    if room >= _MIN_TITLE:
        table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=room)
    for issue_id, value, runs, last, name in rows:
        cells = (escape(issue_id), value, runs, styled(last), escape(name))
        table.add_row(*cells[: len(table.columns)])
    return table


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for number, column in enumerate(columns):
        table.add_column(column, justify="right" if number else "left", no_wrap=True)
    return table


def _time_of(issue: IssueTotal) -> str:
    return figures.span(issue.tally.seconds)


def _cost_of(issue: IssueTotal) -> str:
    return figures.usd(issue.tally.cost_usd)
