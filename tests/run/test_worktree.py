"""`work_on` in worktree isolation: each run in its own worktree, its commit landed on the
target branch by the lander, and "closed" meaning landed.

The stub agent stands in for the session (it writes files and runs commands in the tree it is
given); bd is the stand-in, git is real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from huey import MemoryHuey

from bdp.agent.session import SessionRequest, SessionResult, StubAgentRunner
from bdp.broker.claims import RedisClaims
from bdp.broker.state import State
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.queue.janitor import Janitor
from bdp.repo.locks import LockTable
from bdp.repo.pending import pending_closes
from bdp.repo.worktree import retire
from bdp.run.deps import RunDeps
from bdp.run.work import work_on
from tests.support.beads import BIN_DIR, create_issue, run_bd_ok, show_issue
from tests.support.processes import wait_for

pytestmark = pytest.mark.usefixtures("stand_in_bd")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def commit_file(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-qm", f"add {name}")


def comments_of(repo: Path, issue_id: str) -> list[str]:
    return [c["text"] for c in json.loads(run_bd_ok(repo, "comments", issue_id, "--json"))]


def bdp_branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--list", "bdp/*", "--format=%(refname:short)").split()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="worktree")


@pytest.fixture
def state() -> State:
    return State(MemoryHuey("test-worktree"))


def run(
    repo: Path, settings: Settings, state: State, agent: Any, args: TaskArgs | None = None
) -> RunRecord:
    deps = RunDeps(settings, state, agent, requeue=None)
    return work_on(args or TaskArgs(str(repo), "?"), "task-1", deps)


def issue(repo: Path, title: str = "Add a greeting") -> TaskArgs:
    return TaskArgs(str(repo), create_issue(repo, title))


def test_a_done_run_works_in_its_own_worktree_and_lands_before_it_is_closed(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a ready issue and an agent that adds a file
    args = issue(repo)
    agent = StubAgentRunner(files={"hello.py": "print('hi')\n"}, summary="added hello")

    # When a worker runs it
    record = run(repo, settings, state, agent, args)

    # Then the session worked in a worktree under the state dir, not in the repo
    [request] = agent.requests
    assert request.repo.is_relative_to(settings.home / "worktrees")
    # And its commit is on main (the main tree fast-forwarded), with bdp's message
    assert record.outcome is Outcome.DONE
    assert record.landed
    assert git(repo, "rev-parse", "HEAD").strip() == record.commit
    assert (repo / "hello.py").read_text() == "print('hi')\n"
    assert git(repo, "log", "-1", "--format=%s").strip() == f"{args.issue_id}: Add a greeting"
    assert f"Bdp-Issue: {args.issue_id}" in git(repo, "log", "-1", "--format=%b")
    # And only then the issue was closed; the worktree and its branch are gone
    shown = show_issue(repo, args.issue_id)
    assert (shown["status"], shown["close_reason"]) == ("closed", "added hello")
    assert not request.repo.exists()
    assert bdp_branches(repo) == []
    assert LockTable(settings.home, repo).locks() == []


def test_destructive_git_in_one_agents_tree_cannot_touch_another_agents_work(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given agent B mid-session with uncommitted work, while agent A, in its own worktree,
    # runs every destructive command that wrecked shared trees
    a_args, b_args = issue(repo, "A wrecks"), issue(repo, "B builds")

    def wreck(request: SessionRequest) -> None:
        script = (
            "git stash -u; git checkout -f; git checkout -- .; git reset --hard; "
            "git clean -fdx; rm -rf ./*; git add ./ && git commit -qm mine || true"
        )
        subprocess.run(["bash", "-lc", script], cwd=request.repo, capture_output=True, check=False)

    def build_while_a_wrecks(request: SessionRequest) -> None:
        (request.repo / "b.py").write_text("b = 1\n")
        wrecker = StubAgentRunner(Outcome.FAILED, "wrecked everything", on_run=wreck)
        run(repo, settings, state, wrecker, a_args)

    b_agent = StubAgentRunner(summary="built b", on_run=build_while_a_wrecks)
    b_agent.files = {"b2.py": "b2 = 2\n"}

    # When B finishes
    record = run(repo, settings, state, b_agent, b_args)

    # Then B's issue landed with exactly its own work, and the repo is intact
    assert record.outcome is Outcome.DONE
    assert record.landed
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "b.py",
        "b2.py",
    ]
    assert (repo / "README.md").read_text() == "# test repo\n"
    assert show_issue(repo, b_args.issue_id)["status"] == "closed"
    assert show_issue(repo, a_args.issue_id)["status"] == "open"


def test_a_humans_uncommitted_line_in_the_main_tree_is_neither_committed_nor_lost(
    repo: Path, settings: Settings, state: State
) -> None:
    (repo / "README.md").write_text("# test repo\nhuman's unsaved line\n")
    agent = StubAgentRunner(files={"feature.py": "x = 1\n"})

    record = run(repo, settings, state, agent, issue(repo))

    assert record.landed
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["feature.py"]
    assert (repo / "README.md").read_text() == "# test repo\nhuman's unsaved line\n"


def test_an_agent_emptying_its_trees_bdp_toml_does_not_change_its_gate(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a gate committed on main
    commit_file(repo, ".bdp.toml", 'gate = ["test -f gate-ok"]\n')
    results: list[bool] = []

    def empty_the_config_then_gate(request: SessionRequest) -> None:
        (request.repo / ".bdp.toml").write_text("")
        assert request.gate is not None
        results.append(request.gate().passed)

    # When the agent empties its tree's .bdp.toml and never writes gate-ok
    run(repo, settings, state, StubAgentRunner(on_run=empty_the_config_then_gate), issue(repo))

    # Then the gate still ran the committed check, and it failed
    assert results == [False]


def test_a_failed_runs_files_never_reach_the_next_issue_and_its_branch_is_kept(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a run that leaves a broken file behind and fails
    first = issue(repo, "fails")
    broken = StubAgentRunner(Outcome.FAILED, "gave up", files={"broken.py": "syntax error(\n"})
    failed = run(repo, settings, state, broken, first)

    # When the next issue runs
    seen: list[bool] = []
    nxt = StubAgentRunner(
        on_run=lambda r: seen.append((r.repo / "broken.py").exists()), files={"ok.py": "ok\n"}
    )
    record = run(repo, settings, state, nxt, issue(repo, "works"))

    # Then it never saw the broken file, and neither did the repo
    assert failed.outcome is Outcome.FAILED
    assert seen == [False]
    assert record.landed
    assert not (repo / "broken.py").exists()
    # And the failed work is kept on its branch, named in the issue's comment
    [branch] = bdp_branches(repo)
    assert "broken.py" in git(repo, "show", "--name-only", "--format=", branch)
    [comment] = comments_of(repo, first.issue_id)
    assert f"The work is kept on branch {branch}." in comment
    assert show_issue(repo, first.issue_id)["status"] == "open"


def test_an_unfinished_run_continues_on_its_branch_and_lands_as_one_commit(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a session that runs out of room half way
    args = issue(repo)
    queued: list[TaskArgs] = []

    def half(request: SessionRequest) -> None:
        (request.repo / "half.py").write_text("half\n")

    unfinished = StubAgentRunner(Outcome.UNFINISHED, "ran out of turns", on_run=half)

    def requeue(again: TaskArgs) -> str:
        queued.append(again)
        return "task-2"

    deps = RunDeps(settings, state, unfinished, requeue=requeue)
    first = work_on(args, "task-1", deps)

    # Then the continuation is queued on the branch holding the half-done work
    assert first.outcome is Outcome.UNFINISHED
    [again] = queued
    assert again.branch in bdp_branches(repo)
    assert again.files == ()
    assert not (repo / "half.py").exists()

    # When the continuation runs and finishes the work
    seen: list[bool] = []

    def finish(request: SessionRequest) -> None:
        seen.append((request.repo / "half.py").read_text() == "half\n")
        (request.repo / "whole.py").write_text("whole\n")

    record = run(repo, settings, state, StubAgentRunner(on_run=finish), again)

    # Then it saw the earlier work, and both files land in one commit
    assert seen == [True]
    assert record.landed
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "half.py",
        "whole.py",
    ]
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "2"
    assert bdp_branches(repo) == []


def test_setup_runs_in_each_new_worktree_and_what_it_makes_is_not_committed(
    repo: Path, settings: Settings, state: State
) -> None:
    commit_file(repo, ".bdp.toml", 'setup = ["echo built > setup-output.txt"]\n')
    seen: list[str] = []
    agent = StubAgentRunner(
        on_run=lambda r: seen.append((r.repo / "setup-output.txt").read_text()),
        files={"feature.py": "x = 1\n"},
    )

    record = run(repo, settings, state, agent, issue(repo))

    assert seen == ["built\n"]
    assert record.landed
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["feature.py"]


def test_a_failing_setup_ends_the_run_before_any_session_with_its_output(
    repo: Path, settings: Settings, state: State
) -> None:
    commit_file(repo, ".bdp.toml", 'setup = ["echo no network; exit 3"]\n')
    agent = StubAgentRunner(files={"feature.py": "x = 1\n"})
    args = issue(repo)

    record = run(repo, settings, state, agent, args)

    assert record.outcome is Outcome.FAILED
    assert "setup command failed: echo no network; exit 3" in record.summary
    assert agent.requests == []
    [comment] = comments_of(repo, args.issue_id)
    assert "no network" in comment
    assert bdp_branches(repo) == []


def test_a_landing_that_main_refuses_resets_the_issue_and_keeps_the_work(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a human's unsaved edit of the very file the agent changes
    (repo / "README.md").write_text("# human's unsaved title\n")
    args = issue(repo)
    agent = StubAgentRunner(files={"README.md": "# agent's title\n"})

    record = run(repo, replace(settings, land_wait=0), state, agent, args)

    assert record.outcome is Outcome.FAILED
    assert not record.landed
    assert "uncommitted changes" in record.summary
    assert (repo / "README.md").read_text() == "# human's unsaved title\n"
    assert show_issue(repo, args.issue_id)["status"] == "open"
    [branch] = bdp_branches(repo)
    assert "agent's title" in git(repo, "show", f"{branch}:README.md")


def test_a_hook_planted_in_the_repo_never_runs_anywhere_in_a_run(
    repo: Path, settings: Settings, state: State
) -> None:
    marker = repo.parent / "hook-ran"
    for hook in ("pre-commit", "post-commit", "post-checkout", "post-rewrite", "post-merge"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {marker}\n")
        path.chmod(0o755)

    record = run(repo, settings, state, StubAgentRunner(files={"x.py": "x\n"}), issue(repo))

    assert record.landed
    assert not marker.exists()


def test_a_session_result_is_passed_through_unchanged_when_it_is_not_done(
    repo: Path, settings: Settings, state: State
) -> None:
    class Blocked:
        def run(self, request: SessionRequest) -> SessionResult:
            return SessionResult(Outcome.BLOCKED, "needs a decision", turns=1)

    args = issue(repo)
    record = run(repo, settings, state, Blocked(), args)

    assert (record.outcome, record.landed) == (Outcome.BLOCKED, False)
    assert bdp_branches(repo) == []  # nothing was written: no branch to keep
    assert show_issue(repo, args.issue_id)["status"] == "open"


def test_the_repo_chooses_worktree_isolation_and_the_task_can_override_it(
    repo: Path, tmp_path: Path, state: State
) -> None:
    # Given a repo that asks for worktrees, and a worker that sets no isolation itself
    commit_file(repo, ".bdp.toml", 'isolation = "worktree"\n')
    settings = Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60)
    in_tree = StubAgentRunner(files={"a.py": "a\n"})
    shared = StubAgentRunner(files={"b.py": "b\n"})

    # When one task takes the default and another asks for shared isolation
    run(repo, settings, state, in_tree, issue(repo, "worktree"))
    run(repo, settings, state, shared, replace(issue(repo, "shared"), isolation="shared"))

    # Then the first worked in a worktree, the second in the repo itself
    assert in_tree.requests[0].repo.is_relative_to(settings.home / "worktrees")
    assert shared.requests[0].repo == repo


# --- landing rounds: conflicts and gate failures go back to the agent ---------------------


def requeue_into(queued: list[TaskArgs]) -> Any:
    def requeue(again: TaskArgs) -> str:
        queued.append(again)
        return f"task-{len(queued) + 1}"

    return requeue


def conflicting_run(
    repo: Path, settings: Settings, state: State, args: TaskArgs
) -> tuple[RunRecord, TaskArgs, str]:
    """A run whose edit of greet.py conflicts with a commit that lands on main meanwhile."""
    queued: list[TaskArgs] = []

    def edit_while_main_moves(request: SessionRequest) -> None:
        (request.repo / "greet.py").write_text("greeting = 'hello from the agent'\n")
        commit_file(repo, "greet.py", "greeting = 'hello from a human'\n")

    agent = StubAgentRunner(summary="greets", on_run=edit_while_main_moves)
    deps = RunDeps(settings, state, agent, requeue=requeue_into(queued))
    record = work_on(args, "task-1", deps)
    [again] = queued
    return record, again, agent.requests[0].repo.name


def test_a_landing_conflict_goes_back_to_the_session_at_the_new_tip_and_lands_resolved(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given an agent's edit that conflicts with a commit landing on main while it worked
    commit_file(repo, "greet.py", "greeting = 'hello'\n")
    args = issue(repo)
    record, again, first_tree = conflicting_run(repo, settings, state, args)

    # Then the issue is not closed: the session is sent back, resuming, at the new tip
    assert record.outcome is Outcome.UNFINISHED
    assert not record.landed
    assert "conflicts with the target branch (greet.py)" in record.summary
    assert (again.land_round, again.continuation) == (1, 0)
    assert again.branch in bdp_branches(repo)
    assert "greet.py" in again.prior
    assert show_issue(repo, args.issue_id)["status"] == "open"

    # When the resumed session resolves the conflict markers it finds in the file
    seen: list[str] = []

    def resolve(request: SessionRequest) -> None:
        seen.append(request.landing)
        seen.append((request.repo / "greet.py").read_text())
        (request.repo / "greet.py").write_text("greeting = 'hello from both'\n")
        seen.append(request.repo.name)

    resolver = StubAgentRunner(summary="greets, resolved", on_run=resolve)
    landed = run(repo, settings, state, resolver, again)

    # Then it was told which file conflicts, saw both sides, worked where the session lives
    landing, text, tree = seen
    assert "greet.py" in landing
    assert "conflict markers" in landing
    assert "<<<<<<<" in text
    assert "hello from the agent" in text
    assert "hello from a human" in text
    assert tree == first_tree
    # And the resolution landed on top of the human's commit, the issue closed, no branch left
    assert landed.outcome is Outcome.DONE
    assert landed.landed
    assert (repo / "greet.py").read_text() == "greeting = 'hello from both'\n"
    assert git(repo, "log", "-2", "--format=%s").split("\n")[1] == "add greet.py"
    assert show_issue(repo, args.issue_id)["status"] == "closed"
    assert bdp_branches(repo) == []


def test_conflict_markers_left_in_place_send_the_work_back_until_the_rounds_run_out(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a repo allowing one landing round, and a conflicting run
    commit_file(repo, ".bdp.toml", "land = { rounds = 1 }\n")
    commit_file(repo, "greet.py", "greeting = 'hello'\n")
    args = issue(repo)
    _, again, _ = conflicting_run(repo, settings, state, args)

    # When the next round says DONE without resolving anything
    queued: list[TaskArgs] = []
    lazy = StubAgentRunner(summary="done, honest")
    deps = RunDeps(settings, state, lazy, requeue=requeue_into(queued))
    record = work_on(again, "task-2", deps)

    # Then nothing with conflict markers landed; the issue is reset with the branch named
    assert record.outcome is Outcome.FAILED
    assert "conflict markers left in greet.py" in record.summary
    assert "not landed after 1 landing rounds" in record.summary
    assert queued == []
    assert (repo / "greet.py").read_text() == "greeting = 'hello from a human'\n"
    assert show_issue(repo, args.issue_id)["status"] == "open"
    kept = [b for b in bdp_branches(repo) if b.endswith("-r1")]
    assert kept
    assert any(kept[0] in comment for comment in comments_of(repo, args.issue_id))


def test_a_gate_failing_on_the_new_tip_goes_back_with_its_output(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a gate that fails when both halves exist without a join, and a human landing
    # one half while the agent writes the other
    gate = "test ! -f a.py -o ! -f b.py -o -f join.py || { echo 'a and b need join.py'; exit 1; }"
    commit_file(repo, ".bdp.toml", f"gate = [{json.dumps(gate)}]\n")
    args = issue(repo)
    queued: list[TaskArgs] = []

    def write_b_while_a_lands(request: SessionRequest) -> None:
        (request.repo / "b.py").write_text("b = 1\n")
        commit_file(repo, "a.py", "a = 1\n")

    agent = StubAgentRunner(on_run=write_b_while_a_lands)
    record = work_on(args, "task-1", RunDeps(settings, state, agent, requeue=requeue_into(queued)))

    # Then the landing re-ran the gate, it failed, and its output goes back to the agent
    assert record.outcome is Outcome.UNFINISHED
    [again] = queued
    assert "a and b need join.py" in again.prior

    # When the next round adds the join
    fixer = StubAgentRunner(files={"join.py": "join = 1\n"})
    landed = run(repo, settings, state, fixer, again)

    assert "a and b need join.py" in fixer.requests[0].landing
    assert landed.landed
    assert {"a.py", "b.py", "join.py"} <= set(git(repo, "ls-files").split())


def test_a_landing_waits_for_a_persons_edit_saying_so_then_lands_once_it_is_put_away(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a person's unsaved edit of the file the agent changes, and a patient lander
    (repo / "README.md").write_text("# human's unsaved title\n")
    args = issue(repo)
    agent = StubAgentRunner(files={"README.md": "# agent's title\n"})
    seen: list[str] = []

    def person_stashes_once_status_says_why() -> None:
        wait_for(
            lambda: "landing: waiting" in " ".join(a.tool for a in state.activities().values())
        )
        seen.extend(a.tool for a in state.activities().values())
        git(repo, "stash")

    person = threading.Thread(target=person_stashes_once_status_says_why)
    person.start()

    # When the run finishes while the edit is still there
    record = run(repo, replace(settings, land_wait=30), state, agent, args)
    person.join()

    # Then status said the landing waits on the main tree; once put away, the work landed
    assert any(f"uncommitted changes in {repo}" in tool for tool in seen)
    assert record.landed
    assert (repo / "README.md").read_text() == "# agent's title\n"
    assert "human's unsaved title" in git(repo, "stash", "show", "-p")


def test_with_a_remote_a_run_starts_from_the_remotes_tip_and_lands_there(
    repo: Path, settings: Settings, state: State, tmp_path: Path
) -> None:
    # Given a remote whose main is ahead of the local clone's
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    clone = tmp_path / "elsewhere"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    commit_file(clone, "ahead.py", "ahead = 1\n")
    git(clone, "push", "-q", "origin", "main")
    args = issue(repo)
    seen: list[bool] = []
    agent = StubAgentRunner(
        files={"hello.py": "hi = 1\n"}, on_run=lambda r: seen.append((r.repo / "ahead.py").exists())
    )

    # When a run lands with BDP_REMOTE=origin
    record = run(repo, replace(settings, remote="origin"), state, agent, args)

    # Then it worked on the remote's tip, its commit is on origin's main, and it is closed
    assert seen == [True]
    assert record.landed
    assert git(bare, "rev-parse", "main").strip() == record.commit
    assert show_issue(repo, args.issue_id)["status"] == "closed"


# --- landed, then bd close fails: never a reset, never a redo ------------------------------


def flaky_bd(tmp_path: Path, failures: int) -> tuple[str, Path]:
    """A bd whose next ``failures`` closes fail (the count is in the returned file)."""
    count = tmp_path / "close-failures"
    count.write_text(str(failures))
    wrapper = tmp_path / "flaky-bd"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{count}")\n'
        'if [ "$1" = close ] && [ "$n" -gt 0 ]; then\n'
        f'  echo $((n - 1)) > "{count}"\n'
        '  echo "Error: database is locked" >&2; exit 1\n'
        "fi\n"
        f'exec "{BIN_DIR / "bd"}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper), count


def test_a_bd_close_that_fails_once_after_landing_is_tried_again(
    repo: Path, settings: Settings, state: State, tmp_path: Path
) -> None:
    bd, _ = flaky_bd(tmp_path, failures=1)
    args = issue(repo)

    record = run(
        repo, replace(settings, bd=bd), state, StubAgentRunner(files={"a.py": "a\n"}), args
    )

    assert record.outcome is Outcome.DONE
    assert record.landed
    assert show_issue(repo, args.issue_id)["status"] == "closed"
    assert pending_closes(settings.home) == []


def test_a_landed_run_whose_close_keeps_failing_is_closed_by_the_janitor_not_redone(
    repo: Path, settings: Settings, state: State, tmp_path: Path
) -> None:
    # Given a bd that refuses every close for now
    bd, count = flaky_bd(tmp_path, failures=100)
    flaky = replace(settings, bd=bd)
    args = issue(repo)

    # When a run lands its work
    record = run(repo, flaky, state, StubAgentRunner(files={"a.py": "a\n"}), args)

    # Then it is DONE and landed, not reset: the issue waits, still claimed, for the janitor
    assert record.outcome is Outcome.DONE
    assert record.landed
    assert "bd close failed" in record.summary
    assert "the janitor closes it" in record.summary
    assert show_issue(repo, args.issue_id)["status"] == "in_progress"
    assert [p.issue_id for p in pending_closes(settings.home)] == [args.issue_id]

    # When bd works again and the janitor sweeps (even long after: the claim looks orphaned)
    count.write_text("0")
    queued: list[TaskArgs] = []
    janitor = Janitor(replace(flaky, stale_after=0), MemoryHuey("j"), state, requeue_into(queued))
    report = janitor.sweep()

    # Then it closed the issue for the landed commit, and queued no redo
    assert report.closed_landed == [args.issue_id]
    assert report.reset == []
    assert queued == []
    assert show_issue(repo, args.issue_id)["status"] == "closed"
    assert pending_closes(settings.home) == []
    assert git(repo, "log", "--format=%s").count(f"{args.issue_id}: Add a greeting") == 1


def test_a_file_locked_after_another_run_landed_a_change_to_it_is_edited_fresh(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a run that started before another run's change to notes.txt landed
    commit_file(repo, "notes.txt", "one\n")
    first, second = issue(repo, "Add two"), issue(repo, "Add three")
    seen: list[list[str]] = []

    def append(line: str) -> Any:
        def edit(request: SessionRequest) -> None:
            request.locks.acquire(["notes.txt"], request.holder, wait=0)
            assert request.freshen is not None
            seen.append(request.freshen(["notes.txt"]))
            path = request.repo / "notes.txt"
            path.write_text(path.read_text() + line)

        return edit

    def second_edits_after_first_lands(request: SessionRequest) -> None:
        run(repo, settings, state, StubAgentRunner(on_run=append("two\n")), first)
        append("three\n")(request)

    # When it locks the file and edits it only after that
    record = run(
        repo, settings, state, StubAgentRunner(on_run=second_edits_after_first_lands), second
    )

    # Then its copy was brought up to date first, so it landed at once, with both lines
    assert seen == [[], ["notes.txt"]]
    assert record.landed, record.summary
    assert (repo / "notes.txt").read_text() == "one\ntwo\nthree\n"


def take_away(repo: Path, state: State, request: SessionRequest, issue_id: str) -> None:
    """What the janitor and another worker do to a run they took for dead: unregister it,
    reset its issue, and claim the issue for another run."""
    state.unregister(request.run_id)
    run_bd_ok(repo, "update", issue_id, "--status", "open", "--assignee", "")
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "bdp/elsewhere/1-w")


def test_a_run_the_janitor_took_away_lands_nothing_and_frees_what_it_holds(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a session during which the janitor takes the run for dead: it unregisters the run,
    # resets the issue, and another worker claims it
    args = issue(repo)

    def taken_away(request: SessionRequest) -> None:
        take_away(repo, state, request, args.issue_id)

    agent = StubAgentRunner(files={"mine.py": "mine\n"}, on_run=taken_away)
    assert state.mark_queued(str(repo), args.issue_id, "task-1")
    main = git(repo, "rev-parse", "main")

    record = run(repo, settings, state, agent, args)

    # Then it ends SUPERSEDED without landing or touching bd, and holds nothing any more
    assert record.outcome is Outcome.SUPERSEDED
    assert git(repo, "rev-parse", "main") == main
    assert show_issue(repo, args.issue_id)["assignee"] == "bdp/elsewhere/1-w"
    assert LockTable(settings.home, repo).locks() == []
    assert state.runs() == []
    assert state.marker(str(repo), args.issue_id) is None


def test_a_run_registered_too_late_after_its_claim_asks_bd_before_it_finishes(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a run whose claim is in doubt (it registered later than half of stale_after, here
    # 0 s, after claiming), and which the janitor reset as an orphan claim while it worked
    args = issue(repo)

    def reset_as_orphan(request: SessionRequest) -> None:
        run_bd_ok(repo, "update", args.issue_id, "--status", "open", "--assignee", "")
        run_bd_ok(repo, "update", args.issue_id, "--claim", "--actor", "bdp/elsewhere/1-w")

    agent = StubAgentRunner(files={"mine.py": "mine\n"}, on_run=reset_as_orphan)
    main = git(repo, "rev-parse", "main")

    record = run(repo, replace(settings, stale_after=0), state, agent, args)

    # Then bd's answer decides: it ends SUPERSEDED and lands nothing
    assert record.outcome is Outcome.SUPERSEDED
    assert git(repo, "rev-parse", "main") == main
    assert show_issue(repo, args.issue_id)["assignee"] == "bdp/elsewhere/1-w"


# --- a continuation on another machine, through the shared remote -------------------------


def two_clones_of_one_remote(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``repo`` pushed to a bare remote, and a second clone of it (another machine's)."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    beta = tmp_path / "beta"
    git(tmp_path, "clone", "-q", str(bare), str(beta))
    return bare, beta


def unfinished_half_way(repo: Path, settings: Settings, state: State) -> TaskArgs:
    """Run an issue whose session writes half.py and runs out of turns; its continuation."""
    queued: list[TaskArgs] = []

    def half(request: SessionRequest) -> None:
        (request.repo / "half.py").write_text("half\n")

    agent = StubAgentRunner(Outcome.UNFINISHED, "ran out of turns", on_run=half)
    deps = RunDeps(settings, state, agent, requeue=requeue_into(queued))
    assert work_on(issue(repo), "task-1", deps).outcome is Outcome.UNFINISHED
    [again] = queued
    return again


def test_a_continuation_on_another_machine_fetches_the_kept_branch_and_lands_it_once(
    repo: Path, settings: Settings, state: State, tmp_path: Path
) -> None:
    # Given an unfinished run on alpha, landing through a shared remote
    bare, beta = two_clones_of_one_remote(repo, tmp_path)
    alpha_settings = replace(settings, remote="origin")
    again = unfinished_half_way(repo, alpha_settings, state)

    # Then its kept branch is on the remote, out of the remote's branch list
    assert git(bare, "for-each-ref", "--format=%(refname)", "refs/bdp").split() == [
        f"refs/bdp/kept/{again.branch}"
    ]
    assert git(bare, "branch", "--format=%(refname:short)").split() == ["main"]

    # When beta, whose clone never had that branch, runs the continuation
    shutil.copytree(repo / ".beads", beta / ".beads")
    seen: list[bool] = []

    def finish(request: SessionRequest) -> None:
        seen.append((request.repo / "half.py").exists())
        (request.repo / "whole.py").write_text("whole\n")

    beta_settings = replace(alpha_settings, home=tmp_path / "beta-home")
    record = run(
        beta, beta_settings, state, StubAgentRunner(on_run=finish), replace(again, repo=str(beta))
    )

    # Then beta worked on alpha's half, landed both files in one commit, and dropped the copy
    assert seen == [True]
    assert record.landed
    assert sorted(git(bare, "show", "--name-only", "--format=", "main").split()) == [
        "half.py",
        "whole.py",
    ]
    assert git(bare, "for-each-ref", "refs/bdp").strip() == ""


def test_a_continuation_whose_branch_no_machine_shared_starts_afresh_from_the_target(
    repo: Path, settings: Settings, state: State, tmp_path: Path
) -> None:
    # Given alpha's continuation, whose branch the remote does not have (alpha had no remote)
    _bare, beta = two_clones_of_one_remote(repo, tmp_path)
    again = unfinished_half_way(repo, settings, state)
    shutil.copytree(repo / ".beads", beta / ".beads")
    seen: list[tuple[bool, str]] = []

    def finish(request: SessionRequest) -> None:
        seen.append(((request.repo / "half.py").exists(), request.resume))
        (request.repo / "whole.py").write_text("whole\n")

    # When beta runs it
    beta_settings = replace(settings, remote="origin", home=tmp_path / "beta-home")
    resuming = replace(again, repo=str(beta), resume="sess-1")
    record = run(beta, beta_settings, state, StubAgentRunner(on_run=finish), resuming)

    # Then it started a new session at the target's tip and landed its own work
    assert seen == [(False, "")]
    assert record.landed
    assert git(beta, "show", "--name-only", "--format=", "origin/main").split() == ["whole.py"]
    log_text = Path(record.log_path).read_text()
    assert f"the earlier work on {again.branch} is not on this machine or the remote" in log_text


def test_landing_through_a_remote_on_redis_waits_for_the_turn_and_gives_it_back(
    repo: Path, settings: Settings, state: State, tmp_path: Path, redis_url: str
) -> None:
    # Given a turn another machine's lander holds for half a second after the session ends
    bare, _beta = two_clones_of_one_remote(repo, tmp_path)
    client = redis.Redis.from_url(redis_url)
    claims = RedisClaims(client, "bdp", ttl=30)
    other = claims.take_turn(str(repo), "main", "beta:2/run-b")
    assert other is not None
    before = git(bare, "rev-parse", "main").strip()
    at_release: list[str] = []

    def beta_done() -> None:
        at_release.append(git(bare, "rev-parse", "main").strip())
        claims.release(other)

    def write_then_let_beta_finish(request: SessionRequest) -> None:
        (request.repo / "hello.py").write_text("hi = 1\n")
        threading.Timer(0.5, beta_done).start()

    # When the run finishes and lands through the remote
    agent = StubAgentRunner(on_run=write_then_let_beta_finish)
    deps = RunDeps(replace(settings, remote="origin"), state, agent, claims=claims)
    record = work_on(issue(repo), "task-1", deps)

    # Then nothing landed while beta held the turn; then the run landed, and gave its turn back
    assert at_release == [before]
    assert record.landed
    assert git(bare, "rev-parse", "main").strip() == record.commit
    assert int(client.get("bdp.bdp.lease-token") or 0) == 3  # beta's turn, the lease, its turn
    assert client.keys("bdp.bdp.land:*") == []


def test_a_run_taken_away_whose_worktree_the_janitor_retired_ends_superseded_cleanly(
    repo: Path, settings: Settings, state: State
) -> None:
    # Given a run the janitor took for dead (its machine was cut off), whose worktree this
    # machine's janitor then retired as nobody's while the session still ran
    args = issue(repo)

    def taken_away_and_retired(request: SessionRequest) -> None:
        take_away(repo, state, request, args.issue_id)
        (request.repo / "mine.py").write_text("mine\n")
        retire(repo, request.repo, settings.home / "locks")

    agent = StubAgentRunner(on_run=taken_away_and_retired)
    main = git(repo, "rev-parse", "main")

    record = run(repo, settings, state, agent, args)

    # Then it still ends SUPERSEDED with nothing landed, its branch kept with the work
    assert record.outcome is Outcome.SUPERSEDED
    assert git(repo, "rev-parse", "main") == main
    [branch] = bdp_branches(repo)
    assert git(repo, "show", f"{branch}:mine.py") == "mine\n"
