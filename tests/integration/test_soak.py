"""Soak: a backlog worked through while consumers are SIGKILLed every few seconds and Redis
restarts once (with its append-only file). Not in the default run:

    uv run pytest -m soak                 # 200 issues; BDP_SOAK_ISSUES=50 for a shorter one

Every issue must end closed exactly once, with exactly one commit on main, and nothing held.
The agent is bench/sleepy_worker.py's: bdp's real tasks, worktrees and lander around a session
that sleeps briefly and writes one file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.helpers import bdp, bdp_json
from tests.support.beads import create_issue, run_bd_ok
from tests.support.processes import HueyConsumer, wait_for
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
ISSUES = int(os.environ.get("BDP_SOAK_ISSUES", "200"))
CONSUMERS, WORKERS = 2, 2  # 4 workers in all
KILL_EVERY = (2.0, 5.0)  # seconds between SIGKILLs of a random consumer

pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.timeout(1800)]


def sleepy_consumer(env: dict[str, str], log: Path) -> HueyConsumer:
    consumer = HueyConsumer(env, log, workers=WORKERS)
    consumer.argv[1] = "bench.sleepy_worker.huey"
    return consumer.start()


def closed(repo: Path) -> int:
    listing = run_bd_ok(repo, "list", "--status", "closed", "--json", "--limit", "0")
    return listing.count('"id"')


def test_a_backlog_survives_sigkills_and_a_redis_restart_with_each_issue_done_once(
    env: dict[str, str], repo: Path, throwaway_redis: RedisServer, tmp_path: Path
) -> None:
    # Given a backlog and workers on a Redis with its append-only file
    ids = [create_issue(repo, f"Soak {n}") for n in range(ISSUES)]
    soak = {
        **env,
        "BDP_REDIS_URL": throwaway_redis.url,
        "BDP_JANITOR_INTERVAL": "1",
        "BDP_STALE_AFTER": "3",
        "BDP_HEARTBEAT": "0.5",
        "BENCH_SESSION_SECONDS": "0.3",
        "BDP_MAX_ATTEMPTS": "50",  # a run lost to a SIGKILL is no fault of the issue
        "PYTHONPATH": str(ROOT),
    }
    assert bdp(soak, "enqueue", str(repo), timeout=300).returncode == 0
    consumers = [sleepy_consumer(soak, tmp_path / f"c{n}.log") for n in range(CONSUMERS)]
    rng = random.Random(20261202)  # noqa: S311 - a repeatable kill schedule, not a secret
    restarted, kills, deadline = False, 0, time.monotonic() + 1500

    # When consumers are killed outright every few seconds, and Redis restarts once
    while closed(repo) < ISSUES and time.monotonic() < deadline:
        time.sleep(rng.uniform(*KILL_EVERY))
        victim = rng.randrange(len(consumers))
        consumers[victim].stop(signal.SIGKILL)
        kills += 1
        if not restarted and closed(repo) > ISSUES // 3:
            throwaway_redis.stop(signal.SIGTERM)
            throwaway_redis.start()
            restarted = True
        consumers[victim] = sleepy_consumer(soak, tmp_path / f"c{victim}-{kills}.log")
    wait_for(lambda: closed(repo) == ISSUES, timeout=120)
    for consumer in consumers:
        consumer.stop()

    # Then every issue is closed, each with exactly one commit on main, and nothing is held
    assert restarted
    assert kills >= 5
    trailers = subprocess.run(
        ["git", "log", "--format=%(trailers:key=Bdp-Issue,valueonly)", "main"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(trailers) == sorted(ids)
    assert bdp(soak, "clean", "--locks").returncode == 0
    report = bdp_json(soak, "status")
    assert (report["running"], report["locks"]) == ([], [])
