"""`bdp worker`'s consumer setup: Huey's start-up lines give way to bdp's one line."""

from __future__ import annotations

import logging

import pytest

from bdp.queue.serve import _HueyStartLines


@pytest.mark.parametrize(
    "message",
    [
        "Huey consumer started with %s %s, PID %s at %s",
        "Scheduler runs every %s second(s).",
        "Periodic tasks are %s.",
        "The following commands are available:\n+ bdp.tasks.run_issue",
    ],
)
def test_hueys_start_lines_are_dropped(message: str) -> None:
    record = logging.LogRecord("huey.consumer", logging.INFO, "x", 1, message, (), None)

    assert not _HueyStartLines().filter(record)


@pytest.mark.parametrize(
    "message", ["Received SIGINT", "Shutting down gracefully...", "Worker %d died, restarting."]
)
def test_the_rest_of_what_huey_says_stays(message: str) -> None:
    record = logging.LogRecord("huey.consumer", logging.INFO, "x", 1, message, (), None)

    assert _HueyStartLines().filter(record)
