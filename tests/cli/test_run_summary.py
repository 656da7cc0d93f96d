"""bdp/cli/run_summary.py: every outcome counted by name, each issue once by its last run,
what the runs used, the timeline, the next steps and the exit status."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bdp.cli.run_summary import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    RunTotals,
    next_steps,
    summary_lines,
    timeline,
)
from bdp.models import Outcome, RunRecord


def record(
    issue_id: str, outcome: Outcome, start: float, end: float, **fields: object
) -> RunRecord:
    run = RunRecord(f"r-{issue_id}-{start}", issue_id, "/repo", "t", outcome, "s", **fields)  # type: ignore[arg-type]
    return replace(run, started=start, finished=end)


def test_no_change_unfinished_and_over_budget_are_counted_by_name_not_dropped() -> None:
    # Given three issues: one closed, one NO_CHANGE, one OVER_BUDGET, and a skipped duplicate
    records = [
        record("t-1", Outcome.DONE, 0, 10, input_tokens=1000, output_tokens=50, cost_usd=0.01),
        record("t-2", Outcome.NO_CHANGE, 0, 5, cost_usd=0.002),
        record("t-3", Outcome.OVER_BUDGET, 5, 20, cost_usd=0.03, review_cost_usd=0.001),
        record("t-1", Outcome.SKIPPED, 1, 1),
    ]

    totals = RunTotals.of(records, wall_seconds=75)

    # Then each issue counts once, every kind is named, and what the runs used is summed
    head, used = summary_lines(totals)
    assert (
        head
        == "3 issues: 1 closed (1 DONE), 2 failed (1 NO_CHANGE, 1 OVER_BUDGET), 0 need attention"
    )
    assert used == "3 runs in 1m15s, 1,000 tokens in, 50 out, $0.0430"
    assert totals.exit_code == EXIT_FAILED


def test_an_issue_counts_by_its_last_run() -> None:
    # Given an issue that ran out of turns, then was finished by its continuation
    records = [record("t-1", Outcome.UNFINISHED, 0, 5), record("t-1", Outcome.DONE, 6, 9)]

    totals = RunTotals.of(records, 9)

    assert summary_lines(totals)[0].startswith("1 issue: 1 closed (1 DONE), 0 failed")
    assert totals.exit_code == EXIT_OK


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.DONE, EXIT_OK),
        (Outcome.ALREADY_DONE, EXIT_OK),
        (Outcome.BLOCKED, EXIT_ATTENTION),
        (Outcome.UNFINISHED, EXIT_ATTENTION),
        (Outcome.INTERRUPTED, EXIT_ATTENTION),
        (Outcome.PAUSED, EXIT_ATTENTION),
        (Outcome.FOLLOW_UPS, EXIT_ATTENTION),
        (Outcome.FAILED, EXIT_FAILED),
        (Outcome.TIMED_OUT, EXIT_FAILED),
        (Outcome.NO_CHANGE, EXIT_FAILED),
    ],
)
def test_the_exit_status_says_closed_failed_or_needs_attention(outcome: Outcome, code: int) -> None:
    assert RunTotals.of([record("t-1", outcome, 0, 1)], 1).exit_code == code


def test_a_failure_outranks_an_issue_that_needs_attention() -> None:
    records = [record("t-1", Outcome.BLOCKED, 0, 1), record("t-2", Outcome.FAILED, 0, 1)]

    assert RunTotals.of(records, 1).exit_code == EXIT_FAILED


def test_nothing_to_do_exits_zero() -> None:
    totals = RunTotals.of([], 0)

    assert totals.exit_code == EXIT_OK
    assert summary_lines(totals)[0] == "0 issues: 0 closed, 0 failed, 0 need attention"


def test_next_steps_name_the_issues_that_need_a_person_and_what_is_ready_again() -> None:
    records = [record("t-1", Outcome.BLOCKED, 0, 1), record("t-2", Outcome.DONE, 0, 1)]

    steps = next_steps(RunTotals.of(records, 1), ready_again=1)

    assert steps == [
        "1 need attention (t-1): bdp status",
        "read a run's log: bdp logs --agent t-1",
        "1 issue is ready again (reset here): bdp run again",
    ]
    assert next_steps(RunTotals.of(records[1:], 1), ready_again=0) == []


def test_the_timeline_has_a_lane_per_worker_scaled_to_the_run() -> None:
    # Given two workers: one did a long DONE, the other a short FAILED then a BLOCKED
    records = [
        record("t-1", Outcome.DONE, 0, 100),
        record("t-2", Outcome.FAILED, 0, 25),
        record("t-3", Outcome.BLOCKED, 50, 100),
    ]
    workers = {records[0].run_id: "w1", records[1].run_id: "w2", records[2].run_id: "w2"}

    lanes = timeline(records, workers)

    # Then w1's lane is closed throughout, and w2's is a quarter failed, then a gap, then blocked
    w1, w2, axis = lanes
    assert w1 == "w1 |" + "#" * 48 + "|"
    cells = w2[len("w2 |") : -1]
    failed, blocked = cells.count("x"), cells.count("!")
    assert cells.startswith("x" * failed)
    assert cells.endswith("!" * blocked)
    assert abs(failed - 48 / 4) <= 1  # a quarter of the run
    assert abs(blocked - 48 / 2) <= 1  # its second half
    assert cells[failed:-blocked].strip() == ""
    assert axis.split() == ["0", "1m40s"]
