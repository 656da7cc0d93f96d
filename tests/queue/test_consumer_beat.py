"""A consumer's heartbeat record: written at start, kept fresh, gone at a clean stop."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest

from bdp.broker.consumers import ConsumerBeat, Consumers
from bdp.config import Settings
from bdp.queue.consumer_beat import Heartbeat
from bdp.queue.instance import build_huey
from tests.support.processes import wait_for
from tests.support.secrets import SECRET


def test_a_heartbeat_records_the_consumer_at_once_refreshes_it_and_removes_it_at_stop(
    tmp_path: Path,
) -> None:
    # Given a heartbeat beating every 50 ms
    huey = build_huey(Settings(home=tmp_path / "home"))
    heartbeat = Heartbeat.here(huey, workers=4, kind="process", interval=0.05, expiry=30)
    consumers = Consumers(huey)

    # When it starts, the record is there before the first interval
    heartbeat.start()
    try:
        [first] = consumers.all()
        assert (first.host, first.pid) == (socket.gethostname(), os.getpid())
        assert (first.workers, first.kind) == (4, "process")

        # Then its beat moves on while it runs
        wait_for(lambda: consumers.all()[0].beat > first.beat, timeout=10)
        assert consumers.all()[0].started == first.started
    finally:
        heartbeat.stop()

    # And a clean stop removes it
    assert consumers.all() == []


def test_a_beating_consumer_drops_the_record_of_one_that_went_silent(tmp_path: Path) -> None:
    # Given the record of a consumer that stopped beating a minute ago (SIGKILLed, say)
    huey = build_huey(Settings(home=tmp_path / "home"))
    consumers = Consumers(huey)
    gone = time.time() - 60
    consumers.beat(ConsumerBeat("elsewhere", 99, 2, "thread", gone, gone))

    # When a consumer with a 30 s expiry beats
    heartbeat = Heartbeat.here(huey, workers=1, kind="thread", interval=5, expiry=30)
    heartbeat.start()
    try:
        # Then only its own record is left
        assert [c.host for c in consumers.all()] == [socket.gethostname()]
    finally:
        heartbeat.stop()


def test_a_broker_that_is_away_costs_beats_never_the_consumer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a Redis nobody listens on
    url = "redis://127.0.0.1:9/0"
    huey = build_huey(Settings(home=tmp_path / "home", redis_url=url, secret=SECRET))
    heartbeat = Heartbeat.here(huey, workers=1, kind="thread", interval=0.05, expiry=30)

    # When the heartbeat starts, beats a few times and stops
    with caplog.at_level(logging.DEBUG, logger="bdp.queue.consumer_beat"):
        heartbeat.start()
        wait_for(lambda: len(caplog.records) >= 4, timeout=20)
        heartbeat.stop()

    # Then nothing was raised and each failed beat was a quiet debug line
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    assert "could not beat" in caplog.records[0].getMessage()
    huey.storage.pool.disconnect()
