"""A consumer's own heartbeat: its record in the broker, kept fresh by a thread of its own.

A thread in the consumer's main process, not the scheduler's loop: with process workers the
scheduler is a forked child whose pid is not the consumer's, and a beat must stop exactly
when the consumer does. The broker being away costs a beat, never the consumer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from huey import Huey

from bdp.broker.consumers import ConsumerBeat, Consumers
from bdp.errors import is_broker_error
from bdp.host import host_name

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats every ``interval`` seconds until stopped; drops records older than ``expiry``."""

    def __init__(self, huey: Huey, record: ConsumerBeat, interval: float, expiry: float) -> None:
        self.consumers = Consumers(huey)
        self.record = record
        self.interval = interval
        self.expiry = expiry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def here(cls, huey: Huey, workers: int, kind: str, interval: float, expiry: float) -> Heartbeat:
        """The heartbeat of this process, a consumer of ``workers`` of ``kind``."""
        now = time.time()
        record = ConsumerBeat(host_name(), os.getpid(), workers, kind, now, now)
        return cls(huey, record, interval, expiry)

    def start(self) -> None:
        """Beat now (status sees the consumer at once), then on a daemon thread."""
        self._beat()
        self._thread = threading.Thread(target=self._run, name="bdp-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the record: the consumer is gone, not just quiet."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        self._guarded("remove its record", lambda: self.consumers.remove(self.record.key))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        now = time.time()
        self._guarded("beat", lambda: self.consumers.beat(self.record.fresh(now)))
        self._guarded("drop gone consumers", lambda: self.consumers.prune(now, self.expiry))

    def _guarded(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as error:  # only the broker's errors are expected; others re-raise
            if not is_broker_error(error):
                raise
            log.debug("bdp: consumer heartbeat could not %s: %s", what, error)
