"""Several machines, one queue, simulated on one machine with real parts: each host its own
clone at its own path, BDP_HOME, stand-in bd database and host name, real huey_consumers,
one private redis-server, one bare git repository as the shared remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import bdp, bdp_json, first_turns, script_write_then_done
from tests.support.beads import show_issue
from tests.support.fake_api import FakeApi
from tests.support.hosts import (
    REPO_NAME,
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
    beads, ids = seeded_backlog(tmp_path, 3)
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
