"""The hold check of one worker process: is the queue held, looked up at most once a second.

Held tasks come back every few seconds; with thousands of them queued, looking the hold up
for each would cost more than the work it guards. A lifted hold is seen within ``ttl``; a
new one at once (a task about to start a session always looks). The hold itself (a pause,
a spent budget) is `bdp.broker.hold`.
"""

from __future__ import annotations

import threading
import time

from bdp.broker.hold import Hold, current_hold, note_budget_hold
from bdp.broker.state import State
from bdp.config import Settings
from bdp.ops.notify import Event, Notifier

#: Seconds a worker process reuses its last look at the hold.
HOLD_CHECK_TTL = 1.0


class HoldCheck:
    """Answers "is the queue held?" for one worker process, from a short-lived cache."""

    def __init__(self, state: State, settings: Settings, ttl: float = HOLD_CHECK_TTL) -> None:
        self._state, self._settings, self._ttl = state, settings, ttl
        self._notifier = Notifier.from_settings(settings)
        self._guard = threading.Lock()
        self._hold: Hold | None = None
        self._expires = 0.0

    def check(self) -> tuple[Hold | None, bool]:
        """The hold in force, and whether this call looked it up (only then say so)."""
        with self._guard:
            now = time.monotonic()
            if self._hold is not None and now < self._expires:
                return self._hold, False
            self._hold = current_hold(self._state, self._settings)
            self._expires = now + self._ttl
            if self._hold is not None and self._hold.kind == "budget":
                self._announce(self._hold)
            return self._hold, True

    def _announce(self, hold: Hold) -> None:
        """Record the budget hold for `bdp status`; tell BDP_NOTIFY once per budget."""
        note_budget_hold(self._state, self._settings, hold)
        once = f"budget-spent:{self._settings.budget_usd}"
        if self._notifier is not None and self._state.claim_once(once):
            self._notifier.send(Event.attention("", "", hold.reason))
