"""The report as one self-contained HTML page: inline CSS and SVG, nothing fetched, no script.

A person opens the file from disk or a chat attachment, so it can rely on nothing else: the
fonts are the system's, and a Content-Security-Policy forbids every load and every script,
should an escaped text ever slip through. Record texts are redacted first (`redacted`, with
the redactor of every bdp output), then escaped by `report_svg.text`, the one function this
page and the chart use for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from bdp.models import Outcome
from bdp.ops import figures
from bdp.ops.report import IssueTotal, Report, Tally, redacted
from bdp.ops.report_svg import colour, text, timeline_svg
from bdp.redact import process_redactor

#: Nothing may load and nothing may run: styles are inline, images are inline SVG.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
:root { color-scheme: light; --ink: #212529; --muted: #6c757d; --line: #dee2e6; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 40px; background: #ffffff; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1120px; margin: 0 auto; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.range { color: var(--muted); margin: 0 0 16px; }
.warning { background: #fff4e6; border-left: 4px solid #f08c00; padding: 8px 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 0; padding: 0; }
.cards div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px;
  min-width: 120px; }
.cards dt { color: var(--muted); font-size: 12px; }
.cards dd { margin: 0; font-size: 20px; font-weight: 600; }
figure { margin: 0; overflow-x: auto; }
svg.timeline { max-width: 100%; height: auto; font-size: 12px; }
svg .band { fill: #f8f9fa; }
svg .grid { stroke: var(--line); }
svg .axis { stroke: #adb5bd; }
svg .tick, svg .worker, svg .legend, svg .empty { fill: var(--ink); }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .id { font: 11px ui-monospace, Menlo, Consolas, monospace; pointer-events: none; }
svg .retry { fill: #ffffff; stroke: var(--ink); stroke-width: 2; }
table { border-collapse: collapse; min-width: 50%; }
th, td { padding: 4px 12px 4px 0; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.id { white-space: nowrap; font-family: ui-monospace, Menlo, Consolas, monospace; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 6px; }
footer { color: var(--muted); margin-top: 32px; font-size: 12px; }
"""


def report_html(report: Report, window: str) -> str:
    """The page for ``report``; ``window`` is how the user said it (``24h``)."""
    report = redacted(report, process_redactor())
    title = f"bdp report: {_range(report)}"
    body = [
        "<main>",
        "<h1>bdp report</h1>",
        f'<p class="range">last {text(window)}: {text(_range(report))}</p>',
        *_history_warning(report),
        _cards(report),
        "<h2>Runs per worker</h2>",
        f"<figure>{timeline_svg(report)}</figure>",
        *_undrawn(report),
        *_tables(report),
        f"<footer>Made by bdp at {text(figures.moment(report.until))} from the outcome "
        "records the broker keeps.</footer>",
        "</main>",
    ]
    head = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{text(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
    )
    return head + "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"


def _range(report: Report) -> str:
    until = figures.moment(report.until)
    return f"{figures.moment(report.since)} to {until} {figures.zone(report.until)}".strip()


def _history_warning(report: Report) -> Iterator[str]:
    if report.history_from is not None:
        yield (
            f'<p class="warning">The broker keeps only the newest outcome records: this '
            f"report starts at {text(figures.moment(report.history_from))}.</p>"
        )


def _cards(report: Report) -> str:
    total = report.total
    waits, waited, timeouts = report.lock_waits
    cards = [
        ("Runs", str(total.runs)),
        ("Closed", str(total.closed)),
        ("Failed", str(total.failed)),
        ("Cost", figures.usd(total.cost_usd)),
        ("Tokens", figures.count(total.tokens)),
        ("Time in sessions", figures.span(total.seconds)),
        (
            "Lock waits",
            f"{waits} ({figures.span(waited)})" + (f", {timeouts} ran out" * bool(timeouts)),
        ),
        ("Retries", str(report.retries)),
    ]
    items = "".join(f"<div><dt>{text(k)}</dt><dd>{text(v)}</dd></div>" for k, v in cards)
    return f'<dl class="cards">{items}</dl>'


def _undrawn(report: Report) -> Iterator[str]:
    if report.undrawn:
        yield (
            f'<p class="range">{report.undrawn} run(s) lasted no time (a claim someone else '
            "won, or bd failing) and are counted but not drawn.</p>"
        )


def _tables(report: Report) -> Iterator[str]:
    yield "<h2>By outcome</h2>"
    rows = [[_swatch(o) + text(o.value), *_tally_cells(t)] for o, t in report.by_outcome.items()]
    yield _table([("outcome", ""), *_TALLY_COLUMNS], rows)
    yield "<h2>By day</h2>"
    rows = [[text(day), *_tally_cells(t)] for day, t in report.by_day.items()]
    yield _table([("day", ""), *_TALLY_COLUMNS], rows)
    yield "<h2>Slowest issues</h2>"
    yield _issues(report.slowest, "time", lambda i: figures.span(i.tally.seconds))
    yield "<h2>Costliest issues</h2>"
    yield _issues(report.costliest, "cost", lambda i: figures.usd(i.tally.cost_usd))


#: Columns as (heading, class of its cells).
Columns = list[tuple[str, str]]
_TALLY_COLUMNS: Columns = [
    (head, "num")
    for head in ("runs", "closed", "failed", "time", "cost", "tokens in", "tokens out")
]


def _swatch(outcome: Outcome) -> str:
    return f'<span class="swatch" style="background:{colour(outcome)}"></span>'


def _tally_cells(tally: Tally) -> list[str]:
    values = [
        str(tally.runs),
        str(tally.closed),
        str(tally.failed),
        figures.span(tally.seconds),
        figures.usd(tally.cost_usd),
        figures.count(tally.input_tokens),
        figures.count(tally.output_tokens),
    ]
    return [text(v) for v in values]


def _issues(issues: Iterable[IssueTotal], head: str, measure: Callable[[IssueTotal], str]) -> str:
    columns = [("issue", "id"), (head, "num"), ("runs", "num"), ("last outcome", ""), ("title", "")]
    rows = [
        [
            text(i.issue_id),
            text(measure(i)),
            text(str(i.tally.runs)),
            _swatch(i.last_outcome) + text(i.last_outcome.value),
            text(i.title),
        ]
        for i in issues
    ]
    return _table(columns, rows)


def _table(columns: Columns, rows: list[list[str]]) -> str:
    """A table of cells already escaped; "none" when there are no rows."""
    if not rows:
        return '<p class="range">none</p>'
    classes = [f' class="{cls}"' if cls else "" for _, cls in columns]
    head = "".join(f"<th{c}>{text(h)}</th>" for (h, _), c in zip(columns, classes, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td{c}>{cell}</td>" for cell, c in zip(row, classes, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
