"""Unit tests for bdp/tasks.py and bdp/enqueue.py on an in-process MemoryHuey.

`immediate=True` runs a task inside the call that enqueues it, so the whole pipeline (bd
stand-in, stub agent, real git) runs in the test process; a non-immediate MemoryHuey keeps
tasks queued so enqueue's bookkeeping can be inspected, then a worker is stepped by hand.
"""

from __future__ import annotations

import datetime
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey

from bdp.agent.session import SessionRequest, StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import TaskError
from bdp.models import Issue, Outcome, RunRecord, TaskArgs
from bdp.queue.app import App
from bdp.queue.enqueue import Enqueued, EnqueueOptions, enqueue_ready, watch_ready
from bdp.repo.beads import ReadyFilters
from tests.support.beads import create_issue, run_bd_ok, show_issue

ABSOLUTE = "/srv/repo"

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60)


def make_app(settings: Settings, immediate: bool) -> App:
    huey = MemoryHuey("test-tasks", immediate=immediate)
    stub = StubAgentRunner(summary="did it")

    def one_file_per_issue(request: SessionRequest) -> None:
        stub.files = {f"done-{request.issue.id}.txt": "done\n"}

    stub.on_run = one_file_per_issue
    return App(settings, huey, State(huey), agent=lambda _settings: stub)


@pytest.fixture
def immediate_app(settings: Settings) -> App:
    return make_app(settings, immediate=True)


@pytest.fixture
def queued_app(settings: Settings) -> App:
    return make_app(settings, immediate=False)


def head(repo: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# --- task_args --------------------------------------------------------------------------------


def payload(repo: Any, issue_id: Any, attempt: Any) -> dict[str, Any]:
    return {"repo": repo, "issue_id": issue_id, "attempt": attempt}


def test_task_args_accepts_an_absolute_repo_an_issue_id_and_a_positive_attempt() -> None:
    assert TaskArgs.from_task(payload(ABSOLUTE, "t-abc", 2)) == TaskArgs(ABSOLUTE, "t-abc", 2)


def test_task_args_travel_as_one_json_simple_payload_and_come_back_equal() -> None:
    args = TaskArgs(ABSOLUTE, "t-abc", 2, 1, "sess-1", "did half", ("a.py", "b.py"), 2.5)

    sent = json.loads(json.dumps(args.to_task()))

    assert TaskArgs.from_task(sent) == args


def test_a_payload_with_arguments_this_bdp_does_not_know_is_malformed() -> None:
    with pytest.raises(TaskError, match="unknown arguments"):
        TaskArgs.from_task({**payload(ABSOLUTE, "t-abc", 1), "isolation": "worktree"})


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


# --- run_issue --------------------------------------------------------------------------------


def test_run_issue_runs_the_whole_pipeline_in_process(immediate_app: App, repo: Path) -> None:
    # Given a ready issue
    issue_id = create_issue(repo, "Ship it")
    before = head(repo)

    # When the task is called (immediate mode runs it right away)
    result = immediate_app.tasks.run_issue(TaskArgs(str(repo), issue_id, 1).to_task())

    # Then the issue is closed with the agent's summary and its file is committed
    assert result.get() == "DONE"
    shown = show_issue(repo, issue_id)
    assert (shown["status"], shown["close_reason"]) == ("closed", "did it")
    assert head(repo) != before
    [record] = immediate_app.state.outcomes()
    assert (record.issue_id, record.outcome) == (issue_id, Outcome.DONE)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("relative/path", "t-abc", 1), id="relative repo"),
        pytest.param((ABSOLUTE, "", 1), id="empty issue id"),
        pytest.param((ABSOLUTE, "t-abc", 0), id="attempt zero"),
    ],
)
def test_run_issue_with_a_malformed_argument_logs_and_drops_the_task(
    immediate_app: App, caplog: pytest.LogCaptureFixture, args: tuple[Any, ...]
) -> None:
    with caplog.at_level(logging.INFO):
        result = immediate_app.tasks.run_issue(payload(*args))

    assert result.get() == "FAILED"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, "malformed task" in r.getMessage()) for r in errors] == [
        ("bdp.queue.tasks", True)
    ]
    assert immediate_app.state.outcomes() == []


# --- enqueue_ready ----------------------------------------------------------------------------


def test_enqueue_in_immediate_mode_runs_each_ready_issue_and_releases_its_marker(
    immediate_app: App, repo: Path
) -> None:
    first = create_issue(repo, "first", priority=1)
    second = create_issue(repo, "second", priority=2)

    results = enqueue_ready(immediate_app, repo, EnqueueOptions())

    assert [(e.issue.id, e.state) for e in results] == [(first, "queued"), (second, "queued")]
    assert [show_issue(repo, i)["status"] for i in (first, second)] == ["closed", "closed"]
    assert immediate_app.state.markers() == []
    assert enqueue_ready(immediate_app, repo, EnqueueOptions()) == []


def test_enqueue_queues_one_task_per_ready_issue_and_marks_each(
    queued_app: App, repo: Path
) -> None:
    ids = [create_issue(repo, f"issue {n}") for n in range(3)]

    results = enqueue_ready(queued_app, repo, EnqueueOptions())

    assert sorted(e.issue.id for e in results) == sorted(ids)
    assert {e.state for e in results} == {"queued"}
    assert queued_app.huey.pending_count() == 3
    markers = queued_app.state.markers()
    assert sorted(m.issue_id for m in markers) == sorted(ids)
    assert {(m.repo, m.state) for m in markers} == {(str(repo), "queued")}
    task_ids = {task.id for task in queued_app.huey.pending()}
    assert {m.task_id for m in markers} == task_ids


def test_enqueue_twice_reports_already_queued_and_queues_nothing_more(
    queued_app: App, repo: Path
) -> None:
    # Given a backlog that was enqueued once
    for n in range(2):
        create_issue(repo, f"issue {n}")
    enqueue_ready(queued_app, repo, EnqueueOptions())

    # When it is enqueued again
    again = enqueue_ready(queued_app, repo, EnqueueOptions())

    # Then every issue is reported as already queued and the queue did not grow
    assert [e.state for e in again] == ["already queued", "already queued"]
    assert queued_app.huey.pending_count() == 2


def test_enqueue_reports_an_issue_whose_marker_says_running_as_running(
    queued_app: App, repo: Path
) -> None:
    issue_id = create_issue(repo, "in flight")
    queued_app.state.mark_running(str(repo), issue_id, "task-elsewhere")

    [result] = enqueue_ready(queued_app, repo, EnqueueOptions())

    assert result.state == "running"
    assert queued_app.huey.pending_count() == 0


def test_enqueue_dry_run_reports_would_queue_and_queues_nothing(
    queued_app: App, repo: Path
) -> None:
    for n in range(2):
        create_issue(repo, f"issue {n}")

    results = enqueue_ready(queued_app, repo, EnqueueOptions(dry_run=True))

    assert [e.state for e in results] == ["would queue", "would queue"]
    assert queued_app.huey.pending_count() == 0
    assert queued_app.state.markers() == []


def test_enqueue_passes_its_filters_to_bd(queued_app: App, repo: Path) -> None:
    wanted = create_issue(repo, "backend bug", labels=["backend"])
    create_issue(repo, "frontend bug", labels=["frontend"])

    results = enqueue_ready(queued_app, repo, EnqueueOptions(ReadyFilters(labels=("backend",))))

    assert [(e.issue.id, e.state) for e in results] == [(wanted, "queued")]
    assert queued_app.huey.pending_count() == 1


def test_a_queued_task_runs_the_issue_when_a_worker_takes_it(queued_app: App, repo: Path) -> None:
    # Given an enqueued issue
    issue_id = create_issue(repo, "queued work")
    enqueue_ready(queued_app, repo, EnqueueOptions())

    # When a worker dequeues and executes the task
    task = queued_app.huey.dequeue()
    assert task is not None
    queued_app.huey.execute(task)

    # Then the issue is closed, the queue is empty and the marker is released
    assert show_issue(repo, issue_id)["status"] == "closed"
    assert queued_app.huey.pending_count() == 0
    assert queued_app.state.markers() == []


def test_a_duplicate_task_for_a_finished_issue_is_skipped(queued_app: App, repo: Path) -> None:
    # Given an issue that was enqueued and worked on
    issue_id = create_issue(repo, "once only")
    enqueue_ready(queued_app, repo, EnqueueOptions())
    queued_app.huey.execute(queued_app.huey.dequeue())
    closed = show_issue(repo, issue_id)

    # When the same task arrives a second time
    duplicate = queued_app.tasks.queue(TaskArgs(str(repo), issue_id, 1))
    value = queued_app.huey.execute(duplicate)

    # Then it is skipped and bd is untouched
    assert value == "SKIPPED"
    assert show_issue(repo, issue_id) == closed
    assert run_bd_ok(repo, "comments", issue_id, "--json").strip() == "[]"


# --- holds and budgets --------------------------------------------------------------------


def test_a_held_task_goes_back_to_the_schedule_unchanged_and_claims_nothing(
    settings: Settings, repo: Path
) -> None:
    # Given a queue whose budget is spent, and an enqueued issue
    app = make_app(replace(settings, budget_usd=0.5), immediate=False)
    app.state.record(RunRecord("r0", "t-old", str(repo), "x", Outcome.DONE, "ok", cost_usd=0.5))
    issue_id = create_issue(repo, "waits for money")
    enqueue_ready(app, repo, EnqueueOptions())
    task = app.huey.dequeue()
    assert task is not None

    # When a worker takes the task
    app.huey.execute(task)

    # Then it is scheduled again under the same id, the issue untouched, the marker intact
    [again] = app.huey.scheduled()
    assert again.id == task.id
    assert show_issue(repo, issue_id)["status"] == "open"
    [marker] = app.state.markers()
    assert (marker.state, marker.task_id) == ("queued", task.id)


def test_a_paused_queue_holds_tasks_until_the_reset_time(settings: Settings, repo: Path) -> None:
    app = make_app(settings, immediate=False)
    until = time.time() + 600
    app.state.set_pause({"until": until, "reason": "usage limit", "since": time.time()})
    create_issue(repo, "waits for the reset")
    enqueue_ready(app, repo, EnqueueOptions())

    app.huey.execute(app.huey.dequeue())

    [again] = app.huey.scheduled()
    assert abs(again.eta.replace(tzinfo=datetime.UTC).timestamp() - until) < 5


def test_enqueue_with_a_budget_gives_each_task_its_max_cost(queued_app: App, repo: Path) -> None:
    create_issue(repo, "budgeted")

    enqueue_ready(queued_app, repo, EnqueueOptions(max_cost=2.5))

    task = queued_app.huey.dequeue()
    assert task is not None
    [payload] = task.args
    assert TaskArgs.from_task(payload).max_cost == 2.5


def test_an_issue_whose_attempts_spent_its_budget_is_reset_without_a_session(
    settings: Settings, repo: Path
) -> None:
    # Given an issue whose earlier attempts cost its whole budget
    app = make_app(settings, immediate=False)
    issue_id = create_issue(repo, "expensive")
    app.state.record(RunRecord("r0", issue_id, str(repo), "x", Outcome.FAILED, "no", cost_usd=2.0))

    # When its next attempt runs with a budget of $2
    value = app.huey.execute(app.tasks.queue(TaskArgs(str(repo), issue_id, 2, max_cost=2.0)))

    # Then no session ran, and the issue is open again with a comment saying why
    assert value == "OVER_BUDGET"
    assert show_issue(repo, issue_id)["status"] == "open"
    assert "$2.00" in run_bd_ok(repo, "comments", issue_id, "--json")
    assert not list(repo.glob("done-*.txt"))


@pytest.mark.parametrize("bad", [0, -1.0, "2", True])
def test_a_task_with_a_bad_budget_is_dropped(bad: object) -> None:
    with pytest.raises(TaskError, match="max_cost"):
        TaskArgs.from_task({**TaskArgs(ABSOLUTE, "t-1").to_task(), "max_cost": bad})


# --- watch_ready ---------------------------------------------------------------------------


@dataclass
class Report:
    """Records what watch_ready reports."""

    reports: list[list[Enqueued]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def queued(self, items: list[Enqueued]) -> None:
        self.reports.append(items)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def polls(monkeypatch: pytest.MonkeyPatch, *answers: object) -> None:
    """Make each `bd ready` poll of watch_ready give the next answer (raised if an error)."""
    queue = list(answers)

    def poll(*_args: Any, **_kwargs: Any) -> Any:
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr("bdp.queue.enqueue.enqueue_ready", poll)


def test_watch_ready_rides_out_a_broker_outage_after_its_first_poll(
    queued_app: App, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = Enqueued(Issue("t-1", "new"), "queued")
    polls(monkeypatch, [], ConnectionError("Redis restarting"), [fresh], KeyboardInterrupt())
    report = Report()

    with pytest.raises(KeyboardInterrupt):
        watch_ready(queued_app, repo, EnqueueOptions(), 0.001, report)

    assert report.reports == [[], [fresh]]
    [warning] = report.warnings
    assert "Redis restarting" in warning


def test_watch_ready_reports_a_failing_first_poll_at_once(
    queued_app: App, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls(monkeypatch, ConnectionError("no Redis"))

    with pytest.raises(ConnectionError):
        watch_ready(queued_app, repo, EnqueueOptions(), 0.001, Report())
