"""Chaos on three simulated hosts sharing one Redis and one remote (soak: run before a release).

    uv run pytest -m soak -n 0 tests/integration/test_hosts_chaos.py

30 issues, three hosts each with its own bd database (the same backlog), sessions of about a
second. Mid-run, every process of one host is SIGKILLed; later Redis (append-only) is killed
and started again; then the dead host comes back. Every issue must land exactly once on the
remote, with exactly its file, and nothing may be left queued, running or claimed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, marker
from tests.integration.test_recovery import FAST_RECOVERY, script_attempt
from tests.support.beads import show_issue
from tests.support.fake_api import Delay, FakeApi, Report, Step, ToolUse
from tests.support.hosts import (
    Host,
    files_of,
    landed_on,
    make_host,
    seeded_backlog,
    shared_remote,
)
from tests.support.partition import Partition
from tests.support.processes import HueyConsumer, agent_processes, wait_for
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.timeout(900)]

ISSUES = 30


def agents_of(host: Host, api_url: str) -> list[int]:
    """The Claude CLIs (and their children) working in one host's worktrees."""
    found = []
    for pid in agent_processes(api_url):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.startswith(str(host.home)):
            found.append(pid)
    return found


def script_slow_sessions(api: FakeApi, ids: list[str]) -> None:
    for issue_id in ids:
        write = ToolUse("Write", {"file_path": f"src/{issue_id}.txt", "content": f"{issue_id}\n"})
        api.script([write, Delay(1, Report("DONE", f"wrote {issue_id}"))], match=marker(issue_id))


def test_a_host_killed_and_a_redis_restart_still_land_every_issue_exactly_once(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        bare = shared_remote(tmp_path)
        beads, ids = seeded_backlog(tmp_path, ISSUES)
        shared = {**env, "BDP_REDIS_URL": server.url, **FAST_RECOVERY}
        hosts = [make_host(tmp_path, n, bare, beads, shared) for n in ("alpha", "beta", "gamma")]
        script_slow_sessions(fake_api, ids)
        for host in hosts:
            assert bdp(host.env, "enqueue", str(host.clone)).returncode == 0
        logs = {h.name: tmp_path / f"{h.name}.log" for h in hosts}
        consumers = {h.name: HueyConsumer(h.env, logs[h.name], workers=2).start() for h in hosts}

        # When alpha dies with sessions running
        wait_for(lambda: len(landed_on(bare)) >= 5 and agents_of(hosts[0], fake_api.url), 180)
        consumers["alpha"].stop(signal.SIGKILL)
        for pid in agents_of(hosts[0], fake_api.url):
            os.kill(pid, signal.SIGKILL)
        # and later Redis is killed and started again from its append-only file
        wait_for(lambda: len(landed_on(bare)) >= 12, 240)
        server.stop(signal.SIGKILL)
        server.start()
        # and then alpha comes back
        consumers["alpha"] = HueyConsumer(hosts[0].env, logs["alpha"], workers=2).start()
        wait_for(lambda: set(landed_on(bare)) == set(ids), 600)
        for consumer in consumers.values():
            consumer.stop()

        # Then every issue landed exactly once, with exactly its file
        landed = landed_on(bare)
        assert {i: len(landed[i]) for i in ids} == dict.fromkeys(ids, 1)
        assert all(files_of(bare, landed[i][0]) == {f"src/{i}.txt"} for i in ids)
        # And nothing is left queued or running, and each issue is closed on some host
        status = bdp_json(hosts[1].env, "status")
        assert (status["queued"], status["running"]) == (0, [])
        for issue_id in ids:
            states = {show_issue(h.clone, issue_id)["status"] for h in hosts}
            assert "closed" in states, (issue_id, states)
    finally:
        server.stop()


def test_a_host_cut_off_from_redis_past_its_lease_never_lands_what_another_host_took_over(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given alpha reaching Redis through a link that can be cut, and beta directly; the
    # issue's first session writes its file, then takes 25 s to say DONE
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    link = Partition(server.port).heal()
    try:
        bare = shared_remote(tmp_path)
        beads, [issue_id] = seeded_backlog(tmp_path, 1)
        fast = {**env, **FAST_RECOVERY}
        alpha = make_host(tmp_path, "alpha", bare, beads, {**fast, "BDP_REDIS_URL": link.url()})
        beta = make_host(tmp_path, "beta", bare, beads, {**fast, "BDP_REDIS_URL": server.url})
        first: list[Step] = [
            ToolUse("Write", {"file_path": "split.txt", "content": "alpha's\n"}),
            Delay(25, Report("DONE", "alpha finished late")),
        ]
        script_attempt(fake_api, issue_id, 1, first)
        second: list[Step] = [
            ToolUse("Write", {"file_path": "split.txt", "content": "beta's\n"}),
            Report("DONE", "beta finished"),
        ]
        script_attempt(fake_api, issue_id, 2, second)
        assert bdp(alpha.env, "enqueue", str(alpha.clone)).returncode == 0
        cut_off = HueyConsumer(alpha.env, tmp_path / "alpha.log", workers=1).start()
        wait_for(lambda: len(fake_api.messages_requests(match=marker(issue_id))) >= 2, 60)

        # When alpha loses Redis for longer than the lease while its session goes on, and
        # beta, which still reaches Redis, recovers the issue and lands it
        link.cut()
        survivor = HueyConsumer(beta.env, tmp_path / "beta.log", workers=1).start()
        wait_for(lambda: issue_id in landed_on(bare), 90)
        # and then alpha's link comes back and its session says DONE
        link.heal()
        wait_for(lambda: f"{issue_id} SUPERSEDED" in cut_off.output(), 60)
        cut_off.stop()
        survivor.stop()

        # Then only beta's work landed, once; alpha's run ended without touching the remote
        assert len(landed_on(bare)[issue_id]) == 1
        assert git(bare, "show", "main:split.txt") == "beta's\n"
        outcomes = {r["outcome"] for r in bdp_json(beta.env, "status")["recent"]}
        assert "SUPERSEDED" in outcomes
        assert "DONE" in outcomes
    finally:
        link.cut()
        server.stop()
