"""Several machines, one queue, simulated on one machine with real parts: each host its own
clone at its own path, BDP_HOME, stand-in bd database and host name, real huey_consumers,
one private redis-server, one bare git repository as the shared remote."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import (
    BDP,
    bdp,
    bdp_json,
    first_turns,
    marker,
    script_write_then_done,
)
from tests.support.beads import bd_calls, show_issue
from tests.support.fake_api import FakeApi
from tests.support.hosts import (
    REPO_NAME,
    Host,
    files_of,
    landed_on,
    make_host,
    seeded_backlog,
    shared_remote,
)
from tests.support.processes import HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_a_task_names_its_repo_and_runs_on_a_host_with_a_clone_at_any_path(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path, redis_url: str
) -> None:
    # Given a shared remote, and two hosts with clones at different paths and the same backlog
    bare = shared_remote(tmp_path)
    beads, ids = seeded_backlog(tmp_path, 2)
    shared = {**env, "BDP_REDIS_URL": redis_url}
    alpha = make_host(tmp_path, "alpha", bare, beads, shared)
    beta = make_host(tmp_path, "beta", bare, beads, shared)
    # and a third host that has no clone of the repo
    gamma = make_host(tmp_path, "gamma", bare, None, shared)
    gamma.env["BDP_REPOS"] = f"lib={tmp_path / 'gamma' / 'lib'}"
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"src/{issue_id}.txt")

    # When alpha queues the backlog and only the host without a clone serves the queue
    assert bdp(alpha.env, "enqueue", str(alpha.clone)).returncode == 0
    log = tmp_path / "gamma.log"
    away = HueyConsumer(gamma.env, log, workers=1).start()
    wait_for(lambda: log.read_text().count("raised RetryTask") >= len(ids), 60)
    # Then it leaves every task for another host, having claimed nothing and called no model
    assert all(show_issue(beta.clone, i)["status"] == "open" for i in ids)
    assert fake_api.messages_requests() == []

    # When beta, whose clone is elsewhere, serves the queue too
    worker = HueyConsumer(beta.env, tmp_path / "beta.log", workers=2).start()
    wait_for(lambda: set(landed_on(bare)) == set(ids), 120)
    wait_for(lambda: all(show_issue(beta.clone, i)["status"] == "closed" for i in ids), 30)
    worker.stop()
    away.stop()

    # Then each issue landed once on the remote, with exactly its file, and one session each
    landed = landed_on(bare)
    assert all(len(landed[i]) == 1 for i in ids)
    assert all(files_of(bare, landed[i][0]) == {f"src/{i}.txt"} for i in ids)
    assert all(first_turns(fake_api, i) == 1 for i in ids)
    # And the runs name the repo as the queue does, on the host that ran them
    recent = bdp_json(beta.env, "status")["recent"]
    assert {(r["repo"], r["outcome"]) for r in recent} == {(REPO_NAME, "DONE")}


def three_hosts(
    tmp_path: Path, env: dict[str, str], redis_url: str, issues: int
) -> tuple[Path, list[Host], list[str]]:
    bare = shared_remote(tmp_path)
    beads, ids = seeded_backlog(tmp_path, issues)
    shared = {**env, "BDP_REDIS_URL": redis_url}
    hosts = [make_host(tmp_path, name, bare, beads, shared) for name in ("alpha", "beta", "gamma")]
    return bare, hosts, ids


def work_everything(
    tmp_path: Path, fake_api: FakeApi, bare: Path, hosts: list[Host], ids: list[str]
) -> None:
    """Every host queues its own bd's backlog and serves the queue until all of it landed."""
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"src/{issue_id}.txt")
    for host in hosts:
        assert bdp(host.env, "enqueue", str(host.clone)).returncode == 0
    consumers = [
        HueyConsumer(host.env, tmp_path / f"{host.name}.log", workers=2).start() for host in hosts
    ]
    wait_for(lambda: set(landed_on(bare)) == set(ids), 180)
    for consumer in consumers:
        consumer.stop()


def test_hosts_with_their_own_bd_each_queue_everything_and_each_issue_lands_once(
    env: dict[str, str], fake_api: FakeApi, tmp_path: Path, redis_url: str
) -> None:
    # Given three hosts whose bd databases each hold the same 6 ready issues
    bare, hosts, ids = three_hosts(tmp_path, env, redis_url, 6)

    # When each queues its own backlog and all three serve the queue
    work_everything(tmp_path, fake_api, bare, hosts, ids)

    # Then every issue landed once, with exactly its file, after one session of two requests
    landed = landed_on(bare)
    assert {i: len(landed[i]) for i in ids} == dict.fromkeys(ids, 1)
    assert all(files_of(bare, landed[i][0]) == {f"src/{i}.txt"} for i in ids)
    requests = {i: len(fake_api.messages_requests(match=marker(i))) for i in ids}
    assert requests == dict.fromkeys(ids, 2)
    # And each issue is closed in the bd of the host that landed it, and only there
    closed = [i for host in hosts for i in ids if show_issue(host.clone, i)["status"] == "closed"]
    assert sorted(closed) == sorted(ids)

    # When a host whose bd never synced queues its "ready" issues again
    stale = max(hosts, key=lambda h: sum(show_issue(h.clone, i)["status"] == "open" for i in ids))
    still_open = [i for i in ids if show_issue(stale.clone, i)["status"] == "open"]
    assert still_open  # its bd still offers what the others landed
    done = bdp(stale.env, "enqueue", str(stale.clone), "--json")

    # Then it queues none of them: each landed already, whatever its bd says
    assert done.returncode == 0, done.stderr
    states = {item["id"]: item["state"] for item in json.loads(done.stdout)}
    assert {i: states[i] for i in still_open} == dict.fromkeys(still_open, "landed already")
    assert bdp_json(stale.env, "status")["queued"] == 0

    # And `bdp enqueue --watch` there, polling its unsynced bd again and again, queues nothing
    calls = tmp_path / "stale-bd.log"
    watching = {**stale.env, "FAKE_BD_LOG": str(calls)}
    watcher = subprocess.Popen(
        [BDP, "enqueue", str(stale.clone), "--watch", "--interval", "0.2s"],
        env=watching,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    wait_for(lambda: sum(argv[:1] == ["ready"] for argv in bd_calls(calls)) >= 3, 30)
    watcher.send_signal(signal.SIGINT)
    printed, _ = watcher.communicate(timeout=30)
    assert bdp_json(stale.env, "status")["queued"] == 0
    assert not any(i in printed for i in still_open), printed
