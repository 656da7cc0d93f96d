"""`bdp worker`: Huey's consumer, run in this process the way ``huey_consumer`` runs it.

The same consumer as ``huey_consumer bdp.consumer.huey`` (a `BdpConsumer` on the configured
broker, Huey's log format), with bdp's defaults and one start line of bdp's instead of Huey's
five (which list tasks and scheduler granularity, but not the host or the broker).
"""

from __future__ import annotations

import logging

from huey.consumer_options import ConsumerConfig

from bdp.queue.app import App

#: How Huey's consumer begins the start-up lines it logs (`BdpConsumer.start_line` says it all).
_HUEY_START_LINES = (
    "Huey consumer started with",
    "Scheduler runs every",
    "Periodic tasks are",
    "The following commands are available",
)


class _HueyStartLines(logging.Filter):
    """Drops Huey's start-up lines; everything else it logs stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_HUEY_START_LINES)


def serve(app: App, workers: int, kind: str) -> None:
    """Run a consumer of ``workers`` of ``kind`` until it is stopped (Ctrl-C, SIGTERM)."""
    config = ConsumerConfig(workers=workers, worker_type=kind)
    config.validate()
    config.setup_logger(logging.getLogger("huey"))
    logging.getLogger("huey.consumer").addFilter(_HueyStartLines())
    app.huey.serializer.check_key()  # a missing or weak BDP_SECRET stops the start, not a task
    app.tasks  # noqa: B018  registered before the first dequeue
    app.huey.create_consumer(**config.values).run()
