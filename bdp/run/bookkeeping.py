"""The broker writes a finishing run makes, done despite a broker outage.

What is left behind when the broker is away (a registered run, an enqueue marker) is
recovered by the janitor later, while the bd reset and the lock release, which other agents
wait for, still happen now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from bdp.broker.state import State
from bdp.errors import is_broker_error

log = logging.getLogger(__name__)
T = TypeVar("T")


def despite_broker(step: str, action: Callable[[], T]) -> T | None:
    """Run a bookkeeping step; if it fails, log why and go on finishing the run (None)."""
    try:
        return action()
    except Exception as error:
        if is_broker_error(error):
            log.warning("could not %s: the broker is unreachable: %s", step, error)
        else:
            log.exception("could not %s (a bug in bdp); going on finishing the run", step)
        return None


def unmark_if_ours(state: State, repo: str, issue_id: str, task_id: str) -> None:
    """Drop the issue's enqueue marker if it still names this task (not a requeue's)."""
    marker = state.marker(repo, issue_id)
    if marker is not None and marker.task_id == task_id:
        state.unmark(repo, issue_id)
