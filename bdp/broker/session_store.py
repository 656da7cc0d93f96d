"""Session transcripts mirrored to the queue's Redis, so a continuation resumes anywhere.

The Claude CLI keeps a session's transcript on the disk of the machine it ran on; a
continuation that another machine takes could not resume it. The SDK mirrors each
transcript to a store while the session runs (`ClaudeAgentOptions.session_store`) and, on a
resume, writes it back out for the CLI from there. This is that store, in Redis.

Sessions are kept by their id alone: the SDK's key also names a project (from the session's
working directory), which differs between machines and between a run's worktrees, while a
session id is a UUID no other session has. Entries are redacted before they are stored, and
kept `KEPT` seconds after the session last wrote (a continuation comes within hours).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from bdp.broker.keys import redis_bdp_prefix

#: Seconds a session's transcript is kept after its last entry.
KEPT = 3 * 86400

#: Lua: append the entries not seen before (by uuid; one without is always new).
#: KEYS: entries, seen uuids. ARGV: ttl s, then uuid and entry pairs.
_APPEND = """
for i = 2, #ARGV, 2 do
  if ARGV[i] == '' or redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""


class RedisSessionStore:
    """The SDK's `SessionStore` (append and load) over a synchronous Redis client."""

    def __init__(self, client: Any, prefix: str, redact: Callable[[Any], Any]) -> None:
        """``redact`` takes an entry (a JSON-safe tree) and returns it without secrets."""
        self._client, self._prefix, self._redact = client, prefix, redact
        self._append = client.register_script(_APPEND)

    def _keys(self, key: dict[str, Any]) -> list[str]:
        name = f"{self._prefix}.session:{key['session_id']}"
        if key.get("subpath"):
            name += f"/{key['subpath']}"
        return [name, f"{name}.seen"]

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        """Mirror a batch (the SDK retries a failed one); an entry seen before is skipped."""
        args: list[Any] = [KEPT]
        for entry in entries:
            uuid = entry.get("uuid")
            args += [uuid if isinstance(uuid, str) else "", json.dumps(self._redact(entry))]
        await asyncio.to_thread(self._append, self._keys(key), args)

    async def load(self, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The session's entries in the order written, or None when none are stored."""
        raw = await asyncio.to_thread(self._client.lrange, self._keys(key)[0], 0, -1)
        return [json.loads(item) for item in raw] or None

    def has(self, session_id: str) -> bool:
        """True when the session's transcript is stored (a continuation can resume it)."""
        return bool(self._client.exists(self._keys({"session_id": session_id})[0]))


def session_store_for(
    storage: Any, queue: str, redact: Callable[[Any], Any]
) -> RedisSessionStore | None:
    """A Redis session store when the queue is on Redis (``storage`` has a client), else
    None: on SQLite the queue has one machine, and the CLI's own copy on disk does."""
    client = getattr(storage, "conn", None)
    if client is None or not hasattr(client, "register_script"):
        return None
    return RedisSessionStore(client, redis_bdp_prefix(queue), redact)
