"""`bdp say` and `bdp stop` as users meet them: what they send, and one line per mistake."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from bdp.broker.inbox import Steer
from bdp.cli import main
from bdp.cli.main import app_from_env
from bdp.models import Run
from bdp.queue.app import App
from tests.cli.test_cli import error_line
from tests.integration.helpers import bdp


@pytest.fixture
def cli_env(broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`broker_env` (SQLite, then Redis) in this process too, with t-1 running as run r1."""
    for name in os.environ:
        if name.startswith("BDP_") and name not in broker_env:
            monkeypatch.delenv(name)
    for name, value in broker_env.items():
        if name.startswith("BDP_"):
            monkeypatch.setenv(name, value)
    now = time.time()
    with broker_app() as app:
        app.state.register(
            Run("r1", "t-1", "/repo", "x", "host-a", 7, "7-w1", 1, now, now + 60, now)
        )
    return broker_env


@contextlib.contextmanager
def broker_app() -> Iterator[App]:
    """The app of this process's environment, its Redis connections closed after use."""
    app = app_from_env()
    try:
        yield app
    finally:
        pool = getattr(app.huey.storage, "pool", None)
        if pool is not None:
            pool.disconnect()


def inbox(slot: int) -> Steer | None:
    with broker_app() as app:
        return app.state.inbox.read("r1", slot)


def test_say_sends_the_words_to_the_running_issue_and_names_its_run(
    cli_env: dict[str, str],
) -> None:
    result = CliRunner().invoke(
        main, ["say", "t-1", "use", "the helper"], env=cli_env, catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    assert result.output == "sent to run r1 of t-1 (host-a/7-w1)\n"
    steer = inbox(1)
    assert steer is not None
    assert (steer.kind, steer.text) == ("say", "use the helper")


def test_stop_asks_the_running_issue_to_stop_and_to_requeue_when_told(
    cli_env: dict[str, str],
) -> None:
    runner = CliRunner()

    plain = runner.invoke(main, ["stop", "t-1"], env=cli_env, catch_exceptions=False)
    again = runner.invoke(main, ["stop", "t-1", "--requeue"], env=cli_env, catch_exceptions=False)

    assert (plain.exit_code, again.exit_code) == (0, 0), plain.output + again.output
    assert "asked run r1 of t-1 (host-a/7-w1) to stop" in plain.output
    assert "left open" in plain.output
    assert "queued again" in again.output
    assert [(s.kind, s.requeue) for s in (inbox(1), inbox(2)) if s] == [
        ("stop", False),
        ("stop", True),
    ]


@pytest.mark.parametrize("command", [["say", "t-9", "hello"], ["stop", "t-9"]])
def test_an_issue_with_no_running_agent_is_one_error_line(
    cli_env: dict[str, str], command: list[str]
) -> None:
    line = error_line(bdp(cli_env, *command))

    assert "no run of t-9 is running" in line
    assert "bdp status" in line


def test_a_message_too_long_is_one_error_line_and_is_not_sent(cli_env: dict[str, str]) -> None:
    line = error_line(bdp(cli_env, "say", "t-1", "x" * 4001))

    assert "the message has 4,001 characters, more than 4,000" in line
    assert inbox(1) is None
