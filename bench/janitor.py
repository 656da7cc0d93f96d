"""Benchmark of one janitor sweep over a busy machine, against a baseline in the same run.

    uv run python bench/janitor.py [--rounds 5] [--broker sqlite redis] [--baseline ab5ed46]

10,000 held locks (10 per run) and 1,000 live runs: the sweep must read every owner record
and every run and decide that nothing is dead. The goal is under 1 s. Floor: listing the same
10,000 lock directories and reading their owner files with plain ``os.scandir``/``open``.
Measured on SQLite and on a private redis-server, for this checkout and for the
``--baseline`` revision (unpacked with `git archive`), each in its own interpreter.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # a baseline's bdp may come first (bench.harness.measure_in)
    sys.path.insert(0, str(ROOT))

from bench.harness import BEFORE_ISSUE_15, measure_in, private_redis, unpack  # noqa: E402

RUNS, LOCKS_PER_RUN = 1000, 10
#: Seconds a sweep of this machine should stay under.
GOAL = 1.0


def populate(app: Any, repo: Path) -> None:
    """``RUNS`` live runs of this process, each holding ``LOCKS_PER_RUN`` locks."""
    from bdp.models import Run
    from bdp.repo.locks import Holder, LockTable

    table = LockTable(app.settings.home, repo)
    now, host, pid = time.time(), socket.gethostname(), os.getpid()
    for n in range(RUNS):
        run = Run(
            run_id=f"run{n:05d}",
            issue_id=f"b-{n}",
            repo=str(repo),
            title="bench",
            host=host,
            pid=pid,
            worker="bench",
            attempt=1,
            started=now,
            deadline=now + 3600,
            heartbeat=now,
        )
        app.state.register(run)
        paths = [f"src/m{n:05d}_{k}.py" for k in range(LOCKS_PER_RUN)]
        table.acquire(paths, Holder.here(run.run_id, run.issue_id, now))


def read_all(root: Path) -> int:
    count = 0
    for entry in os.scandir(root):
        if entry.is_dir() and not entry.name.startswith("."):
            with open(os.path.join(entry.path, "owner.json"), "rb") as handle:
                count += len(handle.read()) > 0
    return count


def median_ms(step: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(rounds: int, redis_url: str | None) -> dict[str, float]:
    """Median ms of a sweep and of the floor, on a fresh machine state (in this interpreter)."""
    from bdp.agent.session import StubAgentRunner
    from bdp.config import Settings
    from bdp.queue.app import App
    from bdp.queue.janitor import Janitor
    from bdp.repo.locks import LockTable
    from bdp.repo.memory_beads import MemoryBeads

    with tempfile.TemporaryDirectory(prefix="bdp-bench-janitor-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        settings = Settings(home=Path(tmp) / "home", stale_after=3600, redis_url=redis_url)
        app = App.create(settings, agent=lambda s: StubAgentRunner())
        app.huey.storage.flush_all()
        populate(app, repo)
        janitor = Janitor(
            settings, app.huey, app.state, app.tasks.requeue, beads=lambda _repo: MemoryBeads()
        )
        root = LockTable(settings.home, repo).root
        floor = median_ms(lambda: read_all(root), rounds)
        sweep = median_ms(janitor.sweep, rounds)
        report = janitor.sweep()
        if report.freed_locks or report.reset:
            raise SystemExit("the sweep touched a live run: the benchmark is invalid")
        app.huey.storage.flush_all()
    return {"sweep_ms": sweep, "floor_ms": floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--broker", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"]
    )
    parser.add_argument("--baseline", default=BEFORE_ISSUE_15, help="a git revision")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bdp-bench-janitor-src-") as tmp:
        sources = {options.baseline: unpack(options.baseline, Path(tmp) / "src"), "current": ROOT}
        with private_redis(Path(tmp) / "redis") as redis:
            urls = {"sqlite": None, "redis": redis.url}
            results = {
                (broker, name): measure_in(
                    source, "bench.janitor:measure", options.rounds, urls[broker]
                )
                for broker in options.broker
                for name, source in sources.items()
            }
    print(
        f"janitor sweep, {RUNS * LOCKS_PER_RUN:,} locks / {RUNS:,} live runs, "
        f"{options.rounds} rounds, medians:"
    )
    print(f"{'broker':>7} {'bdp':>9} {'sweep ms':>9} {'floor ms':>9} {'ratio':>6}")
    for (broker, name), row in results.items():
        sweep, floor = row["sweep_ms"], row["floor_ms"]
        print(f"{broker:>7} {name:>9} {sweep:9.0f} {floor:9.0f} {sweep / floor:5.1f}x")
    print(f"goal: a sweep under {GOAL * 1000:.0f} ms; floor: os.scandir + open of every owner file")


if __name__ == "__main__":
    main()
