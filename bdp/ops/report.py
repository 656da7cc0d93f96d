"""`bdp report`: what the recent runs did, per worker and in total, from their outcome records.

Pure functions of the records and a clock, so the numbers are tested without a broker and
every rendering (terminal, JSON, HTML) shows the same ones. The records are what the broker
keeps: the newest `OUTCOMES_KEPT`; a window reaching further back than those is said to be
cut short rather than silently shown as quiet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bdp.config import OUTCOMES_KEPT
from bdp.models import Outcome, RunRecord

#: Issues listed as the slowest and as the costliest.
TOP_ISSUES = 5
#: The label of runs whose record names no worker (older records, tasks never claimed).
UNKNOWN_WORKER = "(worker not recorded)"


@dataclass(frozen=True)
class Bar:
    """One run on the timeline: from its start to its end, in its worker's row."""

    run_id: str
    issue_id: str
    title: str
    outcome: Outcome
    start: float
    end: float
    attempt: int  # > 1: a retry of an issue whose earlier attempt failed
    lock_waits: int
    lock_wait_seconds: float
    lock_timeouts: int
    cost_usd: float

    @property
    def retried(self) -> bool:
        return self.attempt > 1


@dataclass(frozen=True)
class Lane:
    """The runs of one worker, oldest first."""

    worker: str
    bars: tuple[Bar, ...]


@dataclass
class Tally:
    """Runs, time, cost and tokens summed over some of the records."""

    runs: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    closed: int = 0
    failed: int = 0

    def add(self, record: RunRecord) -> None:
        self.runs += 1
        self.seconds += record.duration
        self.cost_usd += record.cost_usd + record.review_cost_usd  # every request, once
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.closed += record.outcome.closes_issue
        self.failed += record.outcome.counts_as_failed

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class IssueTotal:
    """What one issue's runs in the window took together."""

    repo: str
    issue_id: str
    title: str = ""
    last_outcome: Outcome = Outcome.SKIPPED
    tally: Tally = field(default_factory=Tally)


@dataclass(frozen=True)
class Report:
    """Everything `bdp report` shows, for one window of time ending at ``until``."""

    since: float  # the window asked for: records that finished from here ...
    until: float  # ... to here (the clock)
    lanes: tuple[Lane, ...]
    total: Tally
    by_outcome: dict[Outcome, Tally]
    by_day: dict[str, Tally]  # local dates, YYYY-MM-DD, oldest first
    slowest: tuple[IssueTotal, ...]
    costliest: tuple[IssueTotal, ...]
    undrawn: int  # runs in the window that lasted no time (lost claims): counted, not drawn
    history_from: float | None  # set when the kept records start after ``since``

    @property
    def bars(self) -> list[Bar]:
        return [bar for lane in self.lanes for bar in lane.bars]

    @property
    def span(self) -> tuple[float, float]:
        """The time the drawn runs cover (the window itself when none are drawn)."""
        bars = self.bars
        if not bars:
            return self.since, self.until
        return max(self.since, min(b.start for b in bars)), max(b.end for b in bars)

    @property
    def retries(self) -> int:
        return sum(bar.retried for bar in self.bars)

    @property
    def lock_waits(self) -> tuple[int, float, int]:
        """Waits, seconds waited and waits that ran out, over every drawn run."""
        bars = self.bars
        return (
            sum(b.lock_waits for b in bars),
            sum(b.lock_wait_seconds for b in bars),
            sum(b.lock_timeouts for b in bars),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "history_from": self.history_from,
            "total": _tally_json(self.total),
            "retries": self.retries,
            "lock_waits": dict(zip(("waits", "seconds", "timeouts"), self.lock_waits, strict=True)),
            "undrawn": self.undrawn,
            "workers": [
                {"worker": lane.worker, "runs": [_bar_json(bar) for bar in lane.bars]}
                for lane in self.lanes
            ],
            "by_outcome": {o.value: _tally_json(t) for o, t in self.by_outcome.items()},
            "by_day": {day: _tally_json(t) for day, t in self.by_day.items()},
            "slowest": [_issue_json(i) for i in self.slowest],
            "costliest": [_issue_json(i) for i in self.costliest],
        }


def build_report(
    records: Sequence[RunRecord], now: float, window: float, kept: int = OUTCOMES_KEPT
) -> Report:
    """The report of ``records`` (oldest first, as the broker keeps them) that finished in
    the ``window`` seconds before ``now``; ``kept`` is how many records the broker keeps."""
    since = now - window
    chosen = [r for r in records if since <= r.finished <= now]
    drawn = [r for r in chosen if r.duration > 0]
    issues = issue_totals(chosen)
    return Report(
        since=since,
        until=now,
        lanes=lanes(drawn, since),
        total=tally(chosen),
        by_outcome=by_outcome(chosen),
        by_day=by_day(chosen),
        slowest=_top(issues, lambda i: i.tally.seconds),
        costliest=_top(issues, lambda i: i.tally.cost_usd),
        undrawn=len(chosen) - len(drawn),
        history_from=_history_from(records, since, kept),
    )


def redacted(report: Report, redact: Callable[[str], str]) -> Report:
    """``report`` with every text that came from a record (ids, titles, workers, repos)
    passed through ``redact``: done once, before any rendering escapes them."""

    def issues(found: tuple[IssueTotal, ...]) -> tuple[IssueTotal, ...]:
        return tuple(
            replace(i, repo=redact(i.repo), issue_id=redact(i.issue_id), title=redact(i.title))
            for i in found
        )

    lanes = tuple(
        Lane(redact(lane.worker), tuple(_redacted_bar(b, redact) for b in lane.bars))
        for lane in report.lanes
    )
    return replace(
        report, lanes=lanes, slowest=issues(report.slowest), costliest=issues(report.costliest)
    )


def _redacted_bar(bar: Bar, redact: Callable[[str], str]) -> Bar:
    return replace(
        bar, run_id=redact(bar.run_id), issue_id=redact(bar.issue_id), title=redact(bar.title)
    )


def tally(records: Iterable[RunRecord]) -> Tally:
    total = Tally()
    for record in records:
        total.add(record)
    return total


def lanes(records: Iterable[RunRecord], since: float) -> tuple[Lane, ...]:
    """One lane per worker, its runs in start order, clipped to start no earlier than
    ``since``; lanes ordered by their first run, so the chart reads top-left to bottom-right."""
    rows: dict[str, list[Bar]] = {}
    for record in sorted(records, key=lambda r: (r.started, r.finished)):
        rows.setdefault(record.worker or UNKNOWN_WORKER, []).append(_bar(record, since))
    return tuple(Lane(worker, tuple(bars)) for worker, bars in rows.items())


def _bar(record: RunRecord, since: float) -> Bar:
    return Bar(
        run_id=record.run_id,
        issue_id=record.issue_id,
        title=record.title,
        outcome=record.outcome,
        start=max(record.started, since),
        end=record.finished,
        attempt=record.attempt,
        lock_waits=record.lock_waits,
        lock_wait_seconds=record.lock_wait_seconds,
        lock_timeouts=record.lock_timeouts,
        cost_usd=record.cost_usd + record.review_cost_usd,
    )


def by_outcome(records: Iterable[RunRecord]) -> dict[Outcome, Tally]:
    """A tally per outcome that occurred, in the order `Outcome` lists them."""
    found: dict[Outcome, Tally] = {}
    for record in records:
        found.setdefault(record.outcome, Tally()).add(record)
    return {o: found[o] for o in Outcome if o in found}


def by_day(records: Iterable[RunRecord]) -> dict[str, Tally]:
    """A tally per local day the runs finished on, oldest first."""
    found: dict[str, Tally] = {}
    for record in records:
        day = time.strftime("%Y-%m-%d", time.localtime(record.finished))
        found.setdefault(day, Tally()).add(record)
    return dict(sorted(found.items()))


def issue_totals(records: Iterable[RunRecord]) -> list[IssueTotal]:
    """Each issue's runs summed; the title and outcome are its latest run's."""
    found: dict[tuple[str, str], IssueTotal] = {}
    for record in sorted(records, key=lambda r: r.finished):
        key = (record.repo, record.issue_id)
        issue = found.setdefault(key, IssueTotal(record.repo, record.issue_id))
        issue.tally.add(record)
        issue.title = record.title or issue.title
        issue.last_outcome = record.outcome
    return list(found.values())


def _top(
    issues: Iterable[IssueTotal], key: Callable[[IssueTotal], float]
) -> tuple[IssueTotal, ...]:
    """The TOP_ISSUES issues with the largest ``key``, leaving out those with none of it."""
    ranked = sorted((i for i in issues if key(i) > 0), key=lambda i: (-key(i), i.issue_id))
    return tuple(ranked[:TOP_ISSUES])


def _history_from(records: Sequence[RunRecord], since: float, kept: int) -> float | None:
    """When the broker has dropped records the window asks for: the oldest one it kept."""
    if len(records) < kept or not records:
        return None
    oldest = min(r.finished for r in records)
    return oldest if oldest > since else None


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        **asdict(tally),
        "seconds": round(tally.seconds, 3),
        "cost_usd": round(tally.cost_usd, 6),
    }


def _bar_json(bar: Bar) -> dict[str, Any]:
    return {**asdict(bar), "outcome": bar.outcome.value}


def _issue_json(issue: IssueTotal) -> dict[str, Any]:
    return {
        "repo": issue.repo,
        "issue_id": issue.issue_id,
        "title": issue.title,
        "last_outcome": issue.last_outcome.value,
        **_tally_json(issue.tally),
    }
