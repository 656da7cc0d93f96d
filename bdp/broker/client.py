"""The Redis client a short-lived command reads the broker with.

redis-py names itself to the server on connect (``CLIENT SETINFO`` with its version), and
reading its own version imports ``importlib.metadata``: ~30 ms and a round trip that a
command printing one screen of status never needs. Such a client is made without driver
info; Huey's long-lived workers keep their own, named, clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis


def reading_client(url: str) -> redis.Redis:
    """A client for ``url`` that does not name itself to the server on connect."""
    import redis

    if redis.VERSION >= (8,):  # lib_name/lib_version are deprecated there, driver_info is new
        return redis.Redis.from_url(url, driver_info=None)
    return redis.Redis.from_url(url, lib_name=None, lib_version=None)
