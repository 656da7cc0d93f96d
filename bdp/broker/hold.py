"""Why the queue starts no session now: a usage-limit pause, or a spent queue budget.

Workers check before claiming an issue; a held task goes back to Huey's schedule, unchanged
(same id, so its enqueue marker stays valid), to be tried again when the hold may be over.
Nothing is dropped and work resumes by itself. The pause lives in the broker, so one
worker hitting a usage limit pauses every consumer sharing the queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bdp.broker.keys import BUDGET_HOLD_KEY
from bdp.config import Settings

if TYPE_CHECKING:  # status reads holds without importing Huey
    from bdp.broker.state import State

HoldKind = Literal["paused", "budget"]
#: Longest pause without a reset time from the API (the backoff doubles up to it).
MAX_PAUSE = 3600.0


@dataclass(frozen=True)
class Hold:
    """The queue is held: no new session starts until ``until`` (None: until raised)."""

    kind: HoldKind
    reason: str
    until: float | None = None

    def retry_in(self, recheck: float, now: float | None = None) -> float:
        """Seconds until a held task should look again (``recheck`` without an end time)."""
        if self.until is None:
            return recheck
        return max(1.0, self.until - (time.time() if now is None else now))

    def describe(self) -> str:
        if self.kind == "paused" and self.until is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.until))
            return f"paused until {stamp}: {self.reason}"
        return self.reason


def current_hold(state: State, settings: Settings, now: float | None = None) -> Hold | None:
    """The hold in force, if any: a pause first (it ends by itself), then the budget."""
    now = time.time() if now is None else now
    pause = state.pause()
    if pause and float(pause["until"]) > now:
        return Hold("paused", str(pause["reason"]), float(pause["until"]))
    if settings.budget_usd is None:
        return None
    return budget_hold(settings.budget_usd, state.spent_usd())


def budget_hold(budget: float | None, spent: float) -> Hold | None:
    """A hold when the queue budget is spent."""
    if budget is None or spent < budget:
        return None
    reason = f"queue budget spent: ${spent:.2f} of ${budget:.2f} (raise BDP_BUDGET_USD to go on)"
    return Hold("budget", reason)


def pause_queue(state: State, settings: Settings, reason: str, until: float | None) -> Hold:
    """Pause every worker of the queue until ``until``, or for a doubling backoff without one."""
    now = time.time()
    previous = state.pause() or {}
    backoff = settings.pause_backoff
    if until is None:
        last = float(previous.get("backoff", 0.0))
        recent = now - float(previous.get("until", 0.0)) < 2 * last
        backoff = min(MAX_PAUSE, last * 2) if last and recent else settings.pause_backoff
        until = now + backoff
    until = max(until, float(previous.get("until", 0.0)))  # never shorten a pause in force
    state.set_pause({"until": until, "reason": reason, "since": now, "backoff": backoff})
    return Hold("paused", reason, until)


def note_budget_hold(state: State, settings: Settings, hold: Hold) -> None:
    """Say in the broker that workers hold tasks for the budget, so any `bdp status` sees it."""
    until = time.time() + 2 * settings.hold_recheck + 5  # stale unless workers keep saying so
    state.put_meta(BUDGET_HOLD_KEY, {"reason": hold.reason, "until": until})


def hold_from_json(
    data: dict[str, Any] | None, now: float | None = None, kind: HoldKind = "paused"
) -> Hold | None:
    """A pause (or budget hold) record as a Hold while it is in force (for status)."""
    now = time.time() if now is None else now
    if not data or float(data.get("until", 0.0)) <= now:
        return None
    until = float(data["until"]) if kind == "paused" else None
    return Hold(kind, str(data.get("reason", "")), until)
