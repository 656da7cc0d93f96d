"""The Huey instance and the key-value namespaces bdp keeps beside it.

Redis when ``BDP_REDIS_URL`` is set (what several terminals or machines share), otherwise
Huey's SQLite storage in the state directory. Every Redis key bdp touches is derived here
from the queue name, so two bdp installations can share one Redis with different names.
"""

from __future__ import annotations

from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import RedisStorage, SqliteStorage

from bdp.broker.keys import namespace_name
from bdp.config import Settings


class _BdpHueyMixin:
    """Consumers of bdp's Huey are `BdpConsumer`s, whatever starts them."""

    bdp_periodic_seconds = 60.0

    def create_consumer(self, **options: Any) -> Any:
        from bdp.queue.consumer import BdpConsumer

        return BdpConsumer(self, **options)


class BdpRedisHuey(_BdpHueyMixin, RedisHuey):  # type: ignore[misc]
    pass


class BdpSqliteHuey(_BdpHueyMixin, SqliteHuey):  # type: ignore[misc]
    pass


def build_huey(settings: Settings) -> Huey:
    """A Huey for the configured broker; task results are not stored (bdp keeps its own)."""
    huey: Huey
    if settings.redis_url:
        huey = BdpRedisHuey(settings.queue, url=settings.redis_url, results=False)
    else:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        filename = str(settings.home / "queue.db")
        huey = BdpSqliteHuey(settings.queue, filename=filename, results=False)
    huey.bdp_periodic_seconds = settings.janitor_interval
    huey.bdp_settings = settings  # its consumers hold work while the queue is held
    return huey


def namespace_storage(huey: Huey, namespace: str) -> Any:
    """A storage object of the same kind as the queue's, with its own key space.

    Cached on the Huey instance: in-memory storages are only shared if they are the same object.
    """
    cache: dict[str, Any] = huey.__dict__.setdefault("_bdp_namespaces", {})
    if namespace not in cache:
        cache[namespace] = _new_storage(huey, namespace_name(huey.name, namespace))
    return cache[namespace]


def _new_storage(huey: Huey, name: str) -> Any:
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return RedisStorage(name, connection_pool=storage.pool)
    if isinstance(storage, SqliteStorage):
        return SqliteStorage(name, filename=storage.filename)
    return type(storage)(name)
