"""The turn to land, one lander per repo and branch across machines: on a real redis-server."""

from __future__ import annotations

import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bdp.broker.claims import RedisClaims
from bdp.run.land_turn import landing_turn
from tests.support.redis_server import free_port

REPO, BRANCH = "app", "main"


def claims(url: str, ttl: float = 30.0) -> RedisClaims:
    return RedisClaims(redis.Redis.from_url(url), "bdp", ttl)


def test_a_second_lander_waits_for_the_first_to_finish_then_lands_with_a_newer_token(
    redis_url: str,
) -> None:
    events: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with landing_turn(claims(redis_url), REPO, BRANCH, "alpha:1/run-a"):
            events.append("alpha lands")
            first_in.set()
            release_first.wait(10)
            events.append("alpha done")

    def second() -> None:
        with landing_turn(claims(redis_url), REPO, BRANCH, "beta:2/run-b"):
            events.append("beta lands")

    alpha = threading.Thread(target=first)
    alpha.start()
    assert first_in.wait(10)
    beta = threading.Thread(target=second)
    beta.start()
    time.sleep(0.3)  # beta keeps asking meanwhile, and is refused
    assert events == ["alpha lands"]

    release_first.set()
    alpha.join(10)
    beta.join(10)

    assert events == ["alpha lands", "alpha done", "beta lands"]
    assert redis.Redis.from_url(redis_url).keys("bdp.bdp.land:*") == []


def test_the_turn_is_renewed_while_a_long_landing_runs(redis_url: str) -> None:
    short = claims(redis_url, ttl=0.3)
    with landing_turn(short, REPO, BRANCH, "alpha:1/run-a"):
        time.sleep(1.0)  # three times the turn's time to live
        assert claims(redis_url).take_turn(REPO, BRANCH, "beta:2/run-b") is None


def test_the_turn_of_a_lander_that_died_lapses_and_the_next_one_lands(redis_url: str) -> None:
    # Given a lander that took the turn and died (nothing renews it)
    dead = claims(redis_url, ttl=0.5).take_turn(REPO, BRANCH, "alpha:1/run-a")
    assert dead is not None

    # When another lander wants it, it gets it once the turn lapsed, with a newer token
    start = time.monotonic()
    with landing_turn(claims(redis_url), REPO, BRANCH, "beta:2/run-b"):
        waited = time.monotonic() - start
        held = redis.Redis.from_url(redis_url).get(f"bdp.bdp.land:{REPO}:{BRANCH}")
    assert 0.2 < waited < 5
    assert isinstance(held, bytes)
    owner, _, token = held.decode().rpartition("|")
    assert (owner, int(token) > dead.token) == ("beta:2/run-b", True)


def test_another_branch_or_repo_is_another_turn(redis_url: str) -> None:
    with landing_turn(claims(redis_url), REPO, BRANCH, "alpha:1/run-a"):
        assert claims(redis_url).take_turn(REPO, "release", "beta:2/run-b") is not None
        assert claims(redis_url).take_turn("lib", BRANCH, "beta:2/run-c") is not None


def test_with_redis_away_the_landing_goes_on_without_a_turn() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    away = RedisClaims(client, "bdp", 30)
    ran: list[bool] = []

    with landing_turn(away, REPO, BRANCH, "alpha:1/run-a", wait=5):
        ran.append(True)

    assert ran == [True]


def test_a_lander_that_waited_too_long_goes_on_without_the_turn(redis_url: str) -> None:
    assert claims(redis_url).take_turn(REPO, BRANCH, "alpha:1/run-a") is not None
    start = time.monotonic()

    with landing_turn(claims(redis_url), REPO, BRANCH, "beta:2/run-b", wait=0.3):
        pass

    assert time.monotonic() - start < 3
    held = redis.Redis.from_url(redis_url).get(f"bdp.bdp.land:{REPO}:{BRANCH}")
    assert isinstance(held, bytes)
    assert held.decode().startswith("alpha:1/run-a|")  # never taken from its holder
