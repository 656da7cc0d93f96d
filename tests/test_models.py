"""The domain nouns: task arguments as one checked payload, outcome policy, run records."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bdp.errors import TaskError
from bdp.models import Outcome, Run, RunRecord, TaskArgs, remaining_budget

ABSOLUTE = "/srv/repo"


# --- task arguments ---------------------------------------------------------------------------


def payload(repo: Any, issue_id: Any, attempt: Any) -> dict[str, Any]:
    return {"repo": repo, "issue_id": issue_id, "attempt": attempt}


def test_task_args_accepts_an_absolute_repo_an_issue_id_and_a_positive_attempt() -> None:
    assert TaskArgs.from_task(payload(ABSOLUTE, "t-abc", 2)) == TaskArgs(ABSOLUTE, "t-abc", 2)


def test_task_args_travel_as_one_json_simple_payload_and_come_back_equal() -> None:
    args = TaskArgs(ABSOLUTE, "t-abc", 2, 1, "sess-1", "did half", ("a.py", "b.py"), 2.5)

    sent = json.loads(json.dumps(args.to_task()))

    assert TaskArgs.from_task(sent) == args


def test_a_continuation_carries_what_its_session_has_cost() -> None:
    args = TaskArgs(ABSOLUTE, "t-abc", 1, 1, "sess-1", resume_cost=0.25)

    assert TaskArgs.from_task(json.loads(json.dumps(args.to_task()))).resume_cost == 0.25
    assert TaskArgs.from_task(payload(ABSOLUTE, "t-abc", 1)).resume_cost == 0.0  # an older bdp's


def test_a_task_carries_the_parent_enqueue_saw_and_leaves_an_unknown_one_out() -> None:
    child, alone = TaskArgs(ABSOLUTE, "t-1.1", parent="t-1"), TaskArgs(ABSOLUTE, "t-2", parent="")

    assert TaskArgs.from_task(json.loads(json.dumps(child.to_task()))).parent == "t-1"
    assert TaskArgs.from_task(json.loads(json.dumps(alone.to_task()))).parent == ""
    assert "parent" not in TaskArgs(ABSOLUTE, "t-3").to_task()  # what an older bdp can read
    assert TaskArgs.from_task(payload(ABSOLUTE, "t-3", 1)).parent is None
    with pytest.raises(TaskError, match="parent"):
        TaskArgs.from_task({**child.to_task(), "parent": 7})


@pytest.mark.parametrize("bad", [-0.5, "0.25", True, None])
def test_a_task_with_a_bad_resume_cost_is_malformed(bad: object) -> None:
    with pytest.raises(TaskError, match="resume_cost"):
        TaskArgs.from_task({**TaskArgs(ABSOLUTE, "t-1").to_task(), "resume_cost": bad})


def test_a_payload_with_arguments_this_bdp_does_not_know_is_malformed() -> None:
    with pytest.raises(TaskError, match="unknown arguments"):
        TaskArgs.from_task({**payload(ABSOLUTE, "t-abc", 1), "sandbox": "off"})


@pytest.mark.parametrize(
    ("repo", "issue_id", "attempt", "named"),
    [
        pytest.param("relative/path", "t-abc", 1, "repo", id="relative repo"),
        pytest.param("", "t-abc", 1, "repo", id="empty repo"),
        pytest.param(None, "t-abc", 1, "repo", id="repo not a string"),
        pytest.param(ABSOLUTE, "", 1, "issue id", id="empty issue id"),
        pytest.param(ABSOLUTE, "   ", 1, "issue id", id="blank issue id"),
        pytest.param(ABSOLUTE, 7, 1, "issue id", id="issue id not a string"),
        pytest.param(ABSOLUTE, "t-abc", 0, "attempt", id="attempt zero"),
        pytest.param(ABSOLUTE, "t-abc", -1, "attempt", id="negative attempt"),
        pytest.param(ABSOLUTE, "t-abc", "1", "attempt", id="attempt a string"),
        pytest.param(ABSOLUTE, "t-abc", 1.0, "attempt", id="attempt a float"),
    ],
)
def test_task_args_rejects_malformed_arguments_naming_the_bad_one(
    repo: Any, issue_id: Any, attempt: Any, named: str
) -> None:
    with pytest.raises(TaskError) as raised:
        TaskArgs.from_task(payload(repo, issue_id, attempt))

    assert str(raised.value).startswith(f"malformed task: {named} ")


@pytest.mark.parametrize("bad", [0, -1.0, "2", True])
def test_a_task_with_a_bad_budget_is_malformed(bad: object) -> None:
    with pytest.raises(TaskError, match="max_cost"):
        TaskArgs.from_task({**TaskArgs(ABSOLUTE, "t-1").to_task(), "max_cost": bad})


# --- outcome policy ---------------------------------------------------------------------------


def outcomes(policy: str) -> set[str]:
    return {o.value for o in Outcome if getattr(o, policy)}


def test_status_counts_as_failed_the_runs_that_ended_badly_without_a_decision() -> None:
    assert outcomes("counts_as_failed") == {
        "FAILED",
        "TIMED_OUT",
        "OVER_BUDGET",
        "ABANDONED",
        "NO_CHANGE",
    }


def test_bdp_run_fails_only_on_errors_and_timeouts() -> None:
    assert outcomes("fails_run_command") == {"FAILED", "TIMED_OUT"}


def test_every_outcome_but_a_close_a_lost_claim_and_a_superseded_run_resets_the_issue() -> None:
    assert set(Outcome) - {o for o in Outcome if o.resets_issue} == {
        Outcome.DONE,
        Outcome.ALREADY_DONE,
        Outcome.OBSOLETE,
        Outcome.SKIPPED,
        Outcome.SUPERSEDED,
    }


def test_a_close_with_a_commit_or_a_claim_that_none_is_needed_closes_the_issue() -> None:
    assert {o for o in Outcome if o.closes_issue} == {
        Outcome.DONE,
        Outcome.ALREADY_DONE,
        Outcome.OBSOLETE,
    }
    assert {o for o in Outcome if o.needs_no_code} == {Outcome.ALREADY_DONE, Outcome.OBSOLETE}


def test_only_a_lost_claim_is_not_news() -> None:
    assert {o for o in Outcome if not o.is_notified} == {Outcome.SKIPPED}


def test_a_lost_claim_and_a_dead_run_ran_no_session() -> None:
    assert {o for o in Outcome if not o.ran_session} == {Outcome.SKIPPED, Outcome.ABANDONED}


def test_remaining_budget_is_none_without_a_budget_and_negative_once_crossed() -> None:
    assert remaining_budget(None, 5.0) is None
    assert remaining_budget(2.0, 0.5) == 1.5
    assert remaining_budget(2.0, 2.5) == -0.5


# --- run records ------------------------------------------------------------------------------


def test_a_runs_record_carries_its_identity_and_ends_now() -> None:
    run = Run("r1", "t-1", "/repo", "Title", "host", 7, "7-w", 2, 100.0, 200.0, 150.0, "/l.log")

    record = RunRecord.ended(run, Outcome.BLOCKED, "needs input")

    assert (record.run_id, record.issue_id, record.repo, record.title) == (
        "r1",
        "t-1",
        "/repo",
        "Title",
    )
    assert (record.attempt, record.started, record.log_path) == (2, 100.0, "/l.log")
    assert (record.outcome, record.summary) == (Outcome.BLOCKED, "needs input")
    assert record.finished == pytest.approx(time.time(), abs=5)
    assert record.worker == "host/7-w"  # the row `bdp report` draws it in


def test_a_record_written_before_records_named_their_worker_still_loads() -> None:
    run = Run("r1", "t-1", "/repo", "Title", "host", 7, "7-w", 1, 100.0, 200.0, 150.0)
    older = RunRecord.ended(run, Outcome.DONE, "ok").to_json()
    del older["worker"]

    assert RunRecord.from_json(older).worker == ""


def test_an_unclaimed_task_is_recorded_with_a_fresh_run_id_and_no_duration() -> None:
    record = RunRecord.unclaimed(TaskArgs(ABSOLUTE, "t-2", 3), Outcome.SKIPPED, "taken")

    assert (record.issue_id, record.repo, record.attempt, record.summary) == (
        "t-2",
        ABSOLUTE,
        3,
        "taken",
    )
    assert len(record.run_id) == 12
    assert record.duration == 0.0
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
