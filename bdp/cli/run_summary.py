"""What `bdp run` says when it ends: every outcome counted, what it used, who did what when,
what to do next, and the exit status that sums it up.

Each issue counts once, by how its last run ended (an UNFINISHED run that a continuation then
finished counts as closed); the table below the summary lists every run. The exit status:

- 0: every issue this run worked on is closed (or there was nothing to do);
- 1: something failed: FAILED, TIMED_OUT, OVER_BUDGET, ABANDONED or NO_CHANGE (the outcomes
  `bdp status` counts as failed);
- 3: nothing failed, but something needs a person: an issue ended BLOCKED, unfinished,
  interrupted, paused, or an epic's review left it open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bdp.models import Outcome, RunRecord

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ATTENTION = 3
#: Characters of one worker's lane in the text timeline.
TIMELINE_WIDTH = 48
_MARKS = {"closed": "#", "failed": "x", "attention": "!", "skipped": "."}


@dataclass(frozen=True)
class RunTotals:
    """The numbers of one `bdp run`: outcomes of its issues and what its runs used."""

    last: dict[str, RunRecord]  # each issue's last run
    runs: int
    wall_seconds: float
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @classmethod
    def of(cls, records: Sequence[RunRecord], wall_seconds: float) -> RunTotals:
        last: dict[str, RunRecord] = {}
        for record in sorted(records, key=lambda r: r.finished):
            if record.outcome is not Outcome.SKIPPED or record.issue_id not in last:
                last[record.issue_id] = record
        return cls(
            last=last,
            runs=sum(r.outcome is not Outcome.SKIPPED for r in records),
            wall_seconds=wall_seconds,
            input_tokens=sum(r.input_tokens for r in records),
            output_tokens=sum(r.output_tokens for r in records),
            cost_usd=sum(r.cost_usd + r.review_cost_usd for r in records),  # each request once
        )

    def issues(self, group: str) -> list[RunRecord]:
        return [r for r in self.last.values() if outcome_group(r.outcome) == group]

    @property
    def exit_code(self) -> int:
        if self.issues("failed"):
            return EXIT_FAILED
        return EXIT_ATTENTION if self.issues("attention") else EXIT_OK


def outcome_group(outcome: Outcome) -> str:
    """closed, failed, attention or skipped: how an issue's last outcome counts."""
    if outcome.closes_issue:
        return "closed"
    if outcome.counts_as_failed or outcome.fails_run_command:
        return "failed"
    return "skipped" if outcome is Outcome.SKIPPED else "attention"


_GROUPS = (("closed", "closed"), ("failed", "failed"), ("attention", "need attention"))


def summary_lines(totals: RunTotals) -> list[str]:
    """The headline (every outcome kind, by name), then what the runs used."""
    groups = []
    for group, label in (*_GROUPS, ("skipped", "skipped")):
        issues = totals.issues(group)
        if issues or group != "skipped":
            groups.append(f"{len(issues)} {label}{_kinds(issues)}")
    count = len(totals.last)
    head = f"{count} issue{'s' if count != 1 else ''}: " + ", ".join(groups)
    used = (
        f"{totals.runs} runs in {_span(totals.wall_seconds)}, "
        f"{totals.input_tokens:,} tokens in, {totals.output_tokens:,} out, ${totals.cost_usd:.4f}"
    )
    return [head, used]


def _kinds(records: Iterable[RunRecord]) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.outcome.value] = counts.get(record.outcome.value, 0) + 1
    if not counts:
        return ""
    return " (" + ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) + ")"


def next_steps(totals: RunTotals, ready_again: int) -> list[str]:
    """What the person at the terminal can do now."""
    steps = []
    failed, attention = totals.issues("failed"), totals.issues("attention")
    if failed or attention:
        ids = " ".join(r.issue_id for r in [*failed, *attention][:5])
        steps.append(f"{len(failed) + len(attention)} need attention ({ids}): bdp status")
        steps.append(f"read a run's log: bdp logs --agent {[*failed, *attention][0].issue_id}")
    if ready_again:
        noun = "issue is" if ready_again == 1 else "issues are"
        steps.append(f"{ready_again} {noun} ready again (reset here): bdp run again")
    return steps


def timeline(records: Sequence[RunRecord], workers: dict[str, str]) -> list[str]:
    """One text lane per worker: ``#`` closed, ``x`` failed, ``!`` needs attention."""
    ran = [r for r in records if r.outcome is not Outcome.SKIPPED and r.finished > r.started]
    if not ran:
        return []
    start = min(r.started for r in ran)
    span = max(max(r.finished for r in ran) - start, 1e-6)
    lanes: dict[str, list[str]] = {}
    for record in ran:
        lane = lanes.setdefault(workers.get(record.run_id, "worker"), [" "] * TIMELINE_WIDTH)
        first = int((record.started - start) / span * (TIMELINE_WIDTH - 1))
        last = max(first, int((record.finished - start) / span * (TIMELINE_WIDTH - 1)))
        for cell in range(first, last + 1):
            lane[cell] = _mark(record.outcome)
    width = max(len(name) for name in lanes)
    rows = [f"{name:<{width}} |{''.join(lane)}|" for name, lane in sorted(lanes.items())]
    return [*rows, f"{'':<{width}}  0{_span(span):>{TIMELINE_WIDTH - 1}}"]


def _mark(outcome: Outcome) -> str:
    return _MARKS[outcome_group(outcome)]


def _span(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
