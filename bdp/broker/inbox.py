"""Each running run's inbox: what people send it with `bdp say` and `bdp stop`.

An inbox is a row of numbered slots in the broker, each written once by a put-if-empty (a
sender takes the lowest free one) and never emptied while the run lives. So sending needs no
read-modify-write that two senders, or a sender and the reader, could interleave; the run's
watchdog reads one key per look (the next slot it has not seen), gets each request once and
in order, and an empty inbox costs it that single read. `State.unregister` clears the slots.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from huey import Huey
from huey.constants import EmptyData

from bdp.broker.keys import inbox_key
from bdp.broker.storage import namespace_storage

#: Most requests one run can be sent (each takes a slot; a sender tries them in turn).
INBOX_SLOTS = 100

SteerKind = Literal["say", "stop"]


@dataclass(frozen=True)
class Steer:
    """A person's request to a running run: a message for its session, or to stop."""

    kind: SteerKind
    sender: str  # who sent it: user@host
    text: str = ""  # a message (already redacted and bounded by the sender)
    requeue: bool = False  # a stop: queue the issue again instead of leaving it for a human
    sent: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Steer:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


class Inbox:
    """The inbox slots of every run of one queue."""

    def __init__(self, huey: Huey) -> None:
        self._slots = namespace_storage(huey, "inbox")

    def post(self, run_id: str, steer: Steer) -> int | None:
        """Put ``steer`` in the run's lowest free slot; its number, or None when all are full."""
        data = json.dumps(steer.to_json(), sort_keys=True).encode()
        for slot in range(1, INBOX_SLOTS + 1):
            if self._slots.put_if_empty(inbox_key(run_id, slot), data):
                return slot
        return None

    def read(self, run_id: str, slot: int) -> Steer | None:
        """What slot ``slot`` of the run's inbox holds, or None while it is free."""
        raw = self._slots.peek_data(inbox_key(run_id, slot))
        return None if raw is EmptyData else Steer.from_json(json.loads(raw))

    def withdraw(self, run_id: str, slot: int) -> None:
        """Take back one request (its run ended before the sender finished posting)."""
        self._slots.delete_data(inbox_key(run_id, slot))

    def clear(self, run_id: str) -> None:
        """Drop a finished run's requests: its slots are filled from 1 up, without gaps."""
        for slot in range(1, INBOX_SLOTS + 1):
            if self._slots.pop_data(inbox_key(run_id, slot)) is EmptyData:
                return
