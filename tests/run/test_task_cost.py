"""What one task costs in processes: the floor (claim, add, commit, close, and in a worktree
its making, landing and removal) and one call for each feature that needs one.

Every subprocess a task spawns (from any thread) is listed as ``<program> <subcommand>``; the
lists below are the whole cost, so a new call is a conscious choice that changes them. The
stand-in bd and real git run as they would for a user; bd's lease renewal is left out (it is
paid per minute of session, not per task, and bd 1.0.5 has none).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from huey import MemoryHuey

from bdp.agent.session import StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, TaskArgs
from bdp.run.deps import RunDeps
from bdp.run.work import work_on
from tests.support.beads import create_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")

#: Shared isolation: the floor, the config, and one look at the tree before and after.
SHARED = [
    "bd update",  # floor: the claim (its answer is the issue: no `bd show`)
    "git cat-file",  # the repo's config, as committed at HEAD
    "git status",  # the tree before the session, to see what else the session touched
    "git status",  # after it: the run's changes, and nothing outside them
    "git add",  # floor
    "git commit",  # floor (its summary line names the commit)
    "bd close",  # floor (the run registry fences it: no `bd show` first)
]
#: Worktree isolation: the floor with the tree made, landed and removed, and what landing needs.
WORKTREE = [
    "bd update",  # floor: the claim
    "git cat-file",  # the config at HEAD, and HEAD's commit
    "git rev-parse",  # the branch checked out and its tip: where the run lands, from where
    "git worktree",  # floor: the run's own tree on its own branch
    "git reset",  # the squash of whatever the agent committed itself
    "git add",  # floor
    "git diff",  # the squash's files (none: NO_CHANGE), kept in the run's record
    "git commit",  # floor (its summary line names the commit)
    "git rev-parse",  # the lander: the target's tip and the main tree's HEAD, one call
    "git merge",  # floor: the fast-forward that lands it
    "bd close",  # floor
    "git worktree",  # floor: the tree removed
    "git branch",  # floor: its landed branch deleted
]
#: Once per process and repository: whether git has an identity to commit as.
ONCE = "git config"


class Spawned:
    """Records every subprocess started while it is on, as ``<program> <subcommand>``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, argv: Any) -> None:
        args = [os.path.basename(str(argv[0])), *(str(a) for a in argv[1:])]
        while len(args) > 2 and args[1] == "-c":  # git's -c settings come before the command
            del args[1:3]
        if args[1:2] != ["heartbeat"]:
            self.calls.append(" ".join(args[:2]))


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    record = Spawned()
    real_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        record(args)
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
    return record


def one_task(repo: Path, settings: Settings, state: State, spawned: Spawned) -> list[str]:
    """The subprocesses of one DONE task for a new issue that writes one new file."""
    issue_id = create_issue(repo, "Add a file")
    agent = StubAgentRunner(files={f"{issue_id}.txt": "work\n"})
    spawned.calls.clear()
    args = TaskArgs(str(repo), issue_id, parent="")  # as enqueue queues it: bd said no parent
    record = work_on(args, "task-1", RunDeps(settings, state, agent))
    assert record.outcome is Outcome.DONE, record.summary
    assert record.commit
    return list(spawned.calls)


@pytest.mark.parametrize(("isolation", "expected"), [("shared", SHARED), ("worktree", WORKTREE)])
def test_a_task_spawns_the_floor_and_one_call_per_feature_that_needs_one(
    repo: Path, tmp_path: Path, spawned: Spawned, isolation: str, expected: list[str]
) -> None:
    # Given a worker process of either isolation
    settings = Settings(home=tmp_path / "home", isolation=isolation)
    state = State(MemoryHuey("task-cost"))

    # When it works through two issues
    first = one_task(repo, settings, state, spawned)
    second = one_task(repo, settings, state, spawned)

    # Then each costs exactly the listed processes; the identity is looked up once per process
    assert second == expected
    assert [call for call in first if call != ONCE] == expected
    assert first.count(ONCE) <= 1  # none if an earlier test of this process looked it up
