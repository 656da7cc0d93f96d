"""Benchmark of one janitor sweep over a busy machine, against a baseline in the same run.

    uv run python bench/janitor.py [--rounds 5]

10,000 held locks (10 per run) and 1,000 live runs on SQLite: the sweep must read every
owner record and every run and decide that nothing is dead. Baseline: listing the same
10,000 lock directories and reading their owner files with plain ``os.scandir``/``open``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.agent.session import StubAgentRunner  # noqa: E402
from bdp.config import Settings  # noqa: E402
from bdp.models import Run  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.queue.janitor import Janitor  # noqa: E402
from bdp.repo.locks import Holder, LockTable  # noqa: E402
from bdp.repo.memory_beads import MemoryBeads  # noqa: E402

RUNS, LOCKS_PER_RUN = 1000, 10


def populate(app: App, repo: Path) -> None:
    table = LockTable(app.settings.home, repo)
    now = time.time()
    for n in range(RUNS):
        run_id = f"run{n:05d}"
        run = Run(
            run_id,
            f"b-{n}",
            str(repo),
            "bench",
            socket.gethostname(),
            os.getpid(),
            "bench",
            1,
            now,
            now + 3600,
            now,
        )
        app.state.register(run)
        paths = [f"src/m{n:05d}_{k}.py" for k in range(LOCKS_PER_RUN)]
        table.acquire(paths, Holder.here(run_id, run.issue_id, now))


def read_all(root: Path) -> int:
    count = 0
    for entry in os.scandir(root):
        if entry.is_dir() and not entry.name.startswith("."):
            with open(os.path.join(entry.path, "owner.json"), "rb") as handle:
                count += len(handle.read()) > 0
    return count


def median_ms(step: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="bdp-bench-janitor-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        settings = Settings(home=Path(tmp) / "home", stale_after=3600)
        app = App.create(settings, agent=lambda s: StubAgentRunner())
        populate(app, repo)
        janitor = Janitor(
            settings, app.huey, app.state, app.tasks.requeue, beads=lambda _repo: MemoryBeads()
        )
        root = LockTable(settings.home, repo).root
        baseline = median_ms(lambda: read_all(root), rounds)
        sweep = median_ms(janitor.sweep, rounds)
        report = janitor.sweep()
        if report.freed_locks or report.reset:
            raise SystemExit("the sweep touched a live run: the benchmark is invalid")
        print(
            f"janitor sweep, {RUNS * LOCKS_PER_RUN:,} locks / {RUNS:,} live runs: "
            f"{sweep:.0f} ms median; raw scan of the lock files {baseline:.0f} ms "
            f"(ratio {sweep / baseline:.1f}x)"
        )


if __name__ == "__main__":
    main()
