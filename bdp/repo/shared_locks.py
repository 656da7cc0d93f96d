"""File locks shared by every machine on one Redis: the same records, waits and deadlock
detection as the directory table, kept where all of them see it.

Directories on one machine cannot stop an agent on another from editing the same file, so
when the queue is on Redis each repo's locks are one hash (repo-relative path -> owner record)
named by the repo's queue name, not by a clone's path. Each step is one Lua script, so taking
several paths is all or nothing however many machines try at once.

A record also names its run's lease on the issue (`bdp.broker.claims`) and the value it had.
A lock whose lease lapsed (its run stopped renewing it: the machine died or was cut off) no
longer stands: the next acquire takes it over in the same script, and the janitor of any
machine frees it. So a lock lives exactly as long as its run's lease.

The scripts read each record's lease key, which they are not given as a key: fine on one Redis
server, not on a Redis Cluster (bdp does not support one).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bdp.errors import LockError, is_broker_error
from bdp.repo.lock_records import Holder, Lock, holder_record, parse_lock
from bdp.repo.lock_table import Locks, LockScan, LockWaits, Wait

#: How long a note of a released path is kept (a run compares against its own start).
RELEASED_KEPT = 86400.0

#: Lua, shared by the scripts: whether a record still stands (its lease is unchanged).
_STANDING = """
local function standing(record)
  if record.lease == nil or record.lease == '' then return true end
  return redis.call('GET', record.lease) == record.fence
end
local function drop(path)
  redis.call('HDEL', KEYS[1], path)
  redis.call('ZADD', KEYS[2], ARGV[2], path)
end
"""
#: Take every path or none. KEYS: locks, released, repos. ARGV: run id, now, record, repo,
#: paths... Returns nil when all are the run's now, else {path, the record in the way}.
_TAKE = (
    _STANDING
    + """
local fresh = {}
for i = 5, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  local record = held and cjson.decode(held)
  if not record then
    fresh[#fresh + 1] = ARGV[i]
  elseif record.run_id ~= ARGV[1] then
    if standing(record) then return {ARGV[i], held} end
    fresh[#fresh + 1] = ARGV[i]
  end
end
for _, path in ipairs(fresh) do redis.call('HSET', KEYS[1], path, ARGV[3]) end
redis.call('SADD', KEYS[3], ARGV[4])
return false
"""
)
#: Give back the run's locks among the paths (all of them when none are named).
#: KEYS: locks, released. ARGV: run id, now, forget before, paths... Returns the paths.
_RELEASE = (
    _STANDING
    + """
local released, all = {}, {}
if #ARGV < 4 then
  all = redis.call('HGETALL', KEYS[1])
else
  for i = 4, #ARGV do
    all[#all + 1] = ARGV[i]
    all[#all + 1] = redis.call('HGET', KEYS[1], ARGV[i])
  end
end
for i = 1, #all, 2 do
  if all[i + 1] and cjson.decode(all[i + 1]).run_id == ARGV[1] then
    drop(all[i])
    released[#released + 1] = all[i]
  end
end
if #released > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3]) end
return released
"""
)
#: Free every lock whose lease lapsed. KEYS: locks, released. ARGV: -, now. Returns the paths.
_SWEEP = (
    _STANDING
    + """
local freed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if not standing(cjson.decode(all[i + 1])) then
    drop(all[i])
    freed[#freed + 1] = all[i]
  end
end
return freed
"""
)
#: Free one lock whoever holds it. KEYS: locks, released. ARGV: path, now.
_FORCE = (
    _STANDING
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then drop(ARGV[1]) end
return 1
"""
)


class SharedLockTable(Locks):
    """The locks of one repo (by its queue name) in the queue's Redis."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        repo: str,
        tree: Path | None = None,
        lease: tuple[str, str] = ("", ""),
    ) -> None:
        """The table of ``repo``, whose paths are resolved in ``tree`` (a run's tree).

        ``lease`` is the key and value of the run's lease on its issue: a lock it takes
        stands while that key holds that value. A table with no tree (the janitor's, status's)
        only reads and frees.
        """
        self.repo = Path(os.path.realpath(tree)) if tree else Path("/")
        self.name = repo
        self.waited = LockWaits()
        self._client, self._repo = client, repo
        self._keys = [f"{prefix}.locks:{repo}", f"{prefix}.lock-released:{repo}"]
        self._waits_key = f"{prefix}.lock-waits:{repo}"
        self._repos_key = f"{prefix}.lock-repos"
        self._lease = {"lease": lease[0], "fence": lease[1]}
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)
        self._sweep = client.register_script(_SWEEP)
        self._force = client.register_script(_FORCE)

    @classmethod
    def all_in(cls, client: Any, prefix: str) -> list[SharedLockTable]:
        """The tables of every repo that ever took a lock in this queue's Redis."""
        names = sorted(_text(name) for name in client.smembers(f"{prefix}.lock-repos"))
        return [cls(client, prefix, name) for name in names]

    # -- taking and giving back -----------------------------------------------------
    def _take_all(self, paths: list[str], holder: Holder) -> Lock | None:
        record = json.dumps({**holder_record(holder), **self._lease})
        args = [holder.run_id, time.time(), record, self._repo, *paths]
        found = self._call(self._take, [*self._keys, self._repos_key], args)
        if not found:
            return None
        path = _text(found[0])
        return parse_lock(found[1], path) or Lock(path, holder, time.time())

    def release(self, paths: Iterable[str], run_id: str) -> list[str]:
        wanted = sorted({self.normalise(p) for p in paths})
        return self._give_back(run_id, wanted) if wanted else []

    def release_all(self, run_id: str) -> list[str]:
        return self._give_back(run_id, [])

    def _give_back(self, run_id: str, paths: list[str]) -> list[str]:
        now = time.time()
        released = self._call(self._release, self._keys, [run_id, now, now - RELEASED_KEPT, *paths])
        return sorted(_text(path) for path in released)

    def released_since(self, since: float) -> set[str]:
        found = self._call(self._client.zrangebyscore, self._keys[1], since, "+inf")
        return {_text(path) for path in found}

    def force_release(self, path: str) -> None:
        self._call(self._force, self._keys, [path, time.time()])

    def free_orphans(self, scan: LockScan, older_than: float) -> list[str]:
        """Free the locks whose run's lease lapsed (any machine's janitor may)."""
        freed = self._call(self._sweep, self._keys, ["", time.time()])
        return sorted(f"{_text(path)} (lease lapsed)" for path in freed)

    # -- looking -------------------------------------------------------------------------
    def holder_of(self, path: str) -> Lock | None:
        raw = self._call(self._client.hget, self._keys[0], path)
        return None if raw is None else parse_lock(raw, path)

    def locks(self) -> list[Lock]:
        return self.scan().locks

    def scan(self) -> LockScan:
        raw = self._call(self._client.hgetall, self._keys[0])
        return LockScan(records_to_locks(raw), [])

    # -- waiting -------------------------------------------------------------------------
    def waits(self) -> dict[str, Wait]:
        waits = {}
        for run_id, raw in self._call(self._client.hgetall, self._waits_key).items():
            try:
                waits[_text(run_id)] = Wait.from_json(json.loads(raw))
            except (ValueError, KeyError, TypeError):
                continue  # not a wait bdp wrote: no edge
        return waits

    def _note_wait(self, wait: Wait) -> None:
        self._call(
            self._client.hset, self._waits_key, wait.waiter.run_id, json.dumps(wait.to_json())
        )

    def _stop_waiting(self, run_id: str) -> None:
        self._call(self._client.hdel, self._waits_key, run_id)

    @staticmethod
    def _call(step: Any, *args: Any) -> Any:
        """One Redis step; LockError (which the agent reads) when Redis cannot be reached."""
        try:
            return step(*args)
        except Exception as error:
            if not is_broker_error(error):
                raise
            raise LockError(
                f"the lock table in Redis cannot be reached ({type(error).__name__})",
                "try again in a moment, or end with BLOCKED if it stays away",
            ) from error


def records_to_locks(raw: dict[Any, Any]) -> list[Lock]:
    """The locks of one table's hash, by path (a record that does not parse is left out)."""
    locks = [parse_lock(record, _text(path)) for path, record in raw.items()]
    return sorted((lock for lock in locks if lock is not None), key=lambda lock: lock.path)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
