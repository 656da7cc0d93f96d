"""Benchmark of the lock table against its floor, both measured in the same run.

    uv run python bench/locks.py [--iterations 2000] [--rounds 3] [--baseline ab5ed46]

Median microseconds of one uncontended ``acquire`` + ``release`` of one lock (normalising the
path, the lock directory, the owner record, reading it back and removing it), against its
floor: a bare ``os.mkdir`` + ``os.rmdir`` pair in the same folder, timed alternately with it.
The goal is a ratio of at most 3x. The same is measured for the ``--baseline`` revision
(unpacked with `git archive`), each bdp in its own interpreter, rounds alternating.
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
if str(ROOT) not in sys.path:  # a baseline's bdp may come first (bench.harness.measure_in)
    sys.path.insert(0, str(ROOT))

from bench.harness import BEFORE_ISSUE_15, measure_in, unpack  # noqa: E402

#: The ratio to the floor an uncontended acquire + release should stay within.
GOAL = 3.0


def alternate(steps: list[Callable[[], None]], iterations: int) -> list[float]:
    """Median microseconds of each step, timed in turn (so drift hits them alike)."""
    for _ in range(min(50, iterations)):
        for step in steps:
            step()
    samples: list[list[int]] = [[] for _ in steps]
    for _ in range(iterations):
        for step, times in zip(steps, samples, strict=True):
            start = time.perf_counter_ns()
            step()
            times.append(time.perf_counter_ns() - start)
    return [statistics.median(times) / 1000 for times in samples]


def measure(iterations: int) -> dict[str, float]:
    """One round in this interpreter: the floor's and the lock table's medians (us)."""
    from bdp.repo.locks import Holder, LockTable

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

        floor, locks = alternate([mkdir_step, lock_step], iterations)
    return {"floor_us": floor, "locks_us": locks}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=BEFORE_ISSUE_15, help="a git revision")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bdp-bench-locks-src-") as tmp:
        sources = {args.baseline: unpack(args.baseline, Path(tmp)), "current": ROOT}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
        for _ in range(args.rounds):
            for name, source in sources.items():
                rounds[name].append(measure_in(source, "bench.locks:measure", args.iterations))
    print(f"{args.iterations} iterations x {args.rounds} rounds; medians of the round medians")
    print(f"{'bdp':>10} {'mkdir+rmdir us':>15} {'acquire+release us':>19} {'ratio':>7}")
    for name, samples in rounds.items():
        floor = statistics.median(s["floor_us"] for s in samples)
        locks = statistics.median(s["locks_us"] for s in samples)
        print(f"{name:>10} {floor:15.1f} {locks:19.1f} {locks / floor:6.1f}x")
    print(f"goal: acquire + release of one uncontended lock within {GOAL:g}x the floor")


if __name__ == "__main__":
    main()
