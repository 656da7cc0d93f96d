"""The thread beside every run: heartbeats, bd work leases, and the reasons to stop early.

A thread rather than an asyncio task, so a busy or stuck event loop cannot starve it. It
stops the session when the run was taken away (the janitor reset the issue: SUPERSEDED)
or when the consumer shuts down (at once, or after the wrap-up window: INTERRUPTED).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bdp.agent.session import LiveProgress, StopSignal
from bdp.broker.state import State
from bdp.models import Outcome
from bdp.repo.beads import Beads
from bdp.run import shutdown

log = logging.getLogger("bdp.run.watchdog")
#: Seconds between checks for shutdown; heartbeats are written every `Settings.heartbeat`.
TICK = 0.25
#: Seconds between writes of a session's live progress (only when it changed).
PROGRESS_EVERY = 1.0
#: Seconds between renewals of bd's own work lease (bd 1.3+; its default TTL is 5 minutes).
LEASE_RENEWAL = 60.0


@dataclass
class Watch:
    """What the watchdog looks after."""

    state: State
    beads: Beads
    run_id: str
    issue_id: str
    actor: str
    stop: StopSignal
    heartbeat: float
    wrapup: float
    lease_every: float = LEASE_RENEWAL
    progress: LiveProgress | None = None


def _tick(watch: Watch, clock: dict[str, float]) -> None:
    now = time.monotonic()
    if now - clock["beat"] >= watch.heartbeat:
        clock["beat"] = now
        watch.state.beat(watch.run_id)
        if not watch.state.has_run(watch.run_id):
            watch.stop.stop(Outcome.SUPERSEDED, "the janitor reset this issue; another run owns it")
    if watch.progress is not None and now - clock["progress"] >= PROGRESS_EVERY:
        clock["progress"] = now
        activity = watch.progress.take()
        if activity is not None:
            watch.state.report_activity(watch.run_id, activity)
    if now - clock["lease"] >= watch.lease_every:
        clock["lease"] = now
        watch.beads.renew_lease(watch.issue_id, watch.actor)
    _check_shutdown(watch, clock, now)


def _check_shutdown(watch: Watch, clock: dict[str, float], now: float) -> None:
    mode = shutdown.requested()
    if mode == "immediate":
        watch.stop.stop(Outcome.INTERRUPTED, "the worker was stopped")
    elif mode == "graceful":
        clock.setdefault("graceful", now)
        if now - clock["graceful"] >= watch.wrapup:
            reason = f"the worker shut down; the {watch.wrapup:g}s wrap-up window ended"
            watch.stop.stop(Outcome.INTERRUPTED, reason)


@contextmanager
def watching(watch: Watch) -> Iterator[None]:
    """Run the watchdog for the duration of the block."""
    done = threading.Event()
    start = time.monotonic()
    clock = {"beat": start, "lease": start, "progress": start}

    def loop() -> None:
        while not done.wait(TICK):
            try:
                _tick(watch, clock)
            except Exception:  # a broker blip must not kill the run; the next tick retries
                log.warning("watchdog of %s failed", watch.run_id, exc_info=True)

    thread = threading.Thread(target=loop, name=f"watchdog-{watch.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
