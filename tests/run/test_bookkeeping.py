"""A finishing run's broker writes: done despite an outage, and a bug is called a bug."""

from __future__ import annotations

import logging
import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdp.run.bookkeeping import despite_broker


def unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    ).ping()


def test_a_step_that_works_returns_its_value() -> None:
    assert despite_broker("count", lambda: 3) == 3


def test_an_unreachable_broker_is_logged_as_such_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bdp.run.bookkeeping"):
        assert despite_broker("unregister the run", unreachable) is None

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "could not unregister the run: the broker is unreachable" in record.getMessage()
    assert record.exc_info is None


def test_any_other_failure_is_logged_as_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise KeyError("run_id")

    with caplog.at_level(logging.WARNING, logger="bdp.run.bookkeeping"):
        assert despite_broker("unregister the run", broken) is None

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "a bug in bdp" in record.getMessage()
    assert "unreachable" not in record.getMessage()
    assert record.exc_info is not None
