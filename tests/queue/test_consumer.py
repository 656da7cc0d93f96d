"""BdpConsumer's own behaviour: how often idle workers look for work, and holding."""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bdp.agent.session import StubAgentRunner
from bdp.broker.consumers import Consumers
from bdp.broker.keys import LAST_SWEEP_KEY
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.queue.app import App
from bdp.queue.consumer import HELD_WAIT, IDLE_POLL_CAP
from bdp.queue.instance import build_huey
from tests.support.secrets import SECRET


def test_idle_workers_poll_a_sqlite_queue_at_least_once_a_second(tmp_path: Path) -> None:
    huey = build_huey(Settings(home=tmp_path / "home"))

    consumer = huey.create_consumer(workers=1, max_delay=10.0)

    assert consumer.max_delay == IDLE_POLL_CAP == 1.0


def test_a_redis_queue_keeps_hueys_delay_because_its_workers_block(redis_url: str) -> None:
    huey = build_huey(Settings(home=Path("/nonexistent"), redis_url=redis_url, secret=SECRET))

    consumer = huey.create_consumer(workers=1, max_delay=10.0)

    assert consumer.max_delay == 10.0
    huey.storage.pool.disconnect()


def held_app(tmp_path: Path) -> App:
    """A SQLite queue whose $1 budget is spent, with one issue's task queued."""
    app = App.create(
        Settings(home=tmp_path / "home", budget_usd=1.0), agent=lambda _s: StubAgentRunner()
    )
    app.state.record(RunRecord("r0", "t-0", "/repo", "x", Outcome.DONE, "ok", cost_usd=1.0))
    app.tasks.run_issue(TaskArgs("/repo", "t-1").to_task())
    return app


def test_a_held_queue_is_not_dequeued_and_its_tasks_wait_untouched(tmp_path: Path) -> None:
    app = held_app(tmp_path)
    consumer = app.huey.create_consumer(workers=1)
    worker = consumer._create_worker()

    started = time.monotonic()
    worker.loop()

    assert app.huey.pending_count() == 1  # still there, same place
    assert time.monotonic() - started >= HELD_WAIT * 0.9  # it waited instead of polling
    record = app.state.get_meta("budget_hold")
    assert record is not None
    assert "queue budget spent" in record["reason"]  # so any `bdp status` shows why


def test_the_janitor_runs_beside_the_scheduler_never_on_the_queue(tmp_path: Path) -> None:
    # Given a queue with a task waiting (held, so no worker takes it)
    app = held_app(tmp_path)
    consumer = app.huey.create_consumer(workers=1, periodic=True)
    scheduler = consumer._create_scheduler()

    # When the scheduler's periodic check comes
    scheduler.enqueue_periodic_tasks(datetime.datetime.now())
    scheduler.beside.join(timeout=30)

    # Then the sweep ran right there, and nothing was queued for it
    assert app.huey.pending_count() == 1  # only the issue's task
    assert app.state.get_meta(LAST_SWEEP_KEY) is not None


def test_a_periodic_check_while_a_sweep_runs_starts_no_second_one(tmp_path: Path) -> None:
    # Given a sweep that is still running
    app = held_app(tmp_path)
    consumer = app.huey.create_consumer(workers=1, periodic=True)
    beside = consumer._create_scheduler().beside
    release = threading.Event()
    runs: list[str] = []

    def slow(task: object) -> None:
        runs.append(str(task))
        release.wait(30)

    app.huey.execute = slow
    assert beside.start("sweep-1")

    # When the next checks come before it ends
    skipped = [beside.start("sweep-2"), beside.start("sweep-3")]
    release.set()
    beside.join(timeout=30)

    # Then they were skipped, and once it ended the next one starts
    assert skipped == [False, False]
    assert runs == ["sweep-1"]
    assert beside.start("sweep-4")
    beside.join(timeout=30)
    assert runs == ["sweep-1", "sweep-4"]


def test_a_broker_that_cannot_be_reached_is_one_warning_line_per_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a consumer (it teaches Huey's loggers about an unreachable Redis)
    build_huey(Settings(home=tmp_path / "home")).create_consumer(workers=1)
    worker_log = logging.getLogger("huey.consumer.Worker")

    # When a worker fails to read the queue because Redis is away, and for another reason
    with caplog.at_level(logging.INFO):
        for error in (
            RedisConnectionError("Error 111 connecting to 127.0.0.1:6399."),
            KeyError("x"),
        ):
            try:
                raise error
            except Exception:
                worker_log.exception("Error reading from queue")

    # Then the first is a line that names the cause, with no traceback; the other is untouched
    away, other = caplog.records
    assert away.levelname == "WARNING"
    assert away.getMessage() == (
        "Error reading from queue: cannot reach Redis (Error 111 connecting to 127.0.0.1:6399.); "
        "retrying"
    )
    assert away.exc_info is None
    assert other.levelname == "ERROR"
    assert other.exc_info is not None


@pytest.mark.parametrize("logger", ["bdp.run.watchdog", "bdp.queue.janitor"])
def test_a_runs_heartbeat_or_a_janitor_step_without_redis_is_one_line_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, logger: str
) -> None:
    # Given a consumer
    build_huey(Settings(home=tmp_path / "home")).create_consumer(workers=1)

    # When a run's watchdog (or a janitor step) fails to write to a Redis that restarts
    with caplog.at_level(logging.INFO):
        try:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6399.")
        except RedisConnectionError:
            logging.getLogger(logger).warning("watchdog of r-1 failed", exc_info=True)

    # Then the consumer's log has one line that names the cause, and no traceback
    (away,) = caplog.records
    assert away.exc_info is None
    assert "watchdog of r-1 failed: cannot reach Redis" in away.getMessage()


def test_a_worker_whose_hold_check_cannot_reach_redis_goes_on_to_its_dequeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose look at the hold fails: the broker is away
    app = App.create(Settings(home=tmp_path / "home"), agent=lambda _s: StubAgentRunner())
    worker = app.huey.create_consumer(workers=1)._create_worker()

    def away() -> None:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6399.")

    monkeypatch.setattr(worker.hold, "check", away)
    dequeued: list[bool] = []
    monkeypatch.setattr(app.huey, "dequeue", lambda: dequeued.append(True))

    # When it loops, it does not die (Huey would log a traceback and restart it): it goes on
    # to the dequeue, which meets the broker away too and says so in one line
    worker.loop()

    assert dequeued == [True]


def test_allowed_tools_the_cli_does_not_offer_are_named_in_one_warning_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tools = ("Read", "TodoWrite", "Bash(git log:*)", "MultiEdit")
    settings = Settings(home=tmp_path / "home", allowed_tools=tools)

    with caplog.at_level(logging.WARNING, logger="bdp.queue.consumer"):
        build_huey(settings).create_consumer(workers=1)

    assert caplog.messages == [
        "bdp: BDP_ALLOWED_TOOLS names tools the Claude CLI does not offer: TodoWrite, MultiEdit"
    ]
    assert all(record.exc_info is None for record in caplog.records)


def test_a_consumer_with_the_default_tools_starts_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bdp.queue.consumer"):
        build_huey(Settings(home=tmp_path / "home")).create_consumer(workers=1)

    assert caplog.messages == []


def test_a_consumer_says_who_it_is_in_one_line_and_beats_until_it_stops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a consumer of two threads on a SQLite queue
    settings = Settings(home=tmp_path / "home", janitor_interval=15, heartbeat=0.05)
    app = App.create(settings, agent=lambda _s: StubAgentRunner())
    app.tasks  # noqa: B018  registered, as a worker has them
    consumer = app.huey.create_consumer(workers=2, worker_type="thread")
    consumers = Consumers(app.huey)

    # When it starts
    with caplog.at_level(logging.INFO, logger="bdp.queue.consumer"):
        consumer.start()
    try:
        # Then one line names its host, pid, workers, broker and janitor interval
        [line] = [r.getMessage() for r in caplog.records if r.name == "bdp.queue.consumer"]
        assert line == (
            f"bdp: consumer started on {socket.gethostname()}, pid {os.getpid()}: "
            f"2 thread workers, broker {settings.broker_label}, janitor every 15s"
        )
        # And its record is in the broker
        assert [(c.pid, c.workers, c.kind) for c in consumers.all()] == [(os.getpid(), 2, "thread")]
    finally:
        consumer.stop(graceful=True)

    # And a clean stop takes the record away
    assert consumers.all() == []
