"""Errors: the one place that decides whether a failure is the broker being unreachable."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdp.errors import BdpError, ConfigError, is_broker_error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_redis_server_that_does_not_answer_is_a_broker_error() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.RedisError) as raised:
        client.ping()

    assert is_broker_error(raised.value)


def test_a_queue_database_that_cannot_be_opened_is_a_broker_error(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(tmp_path / "missing" / "queue.db")

    assert is_broker_error(raised.value)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), OSError("disk"), KeyError("k"), ConfigError("x"), sqlite3.IntegrityError()],
)
def test_other_failures_are_not_blamed_on_the_broker(error: Exception) -> None:
    assert not is_broker_error(error)


def test_a_bdp_error_reads_as_its_message_and_its_hint() -> None:
    assert str(BdpError("what is wrong", "what to do")) == "what is wrong (what to do)"
    assert ConfigError("x").exit_code == 2
