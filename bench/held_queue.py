"""What a held queue costs: consumer CPU while a spent budget holds thousands of tasks.

Why: a budget can run out at night with a large backlog queued. Workers must then wait
cheaply, not spin through the held tasks. Baseline, measured in the same run: the same
consumer with an empty queue (idle workers blocking on Redis).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.queue.app import App
from bench.harness import Consumer, clean_env, median, private_redis


def fill_held_queue(env: dict[str, str], tasks: int) -> None:
    """Queue ``tasks`` issues on a queue whose $0.01 budget is already spent."""
    app = App.create(Settings.from_env(env))
    app.state.record(RunRecord("r0", "t-0", "/repo", "x", Outcome.DONE, "ok", cost_usd=1.0))
    for n in range(tasks):
        task = app.tasks.queue(TaskArgs("/repo", f"t-{n}"))
        app.state.mark_queued("/repo", f"t-{n}", task.id)
        app.huey.enqueue(task)


def cpu_percent(
    env: dict[str, str], log: Path, workers: int, settle: float, window: float
) -> float:
    """The consumer's CPU use, in % of one core, over ``window`` s after ``settle`` s."""
    consumer = Consumer("bdp.consumer.huey", workers, env, log).start()
    try:
        time.sleep(settle)
        before, start = sum(consumer.cpu_seconds()), time.monotonic()
        time.sleep(window)
        used = sum(consumer.cpu_seconds()) - before
        return 100 * used / (time.monotonic() - start)
    finally:
        consumer.stop()


def measure(tasks: int, workers: int, settle: float, window: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with private_redis(root / "redis") as redis:
            base = clean_env(BDP_REDIS_URL=redis.url, BDP_HOME=str(root / "home"))
            idle = cpu_percent(base, root / "idle.log", workers, settle, window)
            redis.client().flushall()
            held_env = {**base, "BDP_BUDGET_USD": "0.01"}
            fill_held_queue(held_env, tasks)
            held = cpu_percent(held_env, root / "held.log", workers, settle, window)
            return idle, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = [
        measure(args.tasks, args.workers, args.settle, args.window) for _ in range(args.rounds)
    ]
    idle, held = median([r[0] for r in results]), median([r[1] for r in results])
    print(f"consumer -w {args.workers}, CPU in % of one core (median of {args.rounds}):")
    print(f"  empty queue (baseline):        {idle:5.1f}%")
    print(f"  {args.tasks:,} tasks held by budget: {held:5.1f}%  ({held - idle:+.1f} points)")


if __name__ == "__main__":
    main()
