"""Shared isolation's check after each session: the repo's own tree must have changed only in
the run's locked files, or nothing is committed (`bdp.run.shared`, `bdp.repo.tree_state`).

Real git and the bd stand-in; the stub agent runs real shell commands in the shared tree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from huey import MemoryHuey

from bdp.agent.session import SessionRequest, StubAgentRunner
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.repo.locks import Holder, LockTable
from bdp.run.deps import RunDeps
from bdp.run.work import work_on
from tests.support.beads import create_issue, show_issue

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="shared")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def shell(script: str) -> StubAgentRunner:
    """An agent that writes its own file, then runs ``script`` in the shared tree."""

    def run_script(request: SessionRequest) -> None:
        subprocess.run(["bash", "-c", script], cwd=request.repo, check=False, capture_output=True)

    return StubAgentRunner(files={"mine.py": "mine = 1\n"}, on_run=run_script)


def run(repo: Path, settings: Settings, agent: StubAgentRunner) -> tuple[RunRecord, str]:
    issue_id = create_issue(repo, "Add mine")
    deps = RunDeps(settings, State(MemoryHuey("shared")), agent)
    return work_on(TaskArgs(str(repo), issue_id), "task-1", deps), issue_id


def human_edit(repo: Path) -> None:
    """A person's unsaved line in the tracked README."""
    (repo / "README.md").write_text("# test repo\nmy unsaved line\n")


@pytest.mark.parametrize(
    ("script", "seen"),
    [
        ("git stash", "stash changed"),
        ("git checkout -- README.md", "README.md changed"),
        ("sed -i s/unsaved/stolen/ README.md", "README.md changed"),
        ("git add README.md", "the index changed: README.md"),
        ("git commit -qam sneaky", "commits not made by bdp"),
        ("git checkout -qb elsewhere", "branch changed from main to elsewhere"),
        ("echo x > ../outside-the-locks.txt; echo y > unlocked.txt", "unlocked.txt changed"),
    ],
)
def test_a_session_that_touches_anything_but_its_files_commits_nothing(
    repo: Path, settings: Settings, script: str, seen: str
) -> None:
    # Given a person's uncommitted line in the shared tree
    human_edit(repo)
    head = git(repo, "rev-parse", "HEAD")

    # When a session writes its own file, and also runs a command reaching beyond it
    record, issue_id = run(repo, settings, shell(script))

    # Then bdp commits nothing and says what changed; the issue goes back to the backlog
    assert record.outcome is Outcome.FAILED
    assert seen in record.summary
    assert "outside this run's files" in record.summary
    assert record.commit == ""
    assert git(repo, "log", "--all", "--format=%s").count("Add mine") == 0
    assert show_issue(repo, issue_id)["status"] == "open"
    if "commit" not in script:
        assert git(repo, "rev-parse", "HEAD") == head


def test_other_runs_files_and_commits_and_sandbox_mount_points_are_not_trespasses(
    repo: Path, settings: Settings
) -> None:
    # Given a person's unsaved line, and while our session works: another run locks, edits and
    # commits its own file, a third holds a lock on a file it is editing, a sandbox leaves
    # an empty .env behind
    human_edit(repo)
    table = LockTable(settings.home, repo)

    def others_work(request: SessionRequest) -> None:
        table.acquire(["theirs.py"], Holder.here("other-run", "t-x"), wait=0)
        (repo / "theirs.py").write_text("theirs = 1\n")
        git(repo, "add", "theirs.py")
        git(repo, "commit", "-qm", "t-x: theirs", "--trailer", "Bdp-Run: other-run")
        table.release_all("other-run")
        table.acquire(["busy.py"], Holder.here("third-run", "t-y"), wait=0)
        (repo / "busy.py").write_text("busy = 1\n")
        (repo / ".env").write_text("")

    agent = StubAgentRunner(files={"mine.py": "mine = 1\n"}, on_run=others_work)
    record, _ = run(repo, settings, agent)

    # Then our run commits exactly its file, and the person's line is still unsaved
    assert record.outcome is Outcome.DONE, record.summary
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["mine.py"]
    assert "my unsaved line" in (repo / "README.md").read_text()


def test_a_file_another_run_edited_and_gave_back_meanwhile_is_not_a_trespass(
    repo: Path, settings: Settings
) -> None:
    # Given another run that edits a file under its lock and fails, leaving it uncommitted
    table = LockTable(settings.home, repo)

    def other_run_fails(request: SessionRequest) -> None:
        table.acquire(["left.py"], Holder.here("failed-run", "t-z"), wait=0)
        (repo / "left.py").write_text("half\n")
        table.release_all("failed-run")

    record, _ = run(
        repo, settings, StubAgentRunner(files={"mine.py": "1\n"}, on_run=other_run_fails)
    )

    assert record.outcome is Outcome.DONE, record.summary
