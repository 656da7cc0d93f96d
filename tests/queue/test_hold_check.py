"""The per-process hold check: one look at the broker per ttl, a new hold seen at once."""

from __future__ import annotations

import time

import pytest

from bdp.broker.hold import pause_queue
from bdp.queue.app import App
from bdp.queue.hold_check import HoldCheck


@pytest.fixture
def app(budget_app: App) -> App:
    return budget_app


def test_a_hold_check_looks_at_the_broker_at_most_once_per_ttl(app: App) -> None:
    hold = HoldCheck(app.state, app.settings, ttl=0.2)
    pause_queue(app.state, app.settings, "usage limit", time.time() + 60)

    first, looked = hold.check()
    app.state.set_pause({"until": 0.0, "reason": "lifted"})  # the pause is lifted meanwhile
    cached, looked_again = hold.check()
    time.sleep(0.25)
    later, looked_later = hold.check()

    assert first is not None
    assert looked
    assert (cached, looked_again) == (first, False)  # no broker read for this task
    assert (later, looked_later) == (None, True)  # seen once the ttl is over


def test_a_hold_check_sees_a_new_hold_at_once(app: App) -> None:
    hold = HoldCheck(app.state, app.settings, ttl=60)
    assert hold.check() == (None, True)

    pause_queue(app.state, app.settings, "usage limit", time.time() + 60)

    held, looked = hold.check()
    assert held is not None
    assert looked
