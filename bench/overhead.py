"""Benchmarks for bdp's own cost, each against a baseline measured in the same run.

    uv run python bench/overhead.py [--tasks 200] [--rounds 5]

1. Orchestration overhead per task: dequeue -> claim -> register -> session start, and finish
   (commit, close, unregister, outcome record), with an agent that returns at once and an
   in-memory bd, so neither agent time nor the bd binary counts. Baseline: a raw Huey no-op task,
   dequeued and executed the same way on the same broker.
2. `bdp enqueue` of 2,000 ready issues (real console script, stand-in bd), median wall time.
3. `bdp status` with 10,000 queued tasks, median wall time; baseline: `python -c "import huey"`.
Run on SQLite and on a private redis-server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from huey import Huey  # noqa: E402

from bdp.agent.session import StubAgentRunner  # noqa: E402
from bdp.broker.state import State  # noqa: E402
from bdp.config import Settings  # noqa: E402
from bdp.models import Issue, TaskArgs  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.queue.instance import build_huey  # noqa: E402
from bdp.repo.memory_beads import MemoryBeads  # noqa: E402
from bdp.run.deps import RunDeps  # noqa: E402
from bdp.run.work import work_on  # noqa: E402
from bench.harness import make_repo  # noqa: E402
from tests.support.beads import bd_env, init_workspace  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

BDP = str(Path(sys.executable).parent / "bdp")


def timed_execute(huey: Huey, count: int, enqueue: Callable[[int], None]) -> list[float]:
    """Milliseconds from dequeue to the end of execution, per task."""
    samples = []
    for n in range(count):
        enqueue(n)
        start = time.perf_counter()
        huey.execute(huey.dequeue())
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def overhead(settings: Settings, tasks: int, work: Path) -> tuple[float, float]:
    """Median ms per task: (raw Huey no-op, bdp pipeline with an instant agent)."""
    huey = build_huey(settings)
    noop = huey.task(name="noop")(lambda repo, issue_id, attempt: None)
    baseline = timed_execute(huey, tasks, lambda n: noop("/r", f"x-{n}", 1))

    repo = make_repo(work / "repo")
    beads = MemoryBeads([Issue(id=f"b-{n}", title=f"Bench {n}") for n in range(tasks)])
    agent = StubAgentRunner()
    deps = RunDeps(settings, State(huey), agent, beads=lambda _repo: beads)

    def run_issue(repo: str, issue_id: str, attempt: int, task: object = None) -> None:
        work_on(TaskArgs(repo, issue_id, attempt), "bench", deps)

    wrapper = huey.task(name="bench_run_issue", context=True)(run_issue)
    # each task's stub writes one new file, which the pipeline then locks and commits
    samples = []
    for n in range(tasks):
        name = f"f{n}.txt"
        agent.files = {name: "x\n"}

        def enqueue(_n: int, issue: str = f"b-{n}") -> None:
            wrapper(str(repo), issue, 1)

        samples += timed_execute(huey, 1, enqueue)
    return statistics.median(baseline), statistics.median(samples)


def seed_ready_issues(repo: Path, count: int) -> None:
    """Write ``count`` open issues straight into the stand-in's store (bd create is too slow)."""
    store_path = repo / ".beads" / "issues.json"
    store = json.loads(store_path.read_text())
    stamp = "2026-11-25T00:00:00Z"
    for n in range(count):
        issue_id = f"t-{n:05d}"
        store["issues"][issue_id] = {
            "id": issue_id,
            "title": f"Seeded issue {n}",
            "status": "open",
            "priority": 2,
            "issue_type": "task",
            "created_at": stamp,
            "updated_at": stamp,
            "created_by": "bench",
        }
    store_path.write_text(json.dumps(store))


def wall(argv: list[str], env: dict[str, str], rounds: int, before: Callable[[], None]) -> float:
    samples = []
    for _ in range(rounds):
        before()
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def enqueue_and_status(
    settings: Settings, env: dict[str, str], work: Path, rounds: int
) -> dict[str, float]:
    repo = make_repo(work / "big")
    init_workspace(repo)
    seed_ready_issues(repo, 2000)
    app = App.create(settings)

    def flush() -> None:
        app.huey.flush()

    enqueue_ms = wall([BDP, "enqueue", str(repo), "--json"], env, rounds, flush)
    flush()
    noop = app.huey.task(name="noop_status")(lambda: None)
    for _ in range(10_000):
        noop()
    assert app.huey.pending_count() == 10_000
    status_ms = wall([BDP, "status", "--json"], env, rounds, lambda: None)
    python_ms = wall([sys.executable, "-c", "import huey"], env, rounds, lambda: None)
    return {
        "enqueue_2000_ms": enqueue_ms,
        "status_10000_ms": status_ms,
        "python_import_huey_ms": python_ms,
    }


@contextmanager
def brokers(work: Path) -> Iterator[list[tuple[str, dict[str, str]]]]:
    redis = RedisServer(work / "redis").start()
    try:
        yield [("sqlite", {}), ("redis", {"BDP_REDIS_URL": redis.url})]
    finally:
        redis.stop()


def report(name: str, settings: Settings, env: dict[str, str], work: Path, rounds: int) -> None:
    tasks = int(env.get("BENCH_TASKS", "200"))
    raw, ours = overhead(settings, tasks, work)
    print(
        f"[{name}] orchestration per task: bdp {ours:.2f} ms vs raw Huey no-op {raw:.2f} ms "
        f"(medians; ratio {ours / raw:.1f}x, overhead {ours - raw:.2f} ms)"
    )
    numbers = enqueue_and_status(settings, env, work, rounds)
    enqueue_ms, status_ms = numbers["enqueue_2000_ms"], numbers["status_10000_ms"]
    print(f"[{name}] bdp enqueue, 2,000 ready issues: {enqueue_ms:.0f} ms median")
    print(
        f"[{name}] bdp status, 10,000 queued: {status_ms:.0f} ms median "
        f"(python -c 'import huey': {numbers['python_import_huey_ms']:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, brokers(Path(tmp)) as kinds:
        for name, extra in kinds:
            work = Path(tmp) / name
            env = {**bd_env(), **extra, "BDP_HOME": str(work / "home")}
            env["BENCH_TASKS"] = str(options.tasks)
            os.environ.update(extra)
            report(name, Settings.from_env(env), env, work, options.rounds)
            for key in extra:
                os.environ.pop(key, None)


if __name__ == "__main__":
    main()
