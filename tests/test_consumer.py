"""BdpConsumer's own settings: how often idle workers look for work."""

from __future__ import annotations

from pathlib import Path

from bdp.config import Settings
from bdp.consumer import IDLE_POLL_CAP
from bdp.queue import build_huey


def test_idle_workers_poll_a_sqlite_queue_at_least_once_a_second(tmp_path: Path) -> None:
    huey = build_huey(Settings(home=tmp_path / "home"))

    consumer = huey.create_consumer(workers=1, max_delay=10.0)

    assert consumer.max_delay == IDLE_POLL_CAP == 1.0


def test_a_redis_queue_keeps_hueys_delay_because_its_workers_block(redis_url: str) -> None:
    huey = build_huey(Settings(home=Path("/nonexistent"), redis_url=redis_url))

    consumer = huey.create_consumer(workers=1, max_delay=10.0)

    assert consumer.max_delay == 10.0
    huey.storage.pool.disconnect()
