"""Unit tests for bdp/broker/inbox.py: each run's inbox, on each kind of storage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.broker.inbox import INBOX_SLOTS, Inbox, Steer
from bdp.broker.state import State
from bdp.models import Run
from tests.broker.test_state import HueyFactory, _huey_factory


@pytest.fixture(params=["memory", "sqlite", "fakeredis"])
def make_huey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HueyFactory]:
    factory, cleanup = _huey_factory(request.param, tmp_path)
    yield factory
    cleanup()


@pytest.fixture
def inbox(make_huey: HueyFactory) -> Inbox:
    return Inbox(make_huey())


def say(text: str) -> Steer:
    return Steer("say", "ann@box", text)


def a_run(run_id: str = "r1") -> Run:
    now = time.time()
    return Run(run_id, "t-1", "/repo", "x", "h", 1, "w", 1, now, now + 60, now)


def test_requests_take_slots_from_one_up_and_read_back_as_sent(inbox: Inbox) -> None:
    first, stop = say("use the helper"), Steer("stop", "bob@box", requeue=True)

    assert (inbox.post("r1", first), inbox.post("r1", stop)) == (1, 2)

    assert (inbox.read("r1", 1), inbox.read("r1", 2), inbox.read("r1", 3)) == (first, stop, None)
    assert inbox.read("r2", 1) is None  # another run's inbox is its own


def test_senders_posting_at_once_each_get_a_slot_of_their_own(make_huey: HueyFactory) -> None:
    # Given eight senders, each with its own connection to one broker
    boxes = [Inbox(make_huey()) for _ in range(8)]
    slots: list[int | None] = []

    # When they all post to one run at the same time
    threads = [
        threading.Thread(target=lambda b=box, n=n: slots.append(b.post("r1", say(f"m{n}"))))
        for n, box in enumerate(boxes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then no message overwrote another
    assert sorted(s for s in slots if s is not None) == list(range(1, 9))
    texts = {steer.text for slot in range(1, 9) if (steer := boxes[0].read("r1", slot))}
    assert texts == {f"m{n}" for n in range(8)}


def test_a_full_inbox_takes_no_more(inbox: Inbox) -> None:
    for _ in range(INBOX_SLOTS):
        assert inbox.post("r1", say("again")) is not None

    assert inbox.post("r1", say("one too many")) is None


def test_unregistering_a_run_clears_its_inbox_and_no_other(make_huey: HueyFactory) -> None:
    state = State(make_huey())
    state.register(a_run("r1"))
    for _ in range(3):
        state.inbox.post("r1", say("hi"))
    state.inbox.post("r2", say("for r2"))

    state.unregister("r1")

    assert state.inbox.read("r1", 1) is None
    assert state.inbox.post("r1", say("late")) == 1  # nothing left in slots 1..3
    other = state.inbox.read("r2", 1)
    assert other is not None
    assert other.text == "for r2"


def test_a_withdrawn_request_is_gone(inbox: Inbox) -> None:
    slot = inbox.post("r1", say("too late"))
    assert slot is not None

    inbox.withdraw("r1", slot)

    assert inbox.read("r1", slot) is None


def test_a_request_from_a_newer_bdp_with_more_fields_still_reads() -> None:
    data = {**say("hi").to_json(), "priority": "high"}

    assert Steer.from_json(data).text == "hi"
