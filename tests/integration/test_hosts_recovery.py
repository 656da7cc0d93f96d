"""Several machines, one queue, when a host dies: simulated on one machine with real parts
(as in test_hosts.py), the dead host's consumer and agents SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, first_turns, marker
from tests.integration.test_recovery import FAST_RECOVERY, hang_then_finish
from tests.support.beads import show_issue
from tests.support.fake_api import FakeApi, Report, ToolUse
from tests.support.hosts import REPO_NAME, files_of, landed_on, make_host
from tests.support.hosts import seeded_backlog as backlog
from tests.support.hosts import shared_remote as remote
from tests.support.processes import HueyConsumer, agent_processes, wait_for

# real consumers on several hosts: slow, and each test gets four minutes
pytestmark = [pytest.mark.timeout(240), pytest.mark.integration]


def test_a_host_that_dies_mid_run_has_its_issue_finished_once_by_another(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path, redis_url: str
) -> None:
    # Given two hosts with their own bd, recovering fast, and one issue whose first attempt
    # hangs after writing its file while the second one does it right
    bare = remote(tmp_path)
    beads, [issue_id] = backlog(tmp_path, 1)
    fast = {**env, "BDP_REDIS_URL": redis_url, **FAST_RECOVERY}
    alpha, beta = (make_host(tmp_path, name, bare, beads, fast) for name in ("alpha", "beta"))
    hang_then_finish(fake_api, issue_id, "crash.txt", "finished elsewhere")
    assert bdp(alpha.env, "enqueue", str(alpha.clone)).returncode == 0
    doomed = HueyConsumer(alpha.env, tmp_path / "alpha.log", workers=1).start()
    wait_for(lambda: len(fake_api.messages_requests(match=marker(issue_id))) >= 2, 60)

    # When every process of alpha dies at once, and beta serves the queue
    doomed.stop(signal.SIGKILL)
    for pid in agent_processes(fake_api.url):
        os.kill(pid, signal.SIGKILL)
    survivor = HueyConsumer(beta.env, tmp_path / "beta.log", workers=1).start()
    wait_for(lambda: issue_id in landed_on(bare), 90)
    survivor.stop()

    # Then beta's janitor recovered alpha's run, and beta landed the issue once, done right
    assert len(landed_on(bare)[issue_id]) == 1
    assert git(bare, "show", "main:crash.txt") == "done right\n"
    assert show_issue(beta.clone, issue_id)["status"] == "closed"
    recent = bdp_json(beta.env, "status")["recent"]
    outcomes = [(r["outcome"], r["worker"].partition("/")[0]) for r in recent]
    assert outcomes == [("ABANDONED", "alpha"), ("DONE", "beta")]
    # And the lock alpha's run held on crash.txt was in the Redis both share, where beta
    # could take it over once alpha's lease lapsed; none is left
    client = redis.Redis.from_url(redis_url)
    assert client.smembers("bdp.bdp.lock-repos") == {REPO_NAME.encode()}
    assert client.hgetall(f"bdp.bdp.locks:{REPO_NAME}") == {}


def test_a_continuation_whose_host_died_resumes_its_session_on_another_host(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path, redis_url: str
) -> None:
    # Given two hosts; sessions allowed two turns, for issue A's work that takes three model
    # requests; issue B's first attempt hangs after a write, so alpha is busy with it
    bare = remote(tmp_path)
    beads, [a, b] = backlog(tmp_path, 2)
    fast = {**env, "BDP_REDIS_URL": redis_url, "BDP_MAX_TURNS": "2", **FAST_RECOVERY}
    alpha, beta = (make_host(tmp_path, name, bare, beads, fast) for name in ("alpha", "beta"))
    writes = [
        ToolUse("Write", {"file_path": f"{n}.txt", "content": f"{n}\n"}) for n in ("p1", "p2")
    ]
    fake_api.script([*writes, Report("DONE", "both parts")], match=marker(a))
    hang_then_finish(fake_api, b, "b.txt", "b done")
    queued = bdp(alpha.env, "enqueue", str(alpha.clone), "--ids", f"{a},{b}", "--order", "input")
    assert queued.returncode == 0, queued.stderr

    # When alpha leaves A unfinished (its continuation queued behind B), then dies working B
    doomed = HueyConsumer(alpha.env, tmp_path / "alpha.log", workers=1).start()
    wait_for(lambda: len(fake_api.messages_requests(match=marker(b))) >= 2, 60)
    outcomes = [(r["issue_id"], r["outcome"]) for r in bdp_json(alpha.env, "status")["recent"]]
    assert outcomes == [(a, "UNFINISHED")]
    doomed.stop(signal.SIGKILL)
    for pid in agent_processes(fake_api.url):
        os.kill(pid, signal.SIGKILL)
    survivor = HueyConsumer(beta.env, tmp_path / "beta.log", workers=2).start()
    wait_for(lambda: {a, b} <= set(landed_on(bare)), 90)
    survivor.stop()

    # Then beta resumed A's one session (alpha's turns and files were there) and landed it once
    assert first_turns(fake_api, a) == 1
    [commit] = landed_on(bare)[a]
    assert files_of(bare, commit) == {"p1.txt", "p2.txt"}
    runs = [r for r in bdp_json(beta.env, "status")["recent"] if r["issue_id"] == a]
    assert [(r["outcome"], r["worker"].partition("/")[0]) for r in runs] == [
        ("UNFINISHED", "alpha"),
        ("DONE", "beta"),
    ]
    assert git(bare, "for-each-ref", "refs/bdp") == ""
