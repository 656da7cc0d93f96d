"""Benchmark of the lock table against its floor, both measured in the same run.

    uv run python bench/locks.py [--iterations 2000]

Median microseconds of one uncontended ``acquire`` + ``release`` of one lock (normalising the
path, the lock directory, the owner record written atomically, reading it back and removing
it), against a bare ``os.mkdir`` + ``os.rmdir`` pair in the same folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.repo.locks import Holder, LockTable  # noqa: E402


def median_us(step: Callable[[], None], iterations: int) -> float:
    """Median microseconds of ``step``, after a few warm-up calls."""
    for _ in range(min(50, iterations)):
        step()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        step()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bdp-bench-locks-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        (repo / "src").mkdir(parents=True)
        table = LockTable(work / "home", repo)
        holder = Holder.here("run-bench", "bench-1")
        table.acquire(["src/warm.py"], holder)  # creates the table's folders
        table.release(["src/warm.py"], holder.run_id)

        def lock_step() -> None:
            table.acquire(["src/app.py"], holder, wait=0)
            table.release(["src/app.py"], holder.run_id)

        bare = str(table.root / "bare-mkdir")

        def mkdir_step() -> None:
            os.mkdir(bare, 0o700)
            os.rmdir(bare)

        baseline = median_us(mkdir_step, args.iterations)
        locks = median_us(lock_step, args.iterations)

    print(f"iterations:                {args.iterations}")
    print(f"os.mkdir + os.rmdir:       {baseline:8.1f} us (median)")
    print(f"acquire + release, 1 lock: {locks:8.1f} us (median)")
    print(f"ratio:                     {locks / baseline:8.1f}x")


if __name__ == "__main__":
    main()
