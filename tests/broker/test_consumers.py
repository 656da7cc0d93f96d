"""Consumer records in the broker: what each consumer says of itself, and when it is gone."""

from __future__ import annotations

from pathlib import Path

from huey import SqliteHuey

from bdp.broker.consumers import ConsumerBeat, Consumers, consumer_key, live_consumers

EXPIRY = 30.0


def beat(pid: int, at: float, started: float = 100.0) -> ConsumerBeat:
    return ConsumerBeat("box", pid, 4, "thread", started, at)


def test_a_record_reads_back_as_written_under_host_and_pid(tmp_path: Path) -> None:
    consumers = Consumers(SqliteHuey("t", filename=str(tmp_path / "q.db")))

    consumers.beat(beat(7, 1000.0))
    consumers.beat(beat(7, 1005.0))  # the same consumer beating again: one record

    assert consumers.all() == [beat(7, 1005.0)]
    assert beat(7, 0).key == consumer_key("box", 7) == "box:7"


def test_a_consumer_that_stopped_beating_is_dropped_by_the_next_prune(tmp_path: Path) -> None:
    # Given one consumer beating now and one whose last beat is older than the expiry
    consumers = Consumers(SqliteHuey("t", filename=str(tmp_path / "q.db")))
    consumers.beat(beat(1, 1000.0))
    consumers.beat(beat(2, 1000.0 - EXPIRY - 1))

    # When a prune runs
    gone = consumers.prune(1000.0, EXPIRY)

    # Then only the silent one is gone
    assert gone == ["box:2"]
    assert [c.pid for c in consumers.all()] == [1]


def test_removing_a_record_leaves_the_others(tmp_path: Path) -> None:
    consumers = Consumers(SqliteHuey("t", filename=str(tmp_path / "q.db")))
    for pid in (1, 2):
        consumers.beat(beat(pid, 1000.0))

    consumers.remove("box:1")

    assert [c.pid for c in consumers.all()] == [2]


def test_live_consumers_are_the_ones_beating_oldest_first() -> None:
    records = [beat(3, 990.0, started=30.0), beat(1, 900.0), beat(2, 999.0, started=20.0)]

    live = live_consumers(records, now=1000.0, expiry=EXPIRY)

    assert [c.pid for c in live] == [2, 3]


def test_a_record_from_a_newer_bdp_with_more_fields_still_loads() -> None:
    data = {**beat(1, 5.0).to_json(), "version": "9.9"}

    assert ConsumerBeat.from_json(data) == beat(1, 5.0)
