"""The consumers serving the queue, as each says of itself every few seconds.

Huey keeps no list of its consumers, so a queue nobody serves looks the same as one whose
workers are all busy. Each consumer keeps one record here (host, pid, workers, kind, when it
started, its last beat), refreshed while it lives. One that stops beating (SIGKILL, a machine
gone) counts as gone once its beat is older than the expiry, and the next consumer to beat
drops it; a consumer that stops cleanly removes its own.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `bdp status` reads the records without Huey (most of its start-up)
    from huey import Huey


def consumer_key(host: str, pid: int) -> str:
    """The key of one consumer's record: ``host:pid``."""
    return f"{host}:{pid}"


@dataclass(frozen=True)
class ConsumerBeat:
    """One consumer as it last said of itself."""

    host: str
    pid: int
    workers: int
    kind: str  # Huey's worker type: thread or process
    started: float
    beat: float  # Unix time of its last beat

    @property
    def key(self) -> str:
        return consumer_key(self.host, self.pid)

    def fresh(self, now: float | None = None) -> ConsumerBeat:
        """The same consumer beating at ``now``."""
        return replace(self, beat=time.time() if now is None else now)

    def is_live(self, now: float, expiry: float) -> bool:
        return now - self.beat < expiry

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsumerBeat:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def live_consumers(records: list[ConsumerBeat], now: float, expiry: float) -> list[ConsumerBeat]:
    """The consumers still beating, oldest first (status lists them so)."""
    live = [record for record in records if record.is_live(now, expiry)]
    return sorted(live, key=lambda record: (record.started, record.key))


class Consumers:
    """The consumer records of one queue; each write is one atomic storage call."""

    def __init__(self, huey: Huey) -> None:
        from bdp.broker.storage import namespace_storage

        self._records = namespace_storage(huey, "consumers")

    def beat(self, record: ConsumerBeat) -> None:
        self._records.put_data(record.key, json.dumps(record.to_json()).encode())

    def remove(self, key: str) -> None:
        self._records.delete_data(key)

    def all(self) -> list[ConsumerBeat]:
        items = self._records.result_items().values()
        return [ConsumerBeat.from_json(json.loads(raw)) for raw in items]

    def prune(self, now: float, expiry: float) -> list[str]:
        """Drop the records of consumers that stopped beating; their keys."""
        gone = [record.key for record in self.all() if not record.is_live(now, expiry)]
        for key in gone:
            self.remove(key)
        return gone
