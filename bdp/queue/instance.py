"""The Huey instance for the configured broker, and the names bdp's tasks carry on it.

Redis when ``BDP_REDIS_URL`` is set (what several terminals or machines share), otherwise
Huey's SQLite storage in the state directory. Every key bdp touches is derived from the
queue name (`bdp.broker.keys`), so two bdp installations can share one Redis.
"""

from __future__ import annotations

import logging
from typing import Any

from huey import Huey
from huey.api import TaskWrapper
from huey.storage import RedisStorage, SqliteStorage

from bdp.broker.messages import BadMessage, SignedJson, task_key
from bdp.broker.queue_file import QUEUE_FILE
from bdp.config import Settings

log = logging.getLogger(__name__)

#: The module part of every bdp task's name on the queue (``bdp.tasks.run_issue``): fixed, so
#: tasks already queued keep their name when the code that runs them moves.
TASK_NAMESPACE = "bdp.tasks"


class _StableTaskNames(TaskWrapper):  # type: ignore[misc]
    """Names task classes ``bdp.tasks.<name>`` wherever their function is defined."""

    def create_task(
        self, func: Any, context: bool = False, name: Any = None, **options: Any
    ) -> Any:
        task_class = super().create_task(func, context, name, **options)
        task_class.__module__ = TASK_NAMESPACE
        return task_class


class BdpHuey(Huey):  # type: ignore[misc]
    """bdp's Huey: knows its Settings, so the consumers it creates are `BdpConsumer`s."""

    def __init__(self, settings: Settings, storage: type[Any], **storage_options: Any) -> None:
        self.settings = settings
        # Task results are not stored: bdp keeps its own outcome records.
        super().__init__(
            settings.queue,
            results=False,
            storage_class=storage,
            serializer=SignedJson(lambda: task_key(settings)),
            **storage_options,
        )

    def dequeue(self) -> Any:
        """The next task, or None; a message bdp did not sign is dropped unread."""
        data = self.storage.dequeue()
        return None if data is None else self._task_or_none(data)

    def _deserialize_all(self, messages: Any) -> list[Any]:
        tasks = (self._task_or_none(message) for message in messages)
        return [task for task in tasks if task is not None]

    def _task_or_none(self, data: bytes) -> Any:
        try:
            return self.deserialize_task(data)
        except BadMessage as error:
            log.error("bdp: dropped a message on the queue (%d bytes): %s", len(data), error)
            return None

    def get_task_wrapper_class(self) -> type[TaskWrapper]:
        return _StableTaskNames

    def create_consumer(self, **options: Any) -> Any:
        from bdp.queue.consumer import BdpConsumer

        return BdpConsumer(self, self.settings, **options)


def build_huey(settings: Settings) -> BdpHuey:
    """A Huey for the configured broker: Redis with a URL, else SQLite in the state dir."""
    if settings.redis_url:
        return BdpHuey(settings, RedisStorage, url=settings.redis_url)
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return BdpHuey(settings, SqliteStorage, filename=str(settings.home / QUEUE_FILE))
