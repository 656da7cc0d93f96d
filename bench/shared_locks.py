"""Benchmark of the lock table machines share in Redis, against its floor, in one run.

    uv run python bench/shared_locks.py [--iterations 2000] [--rounds 3]

Median microseconds of one uncontended ``acquire`` + ``release`` of one lock in the shared
table (normalising the path, one script to take it, one to give it back), against its
floor: two Redis round trips (``PING``, ``PING``) on the same connection, timed alternately
with it, on a private redis-server. The directory table's pair is timed beside them, so the
price of sharing locks across machines reads straight off the output.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import private_redis  # noqa: E402
from bench.locks import alternate  # noqa: E402

if TYPE_CHECKING:
    from bdp.repo.lock_table import Locks


def measure(url: str, work: Path, iterations: int) -> dict[str, float]:
    """One round: the floor's, the shared table's and the directory table's medians (us)."""
    import redis

    from bdp.repo.locks import Holder, LockTable
    from bdp.repo.shared_locks import SharedLockTable

    client = redis.Redis.from_url(url)
    repo = work / "repo"
    (repo / "src").mkdir(parents=True, exist_ok=True)
    holder = Holder.here("run-bench", "bench-1")
    shared = SharedLockTable(client, "bdp.bench", "app", repo)
    files = LockTable(work / "home", repo)

    def floor() -> None:
        client.ping()
        client.ping()

    def step(table: Locks) -> Callable[[], None]:
        def acquire_and_release() -> None:
            table.acquire(["src/app.py"], holder, wait=0)
            table.release(["src/app.py"], holder.run_id)

        return acquire_and_release

    floor_us, shared_us, files_us = alternate([floor, step(shared), step(files)], iterations)
    return {"floor_us": floor_us, "shared_us": shared_us, "files_us": files_us}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bdp-bench-shared-locks-") as tmp,
        private_redis(Path(tmp) / "redis") as server,
    ):
        rounds = [measure(server.url, Path(tmp), args.iterations) for _ in range(args.rounds)]
    floor = statistics.median(r["floor_us"] for r in rounds)
    shared = statistics.median(r["shared_us"] for r in rounds)
    files = statistics.median(r["files_us"] for r in rounds)
    print(f"{args.iterations} iterations x {args.rounds} rounds; medians of the round medians")
    print(f"{'2 round trips us':>17} {'shared acquire+release us':>26} {'ratio':>7}")
    print(f"{floor:17.1f} {shared:26.1f} {shared / floor:6.1f}x")
    print(
        f"the directory table (one machine): {files:.1f} us; shared costs {shared / files:.1f}x it"
    )


if __name__ == "__main__":
    main()
