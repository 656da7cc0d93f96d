"""The threads beside every run: heartbeats, bd work leases, and the reasons to stop early.

Threads rather than asyncio tasks, so a busy or stuck event loop cannot starve them; two of
them, so a slow `bd heartbeat` never delays the run's own heartbeat (the janitor would take
a late one for a dead run). The watchdog stops the session when the run was taken away
(the janitor reset the issue: SUPERSEDED), when the consumer shuts down (at once, or
after the wrap-up window: INTERRUPTED), or when a person asks (`bdp stop`: INTERRUPTED). It
also reads the run's inbox for `bdp say` messages (`bdp.run.steering`): it is the one reader
that runs whatever the session does, one key read per look however many tool calls the agent
makes, and it sees a stop even while the session waits on the API or on a tool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bdp.agent.session import LiveProgress, StopSignal
from bdp.broker.claims import Fence
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, Run
from bdp.repo.beads import Beads
from bdp.run import shutdown
from bdp.run.steering import InboxReader

log = logging.getLogger(__name__)
#: Seconds between checks for shutdown; heartbeats are written every `Pace.heartbeat`.
TICK = 0.25
#: Seconds between writes of a session's live progress (only when it changed).
PROGRESS_EVERY = 1.0
#: Seconds between renewals of bd's own work lease (bd 1.3+; its default TTL is 5 minutes).
LEASE_RENEWAL = 60.0
#: Seconds between looks at the run's inbox (`bdp say`, `bdp stop`): "within a few seconds",
#: where the heartbeat is paced for the janitor's stale window instead.
INBOX_EVERY = 2.0


@dataclass(frozen=True)
class Pace:
    """How often the watchdog acts, in seconds."""

    heartbeat: float
    wrapup: float  # how long a graceful shutdown lets the session wrap up
    lease_every: float = LEASE_RENEWAL
    inbox_every: float = INBOX_EVERY

    @classmethod
    def from_settings(cls, settings: Settings) -> Pace:
        """Leases renewed at least twice per stale period, so the janitor never sees a gap;
        the inbox read at least as often as the heartbeat is written."""
        lease_every = min(LEASE_RENEWAL, settings.stale_after / 2)
        inbox_every = min(INBOX_EVERY, settings.heartbeat)
        return cls(settings.heartbeat, settings.wrapup, lease_every, inbox_every)


@dataclass
class _Clock:
    """When each of the watchdog's duties was last done (monotonic seconds)."""

    beat: float
    progress: float
    inbox: float
    graceful: float | None = None  # when a graceful shutdown was first seen


@dataclass
class Watchdog:
    """Looks after one run: its registry entry, its bd claim, and its session's stop signal."""

    state: State
    beads: Beads
    run: Run
    actor: str
    stop: StopSignal
    pace: Pace
    progress: LiveProgress | None = None
    inbox: InboxReader | None = None  # None: nobody can steer this run
    fence: Fence | None = None  # the run's lease on the issue, renewed with each heartbeat
    _done: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Run the watchdog for the duration of the block."""
        start = time.monotonic()
        clock = _Clock(beat=start, progress=start, inbox=start)
        self._done.clear()
        name = self.run.run_id
        threads = [
            threading.Thread(target=self._loop, args=(clock,), name=f"watchdog-{name}"),
            threading.Thread(target=self._renew_leases, name=f"lease-{name}"),
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        try:
            yield
        finally:
            self._done.set()
            for thread in threads:
                thread.join()
            if self.inbox is not None:
                self.inbox.close()

    def _loop(self, clock: _Clock) -> None:
        failing = False  # the ticks keep failing: said once, and again when they work
        while not self._done.wait(TICK):
            try:
                self._tick(clock, time.monotonic())
            except Exception:  # a broker blip must not kill the run; the next tick retries
                if not failing:
                    log.warning("watchdog of %s failed", self.run.run_id, exc_info=True)
                failing = True
            else:
                if failing:
                    log.info("watchdog of %s works again", self.run.run_id)
                failing = False

    def _tick(self, clock: _Clock, now: float) -> None:
        if now - clock.beat >= self.pace.heartbeat:
            clock.beat = now
            self._beat()
        if self.progress is not None and now - clock.progress >= PROGRESS_EVERY:
            clock.progress = now
            activity = self.progress.take()
            if activity is not None:
                self.state.report_activity(self.run.run_id, activity)
        if self.inbox is not None and now - clock.inbox >= self.pace.inbox_every:
            clock.inbox = now
            self.inbox.check()
        self._check_shutdown(clock, now)

    def _renew_leases(self) -> None:
        """Keep bd's work lease on the issue alive, on a thread of its own (bd may be slow)."""
        while not self._done.wait(self.pace.lease_every):
            try:
                self.beads.renew_lease(self.run.issue_id, self.actor)
            except Exception:
                log.warning("lease renewal of %s failed", self.run.issue_id, exc_info=True)

    def _beat(self) -> None:
        self.state.beat(self.run.run_id)
        if not self.state.has_run(self.run.run_id):
            self.stop.stop(Outcome.SUPERSEDED, "the janitor reset this issue; another run owns it")
        elif self.fence is not None and not self.fence.renew():
            self.stop.stop(Outcome.SUPERSEDED, "its lease on the issue lapsed; another run has it")

    def _check_shutdown(self, clock: _Clock, now: float) -> None:
        mode = shutdown.requested()
        if mode == "immediate":
            self.stop.stop(Outcome.INTERRUPTED, "the worker was stopped")
        elif mode == "graceful":
            clock.graceful = now if clock.graceful is None else clock.graceful
            if now - clock.graceful >= self.pace.wrapup:
                reason = f"the worker shut down; the {self.pace.wrapup:g}s wrap-up window ended"
                self.stop.stop(Outcome.INTERRUPTED, reason)
