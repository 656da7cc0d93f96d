"""bdp.broker.persistence on real redis-servers: one that keeps nothing on disk is flagged
(by `bdp status` too), one with the append-only file is not."""

from __future__ import annotations

from pathlib import Path

from bdp.broker.persistence import redis_persistence
from bdp.config import Settings
from bdp.ops.status import collect_status
from tests.support.redis_server import RedisServer


def test_a_redis_without_aof_or_snapshots_is_volatile(redis_server: RedisServer) -> None:
    # the session's server runs with --save "" --appendonly no
    assert redis_persistence(redis_server.client()) == "none"


def test_a_redis_with_the_append_only_file_keeps_the_queue(throwaway_redis: RedisServer) -> None:
    assert redis_persistence(throwaway_redis.client()) == "aof"


def test_snapshots_alone_count_too(throwaway_redis: RedisServer) -> None:
    client = throwaway_redis.client()
    client.config_set("appendonly", "no")
    client.config_set("save", "3600 1")

    assert redis_persistence(client) == "rdb"


def test_status_says_what_the_broker_keeps(
    redis_url: str, throwaway_redis: RedisServer, tmp_path: Path
) -> None:
    volatile = collect_status(Settings(home=tmp_path / "a", redis_url=redis_url))
    durable = collect_status(Settings(home=tmp_path / "b", redis_url=throwaway_redis.url))

    assert volatile.to_json()["persistence"] == "none"
    assert durable.to_json()["persistence"] == "aof"
