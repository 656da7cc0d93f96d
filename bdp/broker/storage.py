"""Key-value namespaces beside Huey's queue, in the same storage (a Redis hash, SQLite rows).

bdp's state lives in the broker so that every consumer and machine sharing the queue sees
it; a namespace is a second Huey storage object of the queue's own kind, named from the
queue name (`bdp.broker.keys`).
"""

from __future__ import annotations

import weakref
from typing import Any

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from bdp.broker.keys import namespace_name

#: Namespaces already opened, per Huey instance: in-memory storages (tests) are shared only
#: when they are the same object, and Redis ones reuse the queue's connection pool.
_OPENED: weakref.WeakKeyDictionary[Huey, dict[str, Any]] = weakref.WeakKeyDictionary()


def namespace_storage(huey: Huey, namespace: str) -> Any:
    """The storage of one of bdp's namespaces of ``huey``'s queue."""
    opened = _OPENED.setdefault(huey, {})
    if namespace not in opened:
        opened[namespace] = _new_storage(huey, namespace_name(huey.name, namespace))
    return opened[namespace]


def _new_storage(huey: Huey, name: str) -> Any:
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return RedisStorage(name, connection_pool=storage.pool)
    if isinstance(storage, SqliteStorage):
        return SqliteStorage(name, filename=storage.filename)
    return type(storage)(name)
