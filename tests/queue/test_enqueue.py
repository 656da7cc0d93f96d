"""`bdp.queue.enqueue`: ready issues become tasks, each at most once; --watch keeps polling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bdp.errors import UnknownIssue
from bdp.models import Issue, TaskArgs
from bdp.queue.app import App
from bdp.queue.enqueue import Enqueued, EnqueueOptions, enqueue_ready, watch_ready
from bdp.repo.beads import ReadyFilters
from bdp.repo.selection import Scope
from tests.support.beads import create_issue, run_bd_ok, show_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")


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


def test_enqueue_with_a_budget_gives_each_task_its_max_cost(queued_app: App, repo: Path) -> None:
    create_issue(repo, "budgeted")

    enqueue_ready(queued_app, repo, EnqueueOptions(max_cost=2.5))

    task = queued_app.huey.dequeue()
    assert task is not None
    [payload] = task.args
    assert TaskArgs.from_task(payload).max_cost == 2.5


def test_each_task_carries_its_issues_parent_as_bd_listed_it(queued_app: App, repo: Path) -> None:
    epic = create_issue(repo, "An epic", type="epic")
    child = create_issue(repo, "Its work", parent=epic)
    alone = create_issue(repo, "On its own")

    enqueue_ready(queued_app, repo, EnqueueOptions())

    parents = {}
    while (task := queued_app.huey.dequeue()) is not None:
        args = TaskArgs.from_task(task.args[0])
        parents[args.issue_id] = args.parent
    assert parents == {child: epic, alone: ""}


# --- scope and epics -----------------------------------------------------------------------


def test_an_epic_bd_offers_as_ready_is_never_queued(queued_app: App, repo: Path) -> None:
    epic = create_issue(repo, "An epic", type="epic")
    work = create_issue(repo, "Its work", parent=epic)

    results = enqueue_ready(queued_app, repo, EnqueueOptions())

    assert [(e.issue.id, e.state) for e in results] == [(work, "queued")]
    assert [m.issue_id for m in queued_app.state.markers()] == [work]


def test_named_ids_queue_the_ready_ones_and_say_which_are_not_ready(
    queued_app: App, repo: Path
) -> None:
    # Given a ready issue, one waiting for it, one claimed by a worker, and one not named
    base = create_issue(repo, "Base")
    waiting = create_issue(repo, "Waiting", deps=base)
    running = create_issue(repo, "Running")
    run_bd_ok(repo, "update", running, "--claim")
    queued_app.state.mark_running(str(repo), running, "task-elsewhere")
    create_issue(repo, "Unnamed")

    # When only the first three are named
    scope = Scope((base, waiting, running))
    results = enqueue_ready(queued_app, repo, EnqueueOptions(scope=scope))

    # Then only the ready one is queued, and the others are reported as they are
    states = {e.issue.id: e.state for e in results}
    assert states == {base: "queued", waiting: "not ready", running: "running"}
    assert queued_app.huey.pending_count() == 1


def test_an_unknown_named_id_is_an_error_and_nothing_is_queued(queued_app: App, repo: Path) -> None:
    known = create_issue(repo, "Known")

    with pytest.raises(UnknownIssue, match="t-nope"):
        enqueue_ready(queued_app, repo, EnqueueOptions(scope=Scope((known, "t-nope"))))

    assert queued_app.huey.pending_count() == 0
    assert queued_app.state.markers() == []


def test_tasks_are_queued_in_the_order_of_the_ids_with_order_input(
    queued_app: App, repo: Path
) -> None:
    named = [create_issue(repo, f"P{p}", priority=p) for p in (3, 0, 2)]

    enqueue_ready(queued_app, repo, EnqueueOptions(scope=Scope(tuple(named), order="input")))

    taken = [TaskArgs.from_task(task.args[0]).issue_id for task in queued_app.huey.pending()]
    assert taken == named


def test_a_task_for_an_epic_queued_before_ends_skipped_without_a_session(
    queued_app: App, repo: Path
) -> None:
    # Given a task for an epic, queued the way an older bdp queued epics
    epic = create_issue(repo, "An epic", type="epic")
    task = queued_app.tasks.queue(TaskArgs(str(repo), epic, 1))
    assert queued_app.state.mark_queued(str(repo), epic, task.id)

    # When a worker takes it
    value = queued_app.huey.execute(task)

    # Then it ends SKIPPED: no session ran, the epic is open and unassigned, no marker is left
    assert value == "SKIPPED"
    [record] = queued_app.state.outcomes()
    assert "epic" in record.summary
    assert not (repo / f"done-{epic}.txt").exists()
    shown = show_issue(repo, epic)
    assert (shown["status"], shown.get("assignee")) == ("open", None)
    assert queued_app.state.markers() == []


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
