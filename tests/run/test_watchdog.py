"""The watchdog beside each run: heartbeats, bd leases, and the reasons to stop early."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis
from huey import MemoryHuey

from bdp.agent.session import StopSignal
from bdp.broker.claims import Fence, Lease, RedisClaims
from bdp.broker.state import State
from bdp.models import Issue, Outcome, Run
from bdp.repo.memory_beads import MemoryBeads
from bdp.run import shutdown
from bdp.run.watchdog import Pace, Watchdog
from tests.support.processes import wait_for


class CountingBeads(MemoryBeads):
    def __init__(self) -> None:
        super().__init__([Issue(id="t-1", title="x", status="in_progress", assignee="me")])
        self.renewals = 0

    def renew_lease(self, issue_id: str, actor: str) -> None:
        self.renewals += 1


@pytest.fixture(autouse=True)
def no_shutdown() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


@pytest.fixture
def state() -> State:
    state = State(MemoryHuey("watchdog"))
    state.register(a_run())
    return state


def a_run() -> Run:
    now = time.time()
    return Run("r1", "t-1", "/repo", "x", "h", 1, "w", 1, now, now + 60, now - 100)


def watch_for(state: State, beads: CountingBeads, wrapup: float = 30) -> Watchdog:
    pace = Pace(heartbeat=0.05, wrapup=wrapup, lease_every=0.05)
    return Watchdog(state, beads, a_run(), "me", StopSignal(), pace)


def test_heartbeats_and_leases_are_renewed_while_the_run_lasts(state: State) -> None:
    beads = CountingBeads()
    watch = watch_for(state, beads)

    with watch.running():
        wait_for(lambda: state.runs()[0].heartbeat > time.time() - 1 and beads.renewals >= 2, 5)

    assert not watch.stop.is_set()


def test_a_run_taken_away_by_the_janitor_is_told_to_stop_as_superseded(state: State) -> None:
    watch = watch_for(state, CountingBeads())

    with watch.running():
        state.unregister("r1")
        wait_for(watch.stop.is_set, 5)

    assert watch.stop.outcome is Outcome.SUPERSEDED
    assert state.runs() == []  # the beat did not bring the run back


def test_an_immediate_shutdown_stops_the_session_at_once(state: State) -> None:
    watch = watch_for(state, CountingBeads())

    with watch.running():
        shutdown.request("immediate")
        wait_for(watch.stop.is_set, 5)

    assert (watch.stop.outcome, watch.stop.reason) == (
        Outcome.INTERRUPTED,
        "the worker was stopped",
    )


def test_a_graceful_shutdown_waits_for_the_wrap_up_window(state: State) -> None:
    watch = watch_for(state, CountingBeads(), wrapup=0.5)

    with watch.running():
        shutdown.request("graceful")
        started = time.monotonic()
        wait_for(watch.stop.is_set, 5)
        waited = time.monotonic() - started

    assert waited >= 0.5
    assert "0.5s wrap-up window ended" in watch.stop.reason


class SlowBeads(CountingBeads):
    """A bd whose `bd heartbeat` takes far longer than the run's heartbeat interval."""

    def renew_lease(self, issue_id: str, actor: str) -> None:
        super().renew_lease(issue_id, actor)
        time.sleep(1.0)


def test_a_slow_bd_lease_renewal_never_delays_the_runs_heartbeat(state: State) -> None:
    beads = SlowBeads()
    watch = watch_for(state, beads)
    beats: list[float] = []

    with watch.running():
        wait_for(lambda: beads.renewals >= 1, 5)
        deadline = time.monotonic() + 0.9
        while time.monotonic() < deadline:  # sample while the renewal is stuck in bd
            beats.append(state.runs()[0].heartbeat)
            time.sleep(0.05)

    assert len(set(beats)) >= 3  # fresh heartbeats (every 0.25 s) during one slow renewal


def test_a_run_whose_lease_another_machine_took_is_told_to_stop_as_superseded(
    state: State, redis_url: str
) -> None:
    # Given a run holding its issue's lease in Redis, renewed with each heartbeat
    claims = RedisClaims(redis.Redis.from_url(redis_url), "bdp", ttl=30)
    lease = claims.take("/repo", "t-1", "alpha/task-a")
    assert isinstance(lease, Lease)
    watch = watch_for(state, CountingBeads())
    watch.fence = Fence(claims, lease)

    with watch.running():
        wait_for(lambda: claims.holds(lease) and state.runs()[0].heartbeat > time.time() - 1, 5)
        assert not watch.stop.is_set()
        # When the lease lapses and another machine's run takes it
        claims.release(lease)
        assert isinstance(claims.take("/repo", "t-1", "beta/task-b"), Lease)
        wait_for(watch.stop.is_set, 5)

    # Then the run is stopped, and the lease stays with the other machine's run
    assert watch.stop.outcome is Outcome.SUPERSEDED
    assert not claims.holds(lease)


class FlakyState(State):
    """A state whose heartbeat writes fail while ``down`` is set (the broker is away)."""

    down = False
    beats_tried = 0

    def beat(self, run_id: str, at: float | None = None) -> None:
        self.beats_tried += 1
        if self.down:
            raise ConnectionError("broker away")
        super().beat(run_id, at)


def test_a_broker_outage_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a run whose heartbeats fail for several ticks, then work again
    state = FlakyState(MemoryHuey("flaky"))
    state.register(a_run())
    state.down = True
    watch = watch_for(state, CountingBeads())

    with caplog.at_level(logging.INFO, logger="bdp.run.watchdog"), watch.running():
        wait_for(lambda: state.beats_tried >= 5, 5)
        state.down = False
        wait_for(lambda: "works again" in caplog.text, 5)

    # Then one warning said it failed, and one line that it works again
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1
    assert caplog.text.count("works again") == 1
