"""Holds: the queue budget, the usage-limit pause and its backoff, reset times in API errors."""

from __future__ import annotations

import time

import pytest

from bdp.broker.hold import (
    MAX_PAUSE,
    budget_hold,
    current_hold,
    hold_from_json,
    note_budget_hold,
    pause_queue,
)
from bdp.config import Settings
from bdp.models import Outcome, RunRecord
from bdp.queue.app import App

NOW = 1_800_000_000.0


@pytest.fixture
def app(budget_app: App) -> App:
    return budget_app


def spend(app: App, usd: float, issue: str = "t-1") -> None:
    app.state.record(
        RunRecord(
            "r" + issue, issue, "/repo", "x", Outcome.DONE, "ok", finished=time.time(), cost_usd=usd
        )
    )


def test_no_hold_while_the_budget_lasts_then_a_budget_hold(app: App) -> None:
    spend(app, 0.6)
    assert current_hold(app.state, app.settings) is None

    spend(app, 0.4, "t-2")

    hold = current_hold(app.state, app.settings)
    assert hold is not None
    assert hold.kind == "budget"
    assert "$1.00 of $1.00" in hold.reason
    assert "BDP_BUDGET_USD" in hold.reason
    assert hold.until is None
    assert hold.retry_in(30.0) == 30.0


def test_without_a_budget_spending_never_holds() -> None:
    assert budget_hold(None, 10_000.0) is None
    assert budget_hold(5.0, 4.99) is None
    assert budget_hold(5.0, 5.0) is not None


def test_the_review_cost_counts_against_the_budget_and_the_issue(app: App) -> None:
    app.state.record(
        RunRecord(
            "r1", "t-1", "/repo", "x", Outcome.DONE, "ok", cost_usd=0.25, review_cost_usd=0.75
        )
    )

    assert app.state.spent_usd() == pytest.approx(1.0)
    assert app.state.issue_cost("/repo", "t-1") == pytest.approx(1.0)
    assert app.state.issue_cost("/repo", "t-2") == 0.0


def test_a_pause_with_a_reset_time_holds_every_worker_until_then(app: App) -> None:
    until = time.time() + 120

    pause_queue(app.state, app.settings, "usage limit", until)

    hold = current_hold(app.state, app.settings)
    assert hold is not None
    assert (hold.kind, hold.until) == ("paused", until)
    assert 100 < hold.retry_in(30.0) <= 120
    assert "paused until" in hold.describe()
    assert "usage limit" in hold.describe()
    assert current_hold(app.state, app.settings, now=until + 1) is None  # it ends by itself


def test_a_pause_takes_precedence_over_a_spent_budget(app: App) -> None:
    spend(app, 2.0)
    pause_queue(app.state, app.settings, "usage limit", time.time() + 60)

    hold = current_hold(app.state, app.settings)

    assert hold is not None
    assert hold.kind == "paused"


def test_without_a_reset_time_the_pause_backs_off_doubling_to_an_hour(app: App) -> None:
    lengths = []
    for _ in range(8):
        hold = pause_queue(app.state, app.settings, "429", None)
        assert hold.until is not None
        lengths.append(round(hold.until - time.time()))
        app.state.set_pause({**(app.state.pause() or {}), "until": time.time() - 1})  # it ended

    assert lengths[:4] == [60, 120, 240, 480]
    assert max(lengths) == MAX_PAUSE


def test_the_backoff_starts_over_after_a_quiet_spell(app: App) -> None:
    pause_queue(app.state, app.settings, "429", None)
    app.state.set_pause({**(app.state.pause() or {}), "until": time.time() - 3600})

    hold = pause_queue(app.state, app.settings, "429", None)

    assert hold.until is not None
    assert round(hold.until - time.time()) == 60


def test_a_later_pause_never_shortens_one_in_force(app: App) -> None:
    far = time.time() + 3000
    pause_queue(app.state, app.settings, "usage limit", far)

    hold = pause_queue(app.state, app.settings, "429 elsewhere", time.time() + 5)

    assert hold.until == far


def test_a_pause_record_is_a_hold_only_while_in_force() -> None:
    record = {"until": NOW + 10, "reason": "usage limit"}

    assert hold_from_json(record, now=NOW) is not None
    assert hold_from_json(record, now=NOW + 11) is None
    assert hold_from_json(None, now=NOW) is None


def test_workers_report_a_budget_hold_that_status_sees_without_the_budget_setting(
    app: App,
) -> None:
    from bdp.ops.status import collect_status

    held = budget_hold(1.0, 1.0)
    assert held is not None
    note_budget_hold(app.state, app.settings, held)
    unaware = Settings(home=app.settings.home, redis_url=app.settings.redis_url)

    hold = collect_status(unaware).hold

    assert hold is not None
    assert (hold.kind, hold.reason) == ("budget", held.reason)
    record = app.state.get_meta("budget_hold")
    assert record is not None
    assert hold_from_json(record, now=record["until"] + 1, kind="budget") is None  # goes stale
