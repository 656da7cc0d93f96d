"""Unit tests for bdp/broker/state.py on each kind of storage bdp can run on.

Memory is Huey's in-process storage; SQLite is the default broker; fakeredis stands in
for a Redis server (a real one is exercised by the integration tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey

from bdp.broker import state as state_module
from bdp.broker.state import Marker, State, marker_key
from bdp.models import Outcome, Run, RunRecord

REPO = "/work/repo"

HueyFactory = Callable[[], Huey]


def _huey_factory(backend: str, tmp_path: Path) -> tuple[HueyFactory, Callable[[], None]]:
    """A factory of Hueys sharing one backing store (like consumers would), and a cleanup."""
    if backend == "memory":
        shared = MemoryHuey("t")
        return (lambda: shared), (lambda: None)
    if backend == "sqlite":
        filename = str(tmp_path / "queue.db")
        return (lambda: SqliteHuey("t", filename=filename)), (lambda: None)
    pool = redis.ConnectionPool(
        connection_class=fakeredis.FakeRedisConnection, server=fakeredis.FakeServer()
    )
    return (lambda: RedisHuey("t", connection_pool=pool)), pool.disconnect


@pytest.fixture(params=["memory", "sqlite", "fakeredis"])
def make_huey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HueyFactory]:
    factory, cleanup = _huey_factory(request.param, tmp_path)
    yield factory
    cleanup()


@pytest.fixture(params=["sqlite", "fakeredis"])
def make_shared_huey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HueyFactory]:
    """Brokers that several processes share (a MemoryHuey lives in one process)."""
    factory, cleanup = _huey_factory(request.param, tmp_path)
    yield factory
    cleanup()


@pytest.fixture
def state(make_huey: HueyFactory) -> State:
    return State(make_huey())


def make_run(run_id: str, started: float, issue_id: str = "proj-1") -> Run:
    return Run(
        run_id=run_id,
        issue_id=issue_id,
        repo=REPO,
        title=f"title of {issue_id}",
        host="box",
        pid=1234,
        worker="worker-1",
        attempt=1,
        started=started,
        deadline=started + 1800,
        heartbeat=started,
        log_path=f"/logs/{run_id}.log",
    )


def make_record(run_id: str, finished: float) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        issue_id="proj-1",
        repo=REPO,
        title="t",
        outcome=Outcome.DONE,
        summary=f"summary {run_id}",
        started=finished - 10,
        finished=finished,
        files=["a.py"],
    )


# -- markers ---------------------------------------------------------------------------


def test_mark_queued_takes_the_marker_only_once(state: State) -> None:
    assert state.mark_queued(REPO, "proj-1", "task-1") is True
    assert state.mark_queued(REPO, "proj-1", "task-2") is False

    marker = state.marker(REPO, "proj-1")
    assert marker is not None
    assert (marker.state, marker.task_id) == ("queued", "task-1")


def test_markers_are_per_repo_and_issue(state: State) -> None:
    assert state.mark_queued(REPO, "proj-1", "t1")

    assert state.mark_queued(REPO, "proj-2", "t2") is True
    assert state.mark_queued("/work/other", "proj-1", "t3") is True


def test_mark_queued_is_atomic_under_racing_threads(make_shared_huey: HueyFactory) -> None:
    # Given eight enqueuers, each with its own State on the shared broker
    states = [State(make_shared_huey()) for _ in range(8)]
    start = threading.Barrier(len(states))
    wins: list[bool] = []
    errors: list[BaseException] = []

    def enqueue(index: int) -> None:
        start.wait()
        try:
            wins.append(states[index].mark_queued(REPO, "proj-1", f"task-{index}"))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    # When they all try to queue the same issue at once
    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(len(states))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one of them took the marker
    assert errors == []
    assert sorted(wins) == [False] * 7 + [True]
    marker = states[0].marker(REPO, "proj-1")
    assert marker is not None
    assert marker.task_id in {f"task-{i}" for i in range(len(states))}


def test_mark_queued_is_atomic_for_threads_sharing_one_state(state: State) -> None:
    start = threading.Barrier(8)
    wins: list[bool] = []

    def enqueue(index: int) -> None:
        start.wait()
        wins.append(state.mark_queued(REPO, "proj-1", f"task-{index}"))

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(wins) == [False] * 7 + [True]


def test_the_winning_task_id_is_the_one_recorded(make_shared_huey: HueyFactory) -> None:
    first, second = State(make_shared_huey()), State(make_shared_huey())

    assert first.mark_queued(REPO, "proj-1", "winner")
    assert not second.mark_queued(REPO, "proj-1", "loser")

    marker = second.marker(REPO, "proj-1")
    assert marker is not None
    assert marker.task_id == "winner"


def test_mark_running_replaces_the_queued_marker(state: State) -> None:
    state.mark_queued(REPO, "proj-1", "task-1")

    state.mark_running(REPO, "proj-1", "task-1")

    marker = state.marker(REPO, "proj-1")
    assert marker is not None
    assert marker.state == "running"
    assert marker.task_id == "task-1"
    assert state.mark_queued(REPO, "proj-1", "task-2") is False


def test_mark_running_without_a_queued_marker_creates_one(state: State) -> None:
    state.mark_running(REPO, "proj-1", "task-9")

    marker = state.marker(REPO, "proj-1")
    assert marker is not None
    assert marker.state == "running"


def test_unmark_frees_the_issue_for_the_next_enqueue(state: State) -> None:
    state.mark_queued(REPO, "proj-1", "task-1")

    state.unmark(REPO, "proj-1")

    assert state.marker(REPO, "proj-1") is None
    assert state.mark_queued(REPO, "proj-1", "task-2") is True


def test_unmark_of_an_unmarked_issue_is_harmless(state: State) -> None:
    state.unmark(REPO, "never-queued")

    assert state.markers() == []


def test_marker_of_an_unknown_issue_is_none(state: State) -> None:
    assert state.marker(REPO, "proj-404") is None


def test_markers_lists_every_marker_with_its_repo_and_issue(state: State) -> None:
    state.mark_queued(REPO, "proj-1", "t1")
    state.mark_running("/work/odd::name", "proj-2", "t2")

    markers = sorted(state.markers(), key=lambda m: m.task_id)

    assert [(m.repo, m.issue_id, m.state, m.task_id) for m in markers] == [
        (REPO, "proj-1", "queued", "t1"),
        ("/work/odd::name", "proj-2", "running", "t2"),
    ]
    assert all(isinstance(m, Marker) and m.since > 0 for m in markers)


def test_marker_key_joins_repo_and_issue() -> None:
    assert marker_key("/r", "p-1") == "/r::p-1"


def test_two_states_on_one_memory_huey_share_their_markers() -> None:
    huey = MemoryHuey("t", immediate=True)

    State(huey).mark_queued(REPO, "proj-1", "task-1")

    assert State(huey).marker(REPO, "proj-1") is not None


def test_two_states_on_one_broker_share_their_markers(make_shared_huey: HueyFactory) -> None:
    State(make_shared_huey()).mark_queued(REPO, "proj-1", "task-1")

    assert State(make_shared_huey()).marker(REPO, "proj-1") is not None


# -- run registry ----------------------------------------------------------------------


def test_register_and_runs_round_trip_every_field(state: State) -> None:
    run = make_run("run-a", started=100.0)

    state.register(run)

    assert state.runs() == [run]


def test_runs_are_listed_by_start_time(state: State) -> None:
    for run_id, started in (("late", 300.0), ("early", 100.0), ("middle", 200.0)):
        state.register(make_run(run_id, started))

    assert [r.run_id for r in state.runs()] == ["early", "middle", "late"]


def test_register_again_updates_the_run(state: State) -> None:
    run = make_run("run-a", started=100.0)
    state.register(run)

    run.heartbeat = 150.0
    state.register(run)

    (stored,) = state.runs()
    assert stored.heartbeat == 150.0


def test_unregister_removes_only_that_run(state: State) -> None:
    state.register(make_run("run-a", 100.0))
    state.register(make_run("run-b", 200.0))

    state.unregister("run-a")
    state.unregister("never-registered")

    assert [r.run_id for r in state.runs()] == ["run-b"]


def test_registry_and_markers_do_not_see_each_other(state: State) -> None:
    state.register(make_run("run-a", 100.0))
    state.mark_queued(REPO, "proj-1", "t1")

    assert len(state.markers()) == 1
    assert len(state.runs()) == 1


# -- outcomes --------------------------------------------------------------------------


def test_record_and_outcomes_round_trip_every_field(state: State) -> None:
    record = make_record("run-a", finished=1_700_000_000.5)

    state.record(record)

    assert state.outcomes() == [record]


def test_outcomes_are_oldest_first_whatever_the_recording_order(state: State) -> None:
    for run_id, finished in (("c", 1_700_000_300.0), ("a", 1_700_000_100.0), ("b", 999.0)):
        state.record(make_record(run_id, finished))

    assert [r.run_id for r in state.outcomes()] == ["b", "a", "c"]


def test_outcomes_with_a_limit_are_the_newest(state: State) -> None:
    for i in range(5):
        state.record(make_record(f"run-{i}", finished=1_700_000_000.0 + i))

    assert [r.run_id for r in state.outcomes(limit=2)] == ["run-3", "run-4"]


def test_record_trims_to_the_newest_outcomes_kept(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "OUTCOMES_KEPT", 3)

    for i in range(6):
        state.record(make_record(f"run-{i}", finished=1_700_000_000.0 + i))

    assert [r.run_id for r in state.outcomes()] == ["run-3", "run-4", "run-5"]


def test_record_keeps_everything_up_to_the_limit(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "OUTCOMES_KEPT", 3)

    for i in range(3):
        state.record(make_record(f"run-{i}", finished=1_700_000_000.0 + i))

    assert len(state.outcomes()) == 3


def test_records_finishing_in_the_same_instant_are_both_kept(state: State) -> None:
    state.record(make_record("run-a", finished=1_700_000_000.0))
    state.record(make_record("run-b", finished=1_700_000_000.0))

    assert sorted(r.run_id for r in state.outcomes()) == ["run-a", "run-b"]


def test_a_once_claim_whose_claimer_died_can_be_claimed_again_after_it_expires() -> None:
    state = State(MemoryHuey("once"))

    assert state.claim_once("reset:x", expires=60)
    assert not state.claim_once("reset:x", expires=60)  # taken, and fresh
    assert state.claim_once("reset:x", expires=0)  # its claimer never acted: abandoned
    assert not state.claim_once("reset:x")  # without an expiry a claim is for good
