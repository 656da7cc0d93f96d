"""bdp.ops.report: the report's numbers from injected records and a fixed clock."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bdp.models import Outcome, RunRecord
from bdp.ops.report import TOP_ISSUES, UNKNOWN_WORKER, build_report, redacted

HOUR = 3600.0
#: Local noon on 2 June 2025: whatever the time zone, an hour either side is the same day.
NOW = time.mktime((2025, 6, 2, 12, 0, 0, 0, 0, -1))
DAY = 86400.0


def record(issue: str, outcome: Outcome, start: float, end: float, **fields: Any) -> RunRecord:
    """A run of ``issue`` from NOW+start to NOW+end (seconds), on worker ``h/1-w`` unless told."""
    fields.setdefault("worker", "h/1-w")
    run_id, title = f"run-{issue}-{start}", f"title of {issue}"
    return RunRecord(
        run_id,
        issue,
        "/repo",
        title,
        outcome,
        "ok",
        started=NOW + start,
        finished=NOW + end,
        **fields,
    )


def test_only_runs_that_finished_within_the_window_are_counted() -> None:
    records = [
        record("t-old", Outcome.DONE, -3 * HOUR, -2.5 * HOUR),
        record("t-edge", Outcome.DONE, -2.2 * HOUR, -1.5 * HOUR),  # started before, ended in
        record("t-new", Outcome.FAILED, -HOUR, -0.5 * HOUR),
    ]

    report = build_report(records, NOW, 2 * HOUR)

    assert [bar.issue_id for bar in report.bars] == ["t-edge", "t-new"]
    assert report.total.runs == 2
    assert report.bars[0].start == NOW - 2 * HOUR  # drawn from the window's start
    assert report.total.seconds == pytest.approx(0.7 * HOUR + 0.5 * HOUR)  # counted whole
    assert (report.since, report.until) == (NOW - 2 * HOUR, NOW)


def test_each_worker_gets_a_lane_of_its_runs_in_start_order_lanes_by_first_run() -> None:
    records = [
        record("t-1", Outcome.DONE, -50, -40, worker="b/2-w"),
        record("t-2", Outcome.DONE, -90, -60, worker="a/1-w"),
        record("t-3", Outcome.FAILED, -30, -10, worker="b/2-w"),
        record("t-4", Outcome.DONE, -20, -5, worker=""),
    ]

    report = build_report(records, NOW, HOUR)

    assert [(lane.worker, [b.issue_id for b in lane.bars]) for lane in report.lanes] == [
        ("a/1-w", ["t-2"]),
        ("b/2-w", ["t-1", "t-3"]),
        (UNKNOWN_WORKER, ["t-4"]),
    ]
    assert report.span == (NOW - 90, NOW - 5)


def test_runs_of_no_duration_are_counted_but_not_drawn() -> None:
    records = [
        record("t-lost", Outcome.SKIPPED, -10, -10, worker=""),
        record("t-run", Outcome.DONE, -100, -50),
    ]

    report = build_report(records, NOW, HOUR)

    assert [bar.issue_id for bar in report.bars] == ["t-run"]
    assert report.undrawn == 1
    assert report.total.runs == 2


def test_cost_and_tokens_are_summed_per_outcome_in_the_enum_order_review_cost_included() -> None:
    records = [
        record("t-1", Outcome.FAILED, -100, -90, cost_usd=0.5, input_tokens=10, output_tokens=1),
        record("t-2", Outcome.DONE, -80, -60, cost_usd=1.0, review_cost_usd=0.25, input_tokens=7),
        record("t-3", Outcome.DONE, -50, -20, cost_usd=2.0, output_tokens=3),
    ]

    report = build_report(records, NOW, HOUR)

    assert list(report.by_outcome) == [Outcome.DONE, Outcome.FAILED]
    done = report.by_outcome[Outcome.DONE]
    assert (done.runs, done.seconds, done.cost_usd) == (2, 50.0, 3.25)
    assert (done.input_tokens, done.output_tokens, done.tokens, done.closed) == (7, 3, 10, 2)
    failed = report.by_outcome[Outcome.FAILED]
    assert (failed.runs, failed.cost_usd, failed.tokens, failed.failed) == (1, 0.5, 11, 1)
    assert report.total.cost_usd == 3.75


def test_runs_are_summed_per_local_day_they_finished_on() -> None:
    records = [
        record("t-1", Outcome.DONE, -DAY - 60, -DAY, cost_usd=1.0),
        record("t-2", Outcome.DONE, -2 * HOUR, -HOUR, cost_usd=2.0),
        record("t-3", Outcome.FAILED, -HOUR, -60, cost_usd=4.0),
    ]

    report = build_report(records, NOW, 7 * DAY)

    assert {day: t.cost_usd for day, t in report.by_day.items()} == {
        "2025-06-01": 1.0,
        "2025-06-02": 6.0,
    }
    assert list(report.by_day) == sorted(report.by_day)


def test_issues_are_ranked_by_their_runs_together_and_only_the_top_five_listed() -> None:
    # Given t-0 run twice (2 x 40 s, $0.10 each) and t-1..t-6 once (10..60 s, $0.01..$0.06)
    records = [record("t-0", Outcome.FAILED, -500, -460, cost_usd=0.1)]
    for n in range(1, 7):
        records.append(record(f"t-{n}", Outcome.DONE, -400 + n, -400 + 11 * n, cost_usd=n / 100))
    records.append(record("t-0", Outcome.DONE, -300, -260, cost_usd=0.1, attempt=2))
    records.append(record("t-free", Outcome.SKIPPED, -1, -1))  # no time, no cost: never ranked

    report = build_report(records, NOW, HOUR)

    # Then t-0 leads both lists with its two runs summed, its latest run's outcome shown
    assert len(report.slowest) == len(report.costliest) == TOP_ISSUES
    assert [i.issue_id for i in report.slowest] == ["t-0", "t-6", "t-5", "t-4", "t-3"]
    assert [i.issue_id for i in report.costliest] == ["t-0", "t-6", "t-5", "t-4", "t-3"]
    top = report.slowest[0]
    assert (top.tally.runs, top.tally.seconds, top.last_outcome) == (2, 80.0, Outcome.DONE)
    assert top.tally.cost_usd == pytest.approx(0.2)
    assert top.title == "title of t-0"


def test_retries_and_lock_waits_are_kept_on_the_bars_and_summed() -> None:
    records = [
        record(
            "t-1", Outcome.DONE, -100, -50, lock_waits=2, lock_wait_seconds=12.5, lock_timeouts=1
        ),
        record("t-1", Outcome.DONE, -40, -10, attempt=3, lock_waits=1, lock_wait_seconds=1.0),
    ]

    report = build_report(records, NOW, HOUR)

    assert [(b.retried, b.lock_waits) for b in report.bars] == [(False, 2), (True, 1)]
    assert report.retries == 1
    assert report.lock_waits == (3, 13.5, 1)


def test_a_window_reaching_before_the_oldest_kept_record_says_where_history_starts() -> None:
    records = [record(f"t-{n}", Outcome.DONE, -HOUR + n, -HOUR + n + 1) for n in range(3)]

    full = build_report(records, NOW, DAY, kept=3)  # the broker holds as many as it keeps
    roomy = build_report(records, NOW, DAY, kept=1000)
    inside = build_report(records, NOW, 30 * 60, kept=3)

    assert full.history_from == NOW - HOUR + 1  # the oldest record's end
    assert roomy.history_from is None  # nothing was dropped
    assert inside.history_from is None  # dropped records are older than the window


def test_no_records_make_an_empty_report_spanning_the_window() -> None:
    report = build_report([], NOW, HOUR)

    assert (report.lanes, report.slowest, report.costliest) == ((), (), ())
    assert report.total.runs == 0
    assert report.span == (NOW - HOUR, NOW)


def test_the_json_form_carries_every_number_and_survives_json() -> None:
    records = [
        record("t-1", Outcome.DONE, -100, -50, cost_usd=0.1234567, input_tokens=5, attempt=2),
        record("t-2", Outcome.BLOCKED, -40, -10, worker="x/9-w", lock_waits=1, lock_wait_seconds=2),
    ]

    data = json.loads(json.dumps(build_report(records, NOW, HOUR).to_json()))

    assert data["total"]["runs"] == 2
    assert data["total"]["cost_usd"] == 0.123457
    assert data["by_outcome"]["DONE"]["input_tokens"] == 5
    assert data["by_outcome"]["BLOCKED"]["seconds"] == 30
    assert [w["worker"] for w in data["workers"]] == ["h/1-w", "x/9-w"]
    bar = data["workers"][0]["runs"][0]
    assert (bar["issue_id"], bar["outcome"], bar["attempt"]) == ("t-1", "DONE", 2)
    assert (data["retries"], data["lock_waits"]) == (1, {"waits": 1, "seconds": 2, "timeouts": 0})
    assert [i["issue_id"] for i in data["slowest"]] == ["t-1", "t-2"]
    assert data["history_from"] is None


def test_redacted_passes_every_text_from_the_records_and_keeps_the_numbers() -> None:
    records = [record("t-s3cret", Outcome.DONE, -100, -50, worker="s3cret/1-w", cost_usd=0.5)]
    records[0].title = "title with s3cret"
    report = build_report(records, NOW, HOUR)

    clean = redacted(report, lambda text: text.replace("s3cret", "***"))

    assert "s3cret" not in json.dumps(clean.to_json())
    assert "s3cret" in json.dumps(report.to_json())  # the original is left as it was
    assert clean.lanes[0].worker == "***/1-w"
    assert (clean.bars[0].issue_id, clean.bars[0].title) == ("t-***", "title with ***")
    assert clean.slowest[0].issue_id == clean.costliest[0].issue_id == "t-***"
    assert clean.to_json()["total"] == report.to_json()["total"]
