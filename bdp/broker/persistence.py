"""Whether the Redis broker keeps anything on disk.

A Redis without the append-only file or snapshots loses every queued task on a restart. bdp
recovers running issues from bd and its state directory, but queued ones are gone until the
next enqueue, so workers and `bdp status` say so loudly.
"""

from __future__ import annotations

from typing import Any

#: What a broker that keeps nothing means, and what to do.
VOLATILE_WARNING = (
    "the Redis broker keeps nothing on disk (no appendonly, no save): a restart loses every "
    "queued task; run it with `appendonly yes`"
)


def redis_persistence(client: Any) -> str:
    """ "aof", "rdb", "none", or "unknown" (CONFIG is not allowed, as on some hosted Redis)."""
    from redis.exceptions import RedisError

    try:
        aof = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except RedisError:  # CONFIG renamed or refused
        return "unknown"
    if aof in ("yes", b"yes"):
        return "aof"
    return "rdb" if save not in (None, "", b"") else "none"
