"""A Redis restart under load: how long until work resumes, and what it costs the backlog.

    uv run python bench/redis_restart.py [--rounds 5] [--down 3]

Why: the README says a Redis with its append-only file on loses nothing when it restarts,
and that the consumers carry on by themselves. Each round: a fresh AOF Redis and repo, two
consumers of two workers running bench/sleepy_worker.py's agent (sessions of
``--session`` s), and ``--issues`` issues queued. Once four sessions run, Redis is SIGKILLed,
kept down ``--down`` s, and started again on its port and its files. The clock measures the
time from Redis being back to the first session that starts after it ("resumed"), and the
whole backlog's time against a baseline round without the restart, run alternately in the
same process. Every round checks each issue closed once with one commit. Medians.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.config import Settings  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.queue.enqueue import EnqueueOptions, enqueue_ready  # noqa: E402
from bench.harness import Consumer, clean_env, make_repo, median, wait_until  # noqa: E402
from tests.support.beads import BIN_DIR, create_issue, init_workspace, show_issue  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


class Round:
    """One backlog on its own Redis and repo; with ``restart``, Redis goes away once."""

    def __init__(self, work: Path, options: argparse.Namespace) -> None:
        self.work, self.options = work, options
        self.repo = make_repo(work / "repo")
        init_workspace(self.repo)
        self.ids = [create_issue(self.repo, f"Issue {n}") for n in range(options.issues)]
        self.redis = RedisServer(work / "redis", appendonly=True).start()
        self.env = clean_env(
            BDP_BD=str(BIN_DIR / "bd"),
            BDP_HOME=str(work / "home"),
            BDP_REDIS_URL=self.redis.url,
            PYTHONPATH=str(ROOT),
            BENCH_SESSION_SECONDS=str(options.session),
        )

    def run(self, restart: bool) -> tuple[float, float]:
        """Seconds from Redis back to the next session start (0 without a restart), and
        from the first enqueue to the last close."""
        app = App.create(Settings.from_env(self.env))
        consumers = [
            Consumer("bench.sleepy_worker.huey", 2, self.env, self.work / f"c{n}.log").start()
            for n in range(2)
        ]
        try:
            started = time.monotonic()
            enqueue_ready(app, self.repo, EnqueueOptions())
            resumed = self._restart(app) if restart else 0.0
            if not wait_until(self._all_closed, 300, 0.1):
                raise SystemExit(f"the backlog did not finish; see {self.work}")
            self._check_each_once()
            return resumed, time.monotonic() - started
        finally:
            for consumer in consumers:
                consumer.stop(timeout=20)
            self.redis.stop()

    def _restart(self, app: App) -> float:
        if not wait_until(lambda: len(app.state.runs()) >= 4, 60):
            raise SystemExit("four sessions never ran at once")
        self.redis.stop(9)
        time.sleep(self.options.down)
        self.redis.start()
        back = time.time()
        newer = lambda: any(run.started >= back for run in app.state.runs())  # noqa: E731
        if not wait_until(newer, 120, 0.02):
            raise SystemExit("no session started after Redis came back")
        return time.time() - back

    def _all_closed(self) -> bool:
        return all(show_issue(self.repo, issue)["status"] == "closed" for issue in self.ids)

    def _check_each_once(self) -> None:
        log = subprocess.run(
            ["git", "log", "--format=%(trailers:key=Bdp-Issue,valueonly)", "main"],
            cwd=self.repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if sorted(log) != sorted(self.ids):
            raise SystemExit(f"not one commit per issue: {sorted(log)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--down", type=float, default=3.0, help="seconds Redis stays down")
    parser.add_argument("--issues", type=int, default=12)
    parser.add_argument("--session", type=float, default=4.0, help="seconds per session")
    options = parser.parse_args(argv)
    resumed, with_restart, without = [], [], []
    with tempfile.TemporaryDirectory(prefix="bdp-bench-redis-") as tmp:
        for n in range(options.rounds):
            without.append(Round(Path(tmp) / f"base-{n}", options).run(restart=False)[1])
            back, total = Round(Path(tmp) / f"restart-{n}", options).run(restart=True)
            resumed.append(back)
            with_restart.append(total)
            print(f"round {n}: resumed {back:.2f}s, {total:.1f}s vs {without[-1]:.1f}s", flush=True)
    base, restarted = median(without), median(with_restart)
    print(f"Redis down {options.down:g}s; {options.issues} issues of {options.session:g}s sessions")
    print(f"resumed after Redis came back: median {median(resumed):.2f}s")
    print(
        f"backlog: {restarted:.1f}s with the restart vs {base:.1f}s without "
        f"(ratio {restarted / base:.2f}; the outage itself is {options.down:g}s)"
    )


if __name__ == "__main__":
    main()
