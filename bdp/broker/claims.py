"""Who works an issue when several machines share one Redis: a lease with a fencing token.

bd's claim is a compare-and-set only within one bd database, and machines with databases of
their own could each win it. So, before its bd claim, a run takes the issue's lease in Redis:
one key per (repo, issue) holding the owner and a fencing token (a number no lease of the
queue had before), with a time to live the run's heartbeat renews. A second machine cannot
start the issue while the lease lives; the run's finishing steps present the token first
(`Claims.holds`), so a stalled run whose lease lapsed and was taken cannot land or reset.

When an issue lands, its tombstone (commit, host, time) stops every machine from queueing or
starting it again, even one whose bd has not synced the close yet.

With SQLite, the queue has one machine and bd's claim decides alone: `LocalClaims` grants
every lease and keeps tombstones nowhere.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from bdp.broker.keys import redis_bdp_prefix

#: Lua: take the lease if the issue has not landed and nobody holds it, with a new token.
#: KEYS: lease, token counter, tombstone. ARGV: owner, ttl ms. Returns {token, ''}, or
#: {0, the holder's value}, or {-1, the tombstone}.
_TAKE = """
local tomb = redis.call('GET', KEYS[3])
if tomb then return {-1, tomb} end
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return {token, ''}
"""
#: Lua: take a lease nobody holds, with a new token. KEYS: lease, token counter. ARGV: owner,
#: ttl ms. Returns the token, or 0 while another holds it.
_TAKE_FREE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""
#: Lua: renew the lease while it is ours; take it back if it lapsed and nobody took it (no
#: newer token exists then). KEYS: lease. ARGV: value, ttl ms. 1: ours, 0: another's.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
#: Lua: delete the lease if it is ours. KEYS: lease. ARGV: value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """A run's hold on one issue: its owner and the fencing token it presents."""

    repo: str
    issue_id: str  # or, for a lander's turn, the branch it lands on
    owner: str
    token: int
    kind: str = "lease"  # "lease": an issue's; "land": the turn to land on a branch

    @property
    def value(self) -> str:
        return f"{self.owner}|{self.token}"


@dataclass(frozen=True)
class Refused:
    """Why a lease was not granted: the issue landed already, or another run holds it."""

    reason: str
    landed: bool = False  # a tombstone: nothing is left to do


@dataclass(frozen=True)
class Tombstone:
    """An issue that landed: which commit, from which host, when."""

    commit: str
    host: str
    at: float


class Claims(Protocol):
    """Leases and tombstones, as the queue's broker keeps them."""

    def take(self, repo: str, issue_id: str, owner: str) -> Lease | Refused: ...
    def renew(self, lease: Lease) -> bool: ...
    def holds(self, lease: Lease) -> bool: ...
    def release(self, lease: Lease) -> None: ...
    def bury(self, lease: Lease, commit: str, host: str) -> None: ...
    def landed(self, repo: str, issue_ids: list[str]) -> dict[str, Tombstone]: ...


class LocalClaims:
    """One machine's queue (SQLite): every lease granted, bd's claim decides."""

    def take(self, repo: str, issue_id: str, owner: str) -> Lease | Refused:
        return Lease(repo, issue_id, owner, 0)

    def renew(self, lease: Lease) -> bool:
        return True

    def holds(self, lease: Lease) -> bool:
        return True

    def release(self, lease: Lease) -> None:
        return None

    def bury(self, lease: Lease, commit: str, host: str) -> None:
        return None

    def landed(self, repo: str, issue_ids: list[str]) -> dict[str, Tombstone]:
        return {}


class RedisClaims:
    """Leases and tombstones in the queue's Redis, each step one atomic script or command."""

    def __init__(self, client: Any, queue: str, ttl: float) -> None:
        self.client = client
        self.prefix = redis_bdp_prefix(queue)
        self.ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self._take = client.register_script(_TAKE)
        self._take_free = client.register_script(_TAKE_FREE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _key(self, kind: str, repo: str, issue_id: str) -> str:
        return f"{self.prefix}.{kind}:{repo}:{issue_id}"

    def lease_key(self, lease: Lease) -> str:
        """The key holding ``lease`` while it lives (what a shared lock is backed by)."""
        return self._key(lease.kind, lease.repo, lease.issue_id)

    def take_turn(self, repo: str, branch: str, owner: str) -> Lease | None:
        """The turn to land on ``branch`` of ``repo`` (one lander at a time across machines),
        or None while another lander has it."""
        keys = [self._key("land", repo, branch), f"{self.prefix}.lease-token"]
        token = int(self._take_free(keys=keys, args=[owner, self._ttl_ms]))
        return Lease(repo, branch, owner, token, kind="land") if token else None

    def take(self, repo: str, issue_id: str, owner: str) -> Lease | Refused:
        """The lease, or why not: one round trip that also reads the tombstone."""
        keys = [
            self._key("lease", repo, issue_id),
            f"{self.prefix}.lease-token",
            self._key("tomb", repo, issue_id),
        ]
        token, found = self._take(keys=keys, args=[owner, self._ttl_ms])
        text = found.decode() if isinstance(found, bytes) else str(found)
        if int(token) < 0:
            tomb = _tombstone(text)
            return Refused(f"landed already as {tomb.commit[:12]} on {tomb.host}", landed=True)
        if not token:
            return Refused(f"another run holds its lease ({text.rpartition('|')[0]})")
        return Lease(repo, issue_id, owner, int(token))

    def renew(self, lease: Lease) -> bool:
        key = self.lease_key(lease)
        return bool(self._renew(keys=[key], args=[lease.value, self._ttl_ms]))

    def holds(self, lease: Lease) -> bool:
        held = self.client.get(self.lease_key(lease))
        return held is not None and held.decode() == lease.value

    def release(self, lease: Lease) -> None:
        self._release(keys=[self.lease_key(lease)], args=[lease.value])

    def bury(self, lease: Lease, commit: str, host: str) -> None:
        """Record that the issue landed (kept for good: a later enqueue anywhere skips it)."""
        tomb = {"commit": commit, "host": host, "at": time.time(), "token": lease.token}
        self.client.set(self._key("tomb", lease.repo, lease.issue_id), json.dumps(tomb))

    def landed(self, repo: str, issue_ids: list[str]) -> dict[str, Tombstone]:
        """The tombstones of those of ``issue_ids`` that landed (one round trip)."""
        if not issue_ids:
            return {}
        raw = self.client.mget([self._key("tomb", repo, i) for i in issue_ids])
        return {i: _tombstone(value) for i, value in zip(issue_ids, raw, strict=True) if value}


def _tombstone(raw: str | bytes) -> Tombstone:
    data = json.loads(raw)
    return Tombstone(data["commit"], data["host"], data["at"])


@dataclass(frozen=True)
class Fence:
    """A run's lease and where it is kept: what its heartbeat renews and its finishing
    steps check."""

    claims: Claims
    lease: Lease

    def holds(self) -> bool:
        return self.claims.holds(self.lease)

    def renew(self) -> bool:
        return self.claims.renew(self.lease)

    def bury(self, commit: str, host: str) -> None:
        self.claims.bury(self.lease, commit, host)

    def release(self) -> None:
        self.claims.release(self.lease)


def claims_for(storage: Any, queue: str, ttl: float) -> Claims:
    """Redis leases when the queue is on Redis (``storage`` has a client), else local ones."""
    client = getattr(storage, "conn", None)
    if client is None or not hasattr(client, "register_script"):
        return LocalClaims()
    return RedisClaims(client, queue, ttl)
