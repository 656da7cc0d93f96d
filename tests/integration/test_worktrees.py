"""Worktree isolation on real parts: huey_consumer workers, the real Claude CLI against the
fake API, real git worktrees, and the lander putting each run's commit on main."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, marker, script_write_then_done
from tests.support.beads import create_issue, show_issue
from tests.support.fake_api import FakeApi, Text, ToolUse
from tests.support.processes import HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def in_worktrees(env: dict[str, str]) -> dict[str, str]:
    return {**env, "BDP_ISOLATION": "worktree"}


def files_of(repo: Path, ref: str) -> set[str]:
    return {
        line for line in git(repo, "show", "--name-only", "--format=", ref).splitlines() if line
    }


def test_each_run_lands_exactly_its_work_on_main_and_leaves_no_worktree_behind(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, bdp_home: Path
) -> None:
    # Given three ready issues, a human's unsaved edit in the main tree, and a planted hook
    ids = [create_issue(repo, f"Feature {n}") for n in range(3)]
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"src/{issue_id}.txt")
    (repo / "README.md").write_text("# test repo\nunsaved human line\n")
    hook = repo / ".git" / "hooks" / "post-merge"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'hook-ran'}\n")
    hook.chmod(0o755)
    worktree_env = in_worktrees(env)

    # When they are queued and two workers run them, each in its own worktree
    assert bdp(worktree_env, "enqueue", str(repo)).returncode == 0
    consumer = HueyConsumer(worktree_env, tmp_path / "consumer.log", workers=2).start()
    wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in ids), 120)
    consumer.stop()

    # Then every issue's commit is on main, holding exactly its file, with its trailers
    log = git(repo, "log", "--format=%H %(trailers:key=Bdp-Issue,valueonly)").splitlines()
    landed = {line.split()[1]: line.split()[0] for line in log if len(line.split()) == 2}
    assert sorted(landed) == sorted(ids)
    for issue_id, sha in landed.items():
        assert files_of(repo, sha) == {f"src/{issue_id}.txt"}
        assert (repo / "src" / f"{issue_id}.txt").read_text() == f"work for {issue_id}\n"
    # And the human's line is still there, uncommitted; no hook ran; nothing is left over
    assert (repo / "README.md").read_text() == "# test repo\nunsaved human line\n"
    assert not (tmp_path / "hook-ran").exists()
    assert list((bdp_home / "worktrees").glob("*/*")) == []
    assert git(repo, "branch", "--list", "bdp/*") == ""
    recent = bdp_json(worktree_env, "status")["recent"]
    assert {(r["outcome"], r["landed"]) for r in recent} == {("DONE", True)}


def test_bdp_run_with_worktree_isolation_lands_and_exits_zero(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    issue_id = create_issue(repo, "One shot")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "oneshot.txt", "content": "done\n"}),
            Text("DONE: wrote oneshot.txt"),
        ],
        match=marker(issue_id),
    )

    done = bdp(env, "run", str(repo), "-n", "1", "--isolation", "worktree")

    assert done.returncode == 0, done.stdout + done.stderr
    assert show_issue(repo, issue_id)["status"] == "closed"
    assert (repo / "oneshot.txt").read_text() == "done\n"
    assert files_of(repo, "HEAD") == {"oneshot.txt"}
