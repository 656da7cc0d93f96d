"""`bdp.queue.tasks`: run_issue and the janitor's sweep, through Huey and called directly."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from huey import MemoryHuey

from bdp.broker.consumers import ConsumerBeat, Consumers
from bdp.broker.keys import LAST_SWEEP_KEY
from bdp.broker.session_store import RedisSessionStore
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import TaskError
from bdp.host import host_name
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.queue import tasks as tasks_module
from bdp.queue.app import App
from bdp.queue.enqueue import EnqueueOptions, enqueue_ready
from bdp.queue.instance import build_huey
from bdp.queue.tasks import TaskContext, finished_line, register_tasks, run_issue, sweep
from bdp.redact import scrub_tree
from tests.queue.memory_apps import head, make_app
from tests.support.beads import create_issue, run_bd_ok, show_issue

ABSOLUTE = "/srv/repo"

pytestmark = pytest.mark.usefixtures("stand_in_bd")


def payload(repo: Any, issue_id: Any, attempt: Any) -> dict[str, Any]:
    return {"repo": repo, "issue_id": issue_id, "attempt": attempt}


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


def test_run_issue_is_a_plain_function_of_its_context(settings: Settings, repo: Path) -> None:
    # Given a context on a Huey that has no bdp task registered at all
    issue_id = create_issue(repo, "Called directly")
    agent = make_app(settings, immediate=False).agent
    assert agent is not None
    context = TaskContext(settings, MemoryHuey("direct"), agent)

    # When run_issue is called as a function, with a payload
    outcome = run_issue(context, TaskArgs(str(repo), issue_id, 1).to_task())

    # Then it worked the issue end to end
    assert outcome == "DONE"
    assert show_issue(repo, issue_id)["status"] == "closed"
    [record] = State(context.huey).outcomes()
    assert record.issue_id == issue_id


def test_sweep_is_a_plain_function_of_its_context(settings: Settings) -> None:
    context = TaskContext(settings, MemoryHuey("direct-sweep"))

    sweep(context)

    report = State(context.huey).get_meta(LAST_SWEEP_KEY)
    assert report is not None
    assert report["reset"] == []


def test_on_bdps_huey_the_tasks_keep_their_names_wherever_their_code_lives(
    settings: Settings,
) -> None:
    huey = build_huey(settings)

    tasks = register_tasks(TaskContext(settings, huey))

    assert {str(name) for name in huey._registry._registry} == {
        "bdp.tasks.run_issue",
        "bdp.tasks.janitor",
    }
    assert huey._registry.task_to_string(type(tasks.queue(TaskArgs(ABSOLUTE, "t-1")))) == (
        "bdp.tasks.run_issue"
    )


def test_a_requeue_points_the_marker_at_the_new_task(queued_app: App, repo: Path) -> None:
    queued_app.state.mark_queued(str(repo), "t-1", "old-task")

    task_id = queued_app.tasks.requeue(TaskArgs(str(repo), "t-1", 2))

    [task] = queued_app.huey.pending()
    marker = queued_app.state.marker(str(repo), "t-1")
    assert marker is not None
    assert (task.id, marker.task_id, marker.state) == (task_id, task_id, "queued")
    assert TaskArgs.from_task(*task.args).attempt == 2


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


# --- the finished line ------------------------------------------------------------------------


def test_a_finished_run_logs_one_info_line_with_issue_outcome_time_turns_and_cost(
    immediate_app: App, repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a ready issue
    issue_id = create_issue(repo, "Ship it")

    # When its task runs
    with caplog.at_level(logging.INFO, logger="bdp.queue.tasks"):
        immediate_app.tasks.run_issue(TaskArgs(str(repo), issue_id, 1).to_task())

    # Then the consumer's log has one line saying how it ended
    [record] = immediate_app.state.outcomes()
    lines = [r.getMessage() for r in caplog.records if r.name == "bdp.queue.tasks"]
    assert lines == [
        f"{issue_id} DONE {record.duration:.1f}s {record.turns} turns ${record.cost_usd:.4f}: "
        "did it"
    ]


def test_the_finished_line_keeps_the_summary_to_one_redacted_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_API_KEY", "sk-live-0123456789")
    record = RunRecord(
        "r1",
        "acc-kfe",
        "/repo",
        "x",
        Outcome.DONE,
        "fixed it\nwith sk-live-0123456789 " + "x" * 300,
        started=100.0,
        finished=112.4,
        turns=2,
        cost_usd=0.0008,
    )

    line = finished_line(record)

    assert line.startswith("acc-kfe DONE 12.4s 2 turns $0.0008: fixed it with *** x")
    assert "\n" not in line
    assert "sk-live" not in line
    assert line.endswith("…")
    assert len(line) < 260


# --- continuations prefer the machine that has their session ----------------------------------


def continuation_for(repo: Path, issue_id: str, host: str) -> TaskArgs:
    return TaskArgs(
        str(repo),
        issue_id,
        continuation=1,
        resume="sess-1",
        resume_cost=0.2,
        prior="wrote half of it",
        branch="bdp/t-1/run1",
        host=host,
    )


def test_a_continuation_waits_for_its_machine_while_that_machines_consumers_beat(
    settings: Settings, repo: Path
) -> None:
    # Given a continuation whose session lives on alpha, where a consumer is beating
    app = make_app(settings, immediate=False)
    now = time.time()
    Consumers(app.huey).beat(ConsumerBeat("alpha", 11, 2, "thread", now - 60, now))
    issue_id = create_issue(repo, "half done on alpha")
    task = app.tasks.queue(continuation_for(repo, issue_id, "alpha"))
    app.huey.enqueue(task)

    # When a worker of another machine takes it
    app.huey.execute(app.huey.dequeue())

    # Then it goes back to the schedule unchanged, for alpha, and nothing was claimed
    [again] = app.huey.scheduled()
    assert TaskArgs.from_task(*again.args).host == "alpha"
    assert show_issue(repo, issue_id)["status"] == "open"


def test_a_continuation_whose_machine_stopped_beating_goes_on_here_without_its_session(
    settings: Settings, repo: Path
) -> None:
    # Given alpha's consumer stopped beating longer ago than BDP_STALE_AFTER
    app = make_app(settings, immediate=False)
    gone = time.time() - settings.stale_after - 5
    Consumers(app.huey).beat(ConsumerBeat("alpha", 11, 2, "thread", gone - 60, gone))
    issue_id = create_issue(repo, "half done on alpha")
    args = continuation_for(repo, issue_id, "alpha")

    # When this machine runs the continuation
    context = app.tasks.context
    fresh = tasks_module._on_this_host(context, args)

    # Then it starts a new session here (no store holds alpha's), told what the earlier ones
    # did, on their branch if this machine can fetch it (`bdp.run.tree`)
    assert fresh == replace(args, host="", resume="", resume_cost=0.0, files=())
    assert fresh.prior == "wrote half of it"


def test_a_continuation_whose_machine_stopped_resumes_here_from_the_mirrored_session(
    settings: Settings, repo: Path, redis_url: str
) -> None:
    # Given alpha stopped, and its session's transcript mirrored to the queue's Redis
    app = make_app(settings, immediate=False)
    gone = time.time() - settings.stale_after - 5
    Consumers(app.huey).beat(ConsumerBeat("alpha", 11, 2, "thread", gone - 60, gone))
    sessions = RedisSessionStore(redis.Redis.from_url(redis_url), "bdp.q", scrub_tree)
    asyncio.run(sessions.append({"project_key": "-srv", "session_id": "sess-1"}, [{"uuid": "u"}]))
    context = app.tasks.context
    context.deps().sessions = sessions
    args = continuation_for(repo, "t-1", "alpha")

    # Then this machine resumes it, on its branch; only a shared tree's files stay behind
    assert tasks_module._on_this_host(context, args) == replace(args, host="")
    with_files = replace(args, files=("src/half.py",))
    assert tasks_module._on_this_host(context, with_files) == replace(
        args, host="", resume="", resume_cost=0.0
    )


def test_a_continuation_on_its_own_machine_resumes_as_it_is(settings: Settings, repo: Path) -> None:
    app = make_app(settings, immediate=False)
    args = continuation_for(repo, "t-1", host_name())

    assert tasks_module._on_this_host(app.tasks.context, args) is args


def test_a_task_carries_its_host_only_when_it_has_one() -> None:
    assert "host" not in TaskArgs("/srv/app", "t-1").to_task()
    assert TaskArgs.from_task(TaskArgs("/srv/app", "t-1", host="alpha").to_task()).host == "alpha"
    with pytest.raises(TaskError, match="host"):
        TaskArgs.from_task({**TaskArgs("/srv/app", "t-1").to_task(), "host": 7})
