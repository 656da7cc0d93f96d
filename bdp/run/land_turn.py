"""One lander per repo and target branch across every machine sharing the queue's Redis.

Landers on different machines push to one remote. The push is a compare-and-swap, so two
landing at once cannot both win, but the loser has rebased and gated for nothing and must
start over. So a lander first takes the turn: a lease in Redis per (repo, branch) with a
fencing token, renewed while it lands, lapsing if its machine dies. The push stays the final
fence: a lander whose turn lapsed (or that could not reach Redis) still cannot land over
another's work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bdp.broker.claims import Lease, RedisClaims
from bdp.errors import is_broker_error
from bdp.run.bookkeeping import despite_broker

log = logging.getLogger(__name__)

#: Seconds a lander waits for its turn before it lands without one (the push still fences).
TURN_WAIT = 600.0


@contextmanager
def landing_turn(
    claims: RedisClaims, repo: str, branch: str, owner: str, wait: float = TURN_WAIT
) -> Iterator[None]:
    """Hold the turn to land on ``branch`` of ``repo`` while the block runs."""
    lease = _wait_for_turn(claims, repo, branch, owner, wait)
    if lease is None:
        yield
        return
    done = threading.Event()
    renewer = threading.Thread(target=_renew, args=(claims, lease, done), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        despite_broker(f"give back the turn to land on {branch}", lambda: claims.release(lease))


def _wait_for_turn(
    claims: RedisClaims, repo: str, branch: str, owner: str, wait: float
) -> Lease | None:
    """The turn, once the lander before it is done; None when Redis cannot be asked or the
    wait ran out (then the push alone decides)."""
    deadline, delay = time.monotonic() + wait, 0.02
    while True:
        try:
            lease = claims.take_turn(repo, branch, owner)
        except Exception as error:
            if not is_broker_error(error):
                raise
            log.warning("landing on %s without a turn: Redis is away (%s)", branch, error)
            return None
        if lease is not None:
            return lease
        if time.monotonic() >= deadline:
            log.warning(
                "landing on %s without a turn: waited %.0fs for another lander", branch, wait
            )
            return None
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _renew(claims: RedisClaims, lease: Lease, done: threading.Event) -> None:
    """Keep the turn alive (a third of its time to live apart) until ``done``."""
    interval = max(claims.ttl / 3, 0.05)
    while not done.wait(interval):
        if not despite_broker("renew the turn to land", lambda: claims.renew(lease)):
            log.warning("the turn to land on %s lapsed; the push still fences", lease.issue_id)
