"""Recovery after a SIGKILL: how long until another consumer has the dead run's issue again?

    uv run python bench/recovery.py [--rounds 5] [--settings default fast]

Why: the README promises that the work of a consumer killed outright (SIGKILL, OOM, a
reboot) is recovered by any other consumer's janitor within one janitor interval plus
BDP_STALE_AFTER. Each trial: a fresh Redis and repo, two consumers of one worker each running
bench/sleepy_worker.py's agent, one issue whose first session sleeps for good; the consumer
running it is SIGKILLed, and the clock runs until the second attempt has started and until
the issue is closed. "default" is bdp's own settings (janitor every 60 s, stale after 60 s);
"fast" is BDP_JANITOR_INTERVAL=5 BDP_STALE_AFTER=10. Medians over the rounds, with the
promise (janitor interval + stale after) as the baseline each is compared with.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bdp.config import DEFAULT_JANITOR_INTERVAL, DEFAULT_STALE_AFTER, Settings  # noqa: E402
from bdp.queue.app import App  # noqa: E402
from bdp.queue.enqueue import EnqueueOptions, enqueue_ready  # noqa: E402
from bench.harness import Consumer, clean_env, make_repo, median, private_redis, wait_until  # noqa: E402  # noqa: E402
from tests.support.beads import BIN_DIR, create_issue, init_workspace, show_issue  # noqa: E402

SETTINGS = {
    "default": {},
    "fast": {"BDP_JANITOR_INTERVAL": "5", "BDP_STALE_AFTER": "10"},
}


def promise(name: str) -> float:
    extra = SETTINGS[name]
    janitor = float(extra.get("BDP_JANITOR_INTERVAL", DEFAULT_JANITOR_INTERVAL))
    return janitor + float(extra.get("BDP_STALE_AFTER", DEFAULT_STALE_AFTER))


def trial(name: str, work: Path) -> tuple[float, float]:
    """Seconds from the SIGKILL to the second attempt's start, and to the issue's close."""
    repo = make_repo(work / "repo")
    init_workspace(repo)
    issue_id = create_issue(repo, "Outlive a SIGKILL")
    with private_redis(work / "redis") as redis:
        env = clean_env(
            BDP_BD=str(BIN_DIR / "bd"),
            BDP_HOME=str(work / "home"),
            BDP_REDIS_URL=redis.url,
            PYTHONPATH=str(ROOT),
            BENCH_SESSION_SECONDS="3600",
            BENCH_RETRY_SECONDS="0.2",
            **SETTINGS[name],
        )
        app = App.create(Settings.from_env(env))
        consumers = [
            Consumer("bench.sleepy_worker.huey", 1, env, work / f"c{n}.log").start()
            for n in range(2)
        ]
        try:
            enqueue_ready(app, repo, EnqueueOptions())
            if not wait_until(lambda: app.state.runs(), 60):
                raise SystemExit("the first attempt never started")
            [first] = app.state.runs()
            os.kill(first.pid, signal.SIGKILL)
            killed = time.monotonic()
            limit = promise(name) * 3 + 60
            wait_until(lambda: any(r.attempt == 2 for r in app.state.runs()), limit, 0.05)
            restarted = time.monotonic() - killed
            wait_until(lambda: show_issue(repo, issue_id)["status"] == "closed", limit, 0.05)
            return restarted, time.monotonic() - killed
        finally:
            for consumer in consumers:
                consumer.stop(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["fast"])
    options = parser.parse_args(argv)
    print(f"{'settings':>8} {'promise s':>10} {'restart s (median)':>19} {'closed s':>9} ratio")
    with tempfile.TemporaryDirectory(prefix="bdp-bench-recovery-") as tmp:
        for name in options.settings:
            results = [trial(name, Path(tmp) / f"{name}-{n}") for n in range(options.rounds)]
            restart = median([r for r, _ in results])
            closed = median([c for _, c in results])
            each = " ".join(f"{c:.1f}" for _, c in results)
            print(
                f"{name:>8} {promise(name):10.0f} {restart:19.1f} {closed:9.1f} "
                f"{closed / promise(name):.2f}  (closed: {each})",
                flush=True,
            )


if __name__ == "__main__":
    main()
