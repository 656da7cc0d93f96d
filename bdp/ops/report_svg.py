"""The report's timeline as inline SVG: a row per worker, a bar per run, coloured by outcome.

Drawn as static markup (no script, no external reference), so the HTML file it goes into
opens anywhere and shows the same picture. Every text from a record is redacted (once, by
`redacted`) and escaped (by `text`): issue titles are written by agents and people, and may
hold secrets and markup.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterator

from bdp.models import Outcome
from bdp.ops import figures
from bdp.ops.report import Bar, Report, redacted
from bdp.redact import process_redactor

#: Each outcome's colour: the family `bdp status` colours it in (rich's names), and a shade
#: of that family of its own, so outcomes sharing a family still tell apart on the chart.
OUTCOME_COLOURS: dict[Outcome, tuple[str, str]] = {
    Outcome.DONE: ("green", "#2f9e44"),
    Outcome.ALREADY_DONE: ("green", "#69db7c"),
    Outcome.OBSOLETE: ("green", "#94d82d"),
    Outcome.FAILED: ("red", "#e03131"),
    Outcome.TIMED_OUT: ("red", "#a61e4d"),
    Outcome.ABANDONED: ("red", "#c2255c"),
    Outcome.OVER_BUDGET: ("red", "#ff8787"),
    Outcome.BLOCKED: ("yellow", "#f08c00"),
    Outcome.INTERRUPTED: ("yellow", "#ffd43b"),
    Outcome.PAUSED: ("yellow", "#fab005"),
    Outcome.NO_CHANGE: ("yellow", "#e67700"),
    Outcome.UNFINISHED: ("cyan", "#1098ad"),
    Outcome.FOLLOW_UPS: ("cyan", "#66d9e8"),
    Outcome.SKIPPED: ("dim", "#adb5bd"),
    Outcome.SUPERSEDED: ("dim", "#868e96"),
}
WIDTH, LABEL_WIDTH, RIGHT_MARGIN, TOP_MARGIN = 1100, 200, 24, 8
ROW_HEIGHT, BAR_HEIGHT, AXIS_HEIGHT, LEGEND_HEIGHT = 30, 18, 34, 24
#: Bars are at least this wide (px), so a run of a few seconds in a long window still shows.
MIN_BAR = 2.0
#: Tick steps the time axis may use (seconds), the first giving at most MAX_TICKS ticks.
TICK_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
MAX_TICKS = 8
_CHAR_WIDTH = 6.6  # px per character of an issue id drawn in its bar (11px monospace)
_LABEL_CHARS = 27  # worker names longer than this are shortened (the full one is a tooltip)


def colour(outcome: Outcome) -> str:
    return OUTCOME_COLOURS[outcome][1]


def text(value: str) -> str:
    """A text escaped for HTML and SVG, quotes included (so safe in attributes too)."""
    return html.escape(value, quote=True)


class Scale:
    """Maps times in the report's span to x positions in the plot area."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, max(end, start + 1)
        self.left, self.right = float(LABEL_WIDTH), float(WIDTH - RIGHT_MARGIN)

    def x(self, at: float) -> float:
        share = (at - self.start) / (self.end - self.start)
        return self.left + share * (self.right - self.left)

    def width(self, seconds: float) -> float:
        return seconds / (self.end - self.start) * (self.right - self.left)


def timeline_svg(report: Report) -> str:
    """The whole chart: lanes, time axis and legend, sized to its number of lanes."""
    report = redacted(report, process_redactor())
    plot_bottom = TOP_MARGIN + max(1, len(report.lanes)) * ROW_HEIGHT
    legend = _legend_rows(report)
    height = plot_bottom + AXIS_HEIGHT + len(legend) * LEGEND_HEIGHT
    scale = Scale(*report.span)
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="runs per worker over time">',
        _defs(),
        *_grid(scale, plot_bottom),
        *_lanes(report, scale),
        *_legend(legend, plot_bottom + AXIS_HEIGHT),
        "</svg>",
    ]
    return "\n".join(parts)


def _defs() -> str:
    return (
        '<defs><pattern id="lockwait" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        '<rect width="3" height="6" fill="#212529"/></pattern></defs>'
    )


def ticks(start: float, end: float) -> list[float]:
    """Round local times between ``start`` and ``end``, at most MAX_TICKS of them."""
    seconds = max(end - start, 1)
    step = next((s for s in TICK_STEPS if seconds / s <= MAX_TICKS), TICK_STEPS[-1])
    offset = time.localtime(start).tm_gmtoff  # align steps of hours and days on local time
    first = math.ceil((start + offset) / step) * step - offset
    return [float(t) for t in range(int(first), int(end) + 1, step)]


def _grid(scale: Scale, bottom: float) -> Iterator[str]:
    """Vertical lines at the ticks, their local times under the plot."""
    found = ticks(scale.start, scale.end)
    dated = _spans_days(scale.start, scale.end)
    yield f'<line class="axis" x1="{scale.left}" y1="{bottom}" x2="{scale.right}" y2="{bottom}"/>'
    for at in found:
        x = round(scale.x(at), 1)
        label = figures.moment(at, with_date=dated)
        yield f'<line class="grid" x1="{x}" y1="{TOP_MARGIN}" x2="{x}" y2="{bottom + 4}"/>'
        yield f'<text class="tick" x="{x}" y="{bottom + 18}" text-anchor="middle">{label}</text>'


def _spans_days(start: float, end: float) -> bool:
    """The ticks need dates: the span crosses a local midnight."""
    return time.localtime(start)[:3] != time.localtime(end)[:3]


def _lanes(report: Report, scale: Scale) -> Iterator[str]:
    if not report.lanes:
        y = TOP_MARGIN + ROW_HEIGHT / 2 + 5
        yield f'<text class="empty" x="{scale.left + 8}" y="{y}">no runs in this window</text>'
        return
    for row, lane in enumerate(report.lanes):
        top = TOP_MARGIN + row * ROW_HEIGHT
        if row % 2:
            yield f'<rect class="band" x="0" y="{top}" width="{WIDTH}" height="{ROW_HEIGHT}"/>'
        yield _lane_label(lane.worker, top)
        for bar in lane.bars:
            yield _bar(bar, scale, top + (ROW_HEIGHT - BAR_HEIGHT) / 2)


def shorten(name: str, limit: int) -> str:
    """``name`` in at most ``limit`` characters, its middle given up: a worker's host is at
    the start and what tells its threads apart at the end."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head) :]


def _lane_label(worker: str, top: float) -> str:
    short = shorten(worker, _LABEL_CHARS)
    y = top + ROW_HEIGHT / 2 + 4
    return f'<text class="worker" x="8" y="{y}"><title>{text(worker)}</title>{text(short)}</text>'


def _bar(bar: Bar, scale: Scale, top: float) -> str:
    """A run's rectangle, its tooltip, and its marks: a dot for a retry, a hatched strip as
    long as the time it waited for locks (a total: the record does not say when)."""
    x, width = scale.x(bar.start), max(MIN_BAR, scale.width(bar.end - bar.start))
    parts = [
        f'<g class="run"><title>{_tooltip(bar)}</title>',
        f'<rect x="{x:.1f}" y="{top}" width="{width:.1f}" height="{BAR_HEIGHT}" '
        f'fill="{colour(bar.outcome)}"/>',
    ]
    if width >= _CHAR_WIDTH * len(bar.issue_id) + 8:
        ink = "#ffffff" if _dark(colour(bar.outcome)) else "#212529"
        parts.append(
            f'<text class="id" x="{x + 4:.1f}" y="{top + BAR_HEIGHT / 2 + 4}" '
            f'fill="{ink}">{text(bar.issue_id)}</text>'
        )
    if bar.lock_waits:
        waited = min(width, max(MIN_BAR, scale.width(bar.lock_wait_seconds)))
        parts.append(
            f'<rect class="lockwait" x="{x:.1f}" y="{top + BAR_HEIGHT - 5}" '
            f'width="{waited:.1f}" height="5" fill="url(#lockwait)"/>'
        )
    if bar.retried:
        parts.append(f'<circle class="retry" cx="{x:.1f}" cy="{top}" r="4"/>')
    parts.append("</g>")
    return "".join(parts)


def _dark(hex_colour: str) -> bool:
    """White text reads better than black on this fill (its relative luminance is low)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue < 150


def _tooltip(bar: Bar) -> str:
    lines = [
        f"{bar.issue_id} {bar.title}".strip(),
        f"{bar.outcome.value}, {figures.span(bar.end - bar.start)}, {figures.usd(bar.cost_usd)}",
        f"{figures.moment(bar.start)} to {figures.moment(bar.end, with_date=False)}",
    ]
    if bar.retried:
        lines.append(f"attempt {bar.attempt}")
    if bar.lock_waits:
        lines.append(
            f"waited for locks {bar.lock_waits}x, {figures.span(bar.lock_wait_seconds)}"
            + (f", {bar.lock_timeouts} ran out" if bar.lock_timeouts else "")
        )
    return text("\n".join(lines))


def _legend_items(report: Report) -> list[tuple[str, str]]:
    """What the legend explains, as (swatch markup at 0,0, label): the outcomes drawn, then
    the marks that occur."""
    items = [
        (f'<rect width="12" height="12" fill="{colour(o)}"/>', o.value)
        for o in Outcome
        if any(b.outcome is o for b in report.bars)
    ]
    if report.retries:
        items.append(('<circle class="retry" cx="6" cy="6" r="4"/>', "retry (attempt 2 or later)"))
    if report.lock_waits[0]:
        items.append(
            ('<rect y="3" width="14" height="6" fill="url(#lockwait)"/>', "time waiting for locks")
        )
    return items


def _legend_rows(report: Report) -> list[list[tuple[str, str, float]]]:
    """The legend's items with their x positions, wrapped into rows that fit the width."""
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = float(LABEL_WIDTH)
    for swatch, label in _legend_items(report):
        width = 30 + 7.2 * len(label)
        if rows[-1] and x + width > WIDTH - RIGHT_MARGIN:
            rows.append([])
            x = float(LABEL_WIDTH)
        rows[-1].append((swatch, label, x))
        x += width
    return rows


def _legend(rows: list[list[tuple[str, str, float]]], top: float) -> Iterator[str]:
    for number, row in enumerate(rows):
        y = top + 8 + number * LEGEND_HEIGHT
        for swatch, label, x in row:
            yield f'<g transform="translate({x:.1f},{y})">{swatch}'
            yield f'<text class="legend" x="18" y="10">{text(label)}</text></g>'
