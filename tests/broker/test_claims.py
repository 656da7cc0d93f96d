"""Leases with fencing tokens and tombstones, on a real redis-server."""

from __future__ import annotations

import redis
from huey import MemoryHuey, RedisHuey

from bdp.broker.claims import Lease, LocalClaims, RedisClaims, Refused, claims_for
from tests.support.processes import wait_for

REPO, ISSUE = "app", "t-1"


def claims(redis_url: str, ttl: float = 30.0) -> RedisClaims:
    return RedisClaims(redis.Redis.from_url(redis_url), "bdp", ttl)


def lapse(redis_url: str, lease: Lease) -> None:
    """Let ``lease`` run out now (as it does when its run stops renewing it)."""
    client = redis.Redis.from_url(redis_url)
    key = f"bdp.bdp.lease:{lease.repo}:{lease.issue_id}"
    assert client.pexpire(key, 1)
    wait_for(lambda: not client.exists(key), 5)


def test_one_run_holds_an_issues_lease_and_a_second_is_refused_naming_the_holder(
    redis_url: str,
) -> None:
    first = claims(redis_url).take(REPO, ISSUE, "alpha:1/task-a")
    second = claims(redis_url).take(REPO, ISSUE, "beta:7/task-b")

    assert isinstance(first, Lease)
    assert isinstance(second, Refused)
    assert "alpha:1/task-a" in second.reason
    assert not second.landed
    # another issue, or the same id in another repo, is another lease
    assert isinstance(claims(redis_url).take(REPO, "t-2", "beta:7/task-c"), Lease)
    assert isinstance(claims(redis_url).take("lib", ISSUE, "beta:7/task-d"), Lease)


def test_a_lapsed_lease_goes_to_the_next_run_with_a_newer_token_and_fences_the_old_one(
    redis_url: str,
) -> None:
    store = claims(redis_url)
    old = store.take(REPO, ISSUE, "alpha:1/task-a")
    assert isinstance(old, Lease)

    lapse(redis_url, old)
    new = store.take(REPO, ISSUE, "beta:7/task-b")

    assert isinstance(new, Lease)
    assert new.token > old.token
    assert not store.holds(old)
    assert not store.renew(old)  # the stalled run learns it lost the issue
    assert store.holds(new)
    store.release(old)  # a stale release changes nothing
    assert store.holds(new)


def test_a_lease_lapsed_that_nobody_took_is_renewed_by_its_run(redis_url: str) -> None:
    store = claims(redis_url)
    lease = store.take(REPO, ISSUE, "alpha:1/task-a")
    assert isinstance(lease, Lease)

    lapse(redis_url, lease)

    assert store.renew(lease)
    assert store.holds(lease)
    assert isinstance(store.take(REPO, ISSUE, "beta:7/task-b"), Refused)


def test_a_released_lease_can_be_taken_again(redis_url: str) -> None:
    store = claims(redis_url)
    lease = store.take(REPO, ISSUE, "alpha:1/task-a")
    assert isinstance(lease, Lease)

    store.release(lease)

    assert not store.holds(lease)
    assert isinstance(store.take(REPO, ISSUE, "alpha:1/task-b"), Lease)


def test_a_landed_issue_is_refused_everywhere_and_listed_as_landed(redis_url: str) -> None:
    store = claims(redis_url)
    lease = store.take(REPO, ISSUE, "alpha:1/task-a")
    assert isinstance(lease, Lease)

    store.bury(lease, "c0ffee" * 6, "alpha")
    store.release(lease)
    again = claims(redis_url).take(REPO, ISSUE, "beta:7/task-b")

    assert isinstance(again, Refused)
    assert again.landed
    assert "c0ffeec0ffee" in again.reason
    assert "alpha" in again.reason
    landed = claims(redis_url).landed(REPO, [ISSUE, "t-2"])
    assert list(landed) == [ISSUE]
    assert (landed[ISSUE].commit, landed[ISSUE].host) == ("c0ffee" * 6, "alpha")


def test_leases_live_as_long_as_their_time_to_live(redis_url: str) -> None:
    store = claims(redis_url, ttl=7.5)
    lease = store.take(REPO, ISSUE, "alpha:1/task-a")
    assert isinstance(lease, Lease)

    ttl = redis.Redis.from_url(redis_url).pttl(f"bdp.bdp.lease:{REPO}:{ISSUE}")

    assert 7000 < ttl <= 7500


def test_a_queue_on_redis_gets_redis_leases_and_any_other_local_ones(redis_url: str) -> None:
    assert isinstance(claims_for(RedisHuey("bdp", url=redis_url).storage, "bdp", 60), RedisClaims)
    local = claims_for(MemoryHuey("bdp").storage, "bdp", 60)
    assert isinstance(local, LocalClaims)
    lease = local.take(REPO, ISSUE, "me")
    assert isinstance(lease, Lease)
    assert local.holds(lease)
