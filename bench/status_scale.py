"""Wall time of `bdp status --json` and `bdp metrics` on a full queue, on SQLite and on Redis.

    uv run python bench/status_scale.py [--rounds 7] [--tasks 10000]

Why: people watch `bdp status` while agents run, and monitoring scrapes `bdp metrics` every
few seconds; both must stay close to the cost of starting bdp at all, however deep the queue.

State, written through bdp's own APIs: 10,000 queued `run_issue` tasks, each with the enqueue
marker `bdp enqueue` would write; 8 running runs (`State.register`) with fresh heartbeats and
3 file locks each; 1,000 outcome records (`State.record`, the most bdp keeps) spread over the
last 20 hours, one in five not DONE, which also fill the metrics counters and give the status
table its "needs attention" rows. The real console scripts in the venv run as subprocesses,
interleaved round by round so machine load hits every command alike.

Baseline, measured in the same run: `bdp --help`. It is the same console script, the same
interpreter start-up and the same import of bdp.cli and click as every measured command, and
stops just before a command does its own work, so the ratio is exactly what reading the
broker, the extra imports (huey, redis-py, prometheus_client, rich) and rendering add.
`python -c "import bdp.cli"` is shown too, to separate the import from click's dispatch.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.config import Settings  # noqa: E402
from bdp.models import Outcome, Run, RunRecord, TaskArgs  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.repo.locks import Holder, LockTable  # noqa: E402
from bench.harness import BDP, clean_env, median, private_redis, wall_ms  # noqa: E402

RUNS, LOCKS_PER_RUN = 8, 3
OUTCOME_WINDOW = 20 * 3600.0  # seconds: outcomes finished within the last day
BASELINE = "bdp --help"


def commands() -> dict[str, list[str]]:
    """What is timed, by label; the first is the baseline."""
    return {
        BASELINE: [BDP, "--help"],
        'python -c "import bdp.cli"': [sys.executable, "-c", "import bdp.cli"],
        "bdp status --json": [BDP, "status", "--json"],
        "bdp status (table)": [BDP, "status"],
        "bdp metrics": [BDP, "metrics"],
    }


def queue_tasks(app: App, repo: str, count: int) -> None:
    """What `bdp enqueue` does per issue, without asking bd: marker, then the task."""
    for n in range(count):
        issue_id = f"q-{n:05d}"
        task = app.tasks.queue(TaskArgs(repo, issue_id))
        if not app.state.mark_queued(repo, issue_id, task.id):
            raise SystemExit(f"{issue_id} was already queued: the broker was not empty")
        app.huey.enqueue(task)


def register_runs(app: App, repo: Path) -> None:
    now = time.time()
    table = LockTable(app.settings.home, repo)
    for n in range(RUNS):
        run_id, issue_id = f"run{n:04d}", f"r-{n:03d}"
        started = now - 60 * (n + 1)
        run = Run(
            run_id,
            issue_id,
            str(repo),
            f"Running issue {n}",
            socket.gethostname(),
            1_000_000 + n,
            f"bench-{n}",
            1,
            started,
            started + 1800,
            now,
        )
        app.state.register(run)
        app.state.beat(run_id, now)
        paths = [f"src/r{n}_{k}.py" for k in range(LOCKS_PER_RUN)]
        table.acquire(paths, Holder.here(run_id, issue_id, started))


def record_outcomes(app: App, repo: str, count: int) -> None:
    """A busy day: ``count`` outcomes spread over the last 20 hours, one in five not DONE."""
    others = [o for o in Outcome if o is not Outcome.DONE]
    now = time.time()
    step = OUTCOME_WINDOW / max(count, 1)
    for n in range(count):
        outcome = others[(n // 5) % len(others)] if n % 5 == 0 else Outcome.DONE
        finished = now - OUTCOME_WINDOW + n * step
        duration = (37.0 * n) % 4000  # spread over the duration buckets
        app.state.record(
            RunRecord(
                run_id=f"done{n:05d}",
                issue_id=f"d-{n:05d}",
                repo=repo,
                title=f"Done issue {n}",
                outcome=outcome,
                summary="bench outcome",
                started=finished - duration,
                finished=finished,
                turns=5,
                cost_usd=0.12,
                input_tokens=12_000,
                output_tokens=900,
            )
        )


def populate(app: App, work: Path, tasks: int, outcomes: int) -> float:
    """Fill the broker; seconds it took."""
    start = time.perf_counter()
    repo = work / "repo"
    repo.mkdir(parents=True)
    queue_tasks(app, str(repo), tasks)
    register_runs(app, repo)
    record_outcomes(app, str(repo), outcomes)
    return time.perf_counter() - start


def check(env: dict[str, str], tasks: int, outcomes: int) -> None:
    """The commands see the state we wrote, or the timings mean nothing."""
    status = json.loads(
        subprocess.run(
            commands()["bdp status --json"], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    metrics = subprocess.run(
        commands()["bdp metrics"], env=env, check=True, capture_output=True, text=True
    ).stdout
    problems = []
    if status["queued"] != tasks or len(status["running"]) != RUNS:
        problems.append(f"status: {status['queued']} queued, {len(status['running'])} running")
    if len(status["locks"]) != RUNS * LOCKS_PER_RUN:
        problems.append(f"status: {len(status['locks'])} locks")
    if f"bdp_queue_depth {tasks:.1f}" not in metrics or f"bdp_running {RUNS:.1f}" not in metrics:
        problems.append("metrics: queue depth or running count wrong")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("bdp_outcomes_total{")
    )
    if counted != outcomes:
        problems.append(f"metrics: {counted:g} outcomes counted")
    if problems:
        raise SystemExit("; ".join(problems))


def measure(env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per command, one run of each command per round (after a warm-up)."""
    samples: dict[str, list[float]] = {label: [] for label in commands()}
    for _ in range(rounds):
        for label, argv in commands().items():
            samples[label] += wall_ms(argv, env, 1, warmup=0)
    return samples


@contextmanager
def brokers(work: Path) -> Iterator[list[tuple[str, dict[str, str]]]]:
    with private_redis(work / "redis") as redis:
        yield [("sqlite", {}), ("redis", {"BDP_REDIS_URL": redis.url})]


def report(broker: str, samples: dict[str, list[float]]) -> None:
    base = median(samples[BASELINE])
    for label, values in samples.items():
        ms = median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"{broker:<7} {label:<28} {ms:9.0f} {spread:>11} {ms / base:6.2f}x {ms - base:+8.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tasks", type=int, default=10_000, help="queued tasks")
    parser.add_argument("--outcomes", type=int, default=1000, help="outcome records")
    options = parser.parse_args(argv)
    results: list[tuple[str, dict[str, list[float]]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bdp-bench-status-") as tmp,
        brokers(Path(tmp)) as kinds,
    ):
        for broker, extra in kinds:
            work = Path(tmp) / broker
            env = clean_env(BDP_HOME=str(work / "home"), **extra)
            app = App.create(Settings.from_env(env))
            took = populate(app, work, options.tasks, options.outcomes)
            print(
                f"[{broker}] wrote {options.tasks:,} queued tasks, {RUNS} runs, "
                f"{options.outcomes:,} outcomes in {took:.1f}s",
                flush=True,
            )
            check(env, options.tasks, options.outcomes)
            for argv_ in commands().values():  # warm-up: page cache, .pyc files
                wall_ms(argv_, env, 0, warmup=1)
            results.append((broker, measure(env, options.rounds)))
    print(
        f"\n{options.tasks:,} queued, {RUNS} running, {options.outcomes:,} outcomes; "
        f"{options.rounds} rounds; baseline: {BASELINE}"
    )
    print(
        f"{'broker':<7} {'command':<28} {'median ms':>9} {'min-max':>11} {'ratio':>7} "
        f"{'vs base':>8}"
    )
    for broker, samples in results:
        report(broker, samples)


if __name__ == "__main__":
    main()
