"""bdp.repo.worktree and bdp.repo.landing on real git: a worktree per run, and one lander
that puts its commit on the target branch without ever breaking it or a human's edits."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bdp.repo.git import CommitMessage, GitError
from bdp.repo.landing import LEASE_LOST, Lander
from bdp.repo.quality_gate import GateResult
from bdp.repo.worktree import WorkTree, branch_name, changes, commit_all, create, remove, tip


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def is_landed(repo: Path, commit: str, branch: str) -> bool:
    """True when ``commit`` is reachable from ``branch``."""
    reachable = subprocess.run(["git", "merge-base", "--is-ancestor", commit, branch], cwd=repo)
    return reachable.returncode == 0


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Human")
    git(path, "config", "user.email", "human@example.invalid")
    (path / "notes.txt").write_text("one\ntwo\nthree\nfour\nfive\nsix\n")
    (path / "README.md").write_text("# repo\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "initial")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run_tree(repo: Path, home: Path, run_id: str, edits: dict[str, str]) -> WorkTree:
    """A run's worktree from main's tip, with ``edits`` written and committed as bdp does."""
    tree = create(repo, home, branch_name("t-1", run_id), tip(repo, "main"))
    for name, text in edits.items():
        (tree.path / name).write_text(text)
    assert commit_all(tree, CommitMessage.for_run("t-1", "change", run_id)) is not None
    return tree


def lander(repo: Path, home: Path, gate: Callable[[Path], GateResult] | None = None) -> Lander:
    return Lander(repo, "main", home / "locks", gate)


def test_a_worktree_lives_in_the_state_dir_on_its_own_branch_from_the_tip(
    repo: Path, home: Path
) -> None:
    tree = create(repo, home, branch_name("t-1/x y", "run1"), tip(repo, "main"))

    assert tree.path.is_relative_to(home / "worktrees")
    assert tree.branch == "bdp/t-1_x_y/run1"
    assert git(tree.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == tree.branch
    assert (tree.path / "notes.txt").read_text().startswith("one")
    assert changes(tree) == []


def test_everything_a_run_changed_becomes_one_commit_with_bdps_message(
    repo: Path, home: Path
) -> None:
    # Given a run that edits, deletes, adds, and even commits on its own
    tree = create(repo, home, branch_name("t-1", "run1"), tip(repo, "main"))
    (tree.path / "notes.txt").write_text("changed\n")
    (tree.path / "README.md").unlink()
    (tree.path / "new.py").write_text("x = 1\n")
    git(tree.path, "add", "new.py")
    git(tree.path, "commit", "-qm", "the agent's own commit")
    (tree.path / "later.py").write_text("y = 2\n")

    commit = commit_all(tree, CommitMessage.for_run("t-1", "change", "run1"), skip=["later.py"])

    assert commit is not None
    assert git(tree.path, "rev-list", "--count", f"{tree.base}..HEAD").strip() == "1"
    assert git(tree.path, "log", "-1", "--format=%s").strip() == "t-1: change"
    names = git(tree.path, "show", "--name-status", "--format=", "HEAD").split()
    assert names == ["D", "README.md", "A", "new.py", "M", "notes.txt"]  # later.py skipped


def test_a_run_lands_by_fast_forward_where_main_is_checked_out(repo: Path, home: Path) -> None:
    tree = run_tree(repo, home, "run1", {"new.py": "x = 1\n"})

    landing = lander(repo, home).land(tree, passed_on=tree.base)

    assert landing.landed
    assert tip(repo, "main") == landing.commit
    assert (repo / "new.py").read_text() == "x = 1\n"  # the main work tree has it too
    assert is_landed(repo, landing.commit, "main")
    assert not landing.regated


def test_a_humans_uncommitted_change_is_never_overwritten(repo: Path, home: Path) -> None:
    # Given a human editing notes.txt in the main tree, and a run that changed it too
    tree = run_tree(repo, home, "run1", {"notes.txt": "agent\n"})
    (repo / "notes.txt").write_text("human, unsaved\n")
    before = tip(repo, "main")

    # When the lander tries to land
    landing = lander(repo, home).land(tree, passed_on=tree.base)

    # Then it refuses, saying why; the branch and the human's change are untouched
    assert not landing.landed
    assert "uncommitted changes" in landing.reason
    assert tip(repo, "main") == before
    assert (repo / "notes.txt").read_text() == "human, unsaved\n"


def test_a_humans_uncommitted_change_elsewhere_stays_while_the_run_lands(
    repo: Path, home: Path
) -> None:
    tree = run_tree(repo, home, "run1", {"new.py": "x = 1\n"})
    (repo / "README.md").write_text("# repo, edited by a human\n")

    landing = lander(repo, home).land(tree, passed_on=tree.base)

    assert landing.landed
    assert (repo / "README.md").read_text() == "# repo, edited by a human\n"
    assert git(repo, "status", "--porcelain").split() == ["M", "README.md"]
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["new.py"]


def test_where_main_is_not_checked_out_the_branch_moves_by_compare_and_swap(
    repo: Path, home: Path
) -> None:
    git(repo, "switch", "-q", "-c", "elsewhere")
    tree = run_tree(repo, home, "run1", {"new.py": "x = 1\n"})

    landing = lander(repo, home).land(tree, passed_on=tree.base)

    assert landing.landed
    assert tip(repo, "main") == landing.commit
    assert not (repo / "new.py").exists()  # the checked-out branch is untouched


def test_two_runs_on_adjacent_lines_both_land_and_the_gate_runs_again_on_the_moved_tip(
    repo: Path, home: Path
) -> None:
    # Given two runs from the same tip, editing different lines of one file
    first = run_tree(repo, home, "run1", {"notes.txt": "ONE\ntwo\nthree\nfour\nfive\nsix\n"})
    second = run_tree(repo, home, "run2", {"notes.txt": "one\ntwo\nthree\nfour\nfive\nSIX\n"})
    gated: list[Path] = []

    def gate(path: Path) -> GateResult:
        gated.append(path)
        return GateResult(True)

    # When both land, one after the other
    one = lander(repo, home, gate).land(first, passed_on=first.base)
    two = lander(repo, home, gate).land(second, passed_on=second.base)

    # Then both are on main, the second rebased onto the first, and gated once more
    assert one.landed
    assert two.landed
    assert (repo / "notes.txt").read_text() == "ONE\ntwo\nthree\nfour\nfive\nSIX\n"
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "3"
    assert gated == [second.path]
    assert two.regated
    assert not one.regated


def test_two_runs_on_the_same_lines_conflict_and_nothing_moves(repo: Path, home: Path) -> None:
    first = run_tree(repo, home, "run1", {"notes.txt": "mine\n"})
    second = run_tree(repo, home, "run2", {"notes.txt": "yours\n"})
    assert lander(repo, home).land(first, passed_on=first.base).landed
    before = tip(repo, "main")

    landing = lander(repo, home).land(second, passed_on=second.base)

    assert not landing.landed
    assert landing.conflicts == ("notes.txt",)
    assert tip(repo, "main") == before
    assert git(second.path, "status", "--porcelain") == ""  # the rebase was undone
    assert (second.path / "notes.txt").read_text() == "yours\n"  # the work is still there


def test_a_gate_failing_on_the_new_tip_keeps_the_run_off_the_branch(repo: Path, home: Path) -> None:
    first = run_tree(repo, home, "run1", {"a.py": "a\n"})
    second = run_tree(repo, home, "run2", {"b.py": "b\n"})
    assert lander(repo, home).land(first, passed_on=first.base).landed
    before = tip(repo, "main")

    def failing(_path: Path) -> GateResult:
        return GateResult(False, "pytest -q", "1 failed")

    landing = lander(repo, home, failing).land(second, passed_on=second.base)

    assert not landing.landed
    assert "pytest -q" in landing.reason
    assert landing.details == "1 failed"
    assert tip(repo, "main") == before


def test_landers_in_parallel_take_turns_and_every_run_lands(repo: Path, home: Path) -> None:
    trees = [run_tree(repo, home, f"run{n}", {f"file{n}.py": f"{n}\n"}) for n in range(4)]
    results: dict[int, bool] = {}

    def land(n: int) -> None:
        results[n] = lander(repo, home).land(trees[n], passed_on=trees[n].base).landed

    threads = [threading.Thread(target=land, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == {0: True, 1: True, 2: True, 3: True}
    assert sorted(p.name for p in repo.glob("file*.py")) == [f"file{n}.py" for n in range(4)]
    assert git(repo, "status", "--porcelain") == ""


def test_removing_a_worktree_keeps_the_branch_only_when_asked(repo: Path, home: Path) -> None:
    kept = run_tree(repo, home, "run1", {"a.py": "a\n"})
    dropped = run_tree(repo, home, "run2", {"b.py": "b\n"})

    remove(kept, keep_branch=True, lock_dir=home / "locks")
    remove(dropped, keep_branch=False, lock_dir=home / "locks")

    assert not kept.path.exists()
    assert not dropped.path.exists()
    branches = git(repo, "branch", "--list", "bdp/*", "--format=%(refname:short)").split()
    assert branches == [kept.branch]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


# --- landing through a remote: the push is the compare-and-swap ------------------------------


@pytest.fixture
def origin(repo: Path, tmp_path: Path) -> Path:
    """A bare remote of ``repo`` named origin, holding its main."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    return bare


def push_from_elsewhere(origin: Path, tmp_path: Path, name: str, text: str) -> str:
    """Another machine's clone lands a commit on origin's main; its id."""
    clone = tmp_path / f"elsewhere-{name}"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    (clone / name).write_text(text)
    git(clone, "add", name)
    git(clone, "-c", "user.name=Other", "-c", "user.email=o@example.invalid", "commit", "-qm", name)
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD").strip()


def test_with_a_remote_the_run_is_pushed_and_the_local_branch_follows(
    repo: Path, home: Path, origin: Path
) -> None:
    tree = run_tree(repo, home, "run1", {"feature.py": "x = 1\n"})

    landing = Lander(repo, "main", home / "locks", remote="origin").land(tree, tree.base)

    assert landing.landed
    assert git(origin, "rev-parse", "main").strip() == landing.commit
    assert git(repo, "rev-parse", "HEAD").strip() == landing.commit
    assert (repo / "feature.py").read_text() == "x = 1\n"


def test_a_lander_that_stalls_while_another_machine_lands_is_fenced_by_the_push(
    repo: Path, home: Path, origin: Path, tmp_path: Path
) -> None:
    # Given a run whose landing re-runs the gate, and while that gate runs (the lander
    # stalls) another machine pushes to origin's main
    tree = run_tree(repo, home, "run1", {"feature.py": "x = 1\n"})
    theirs = push_from_elsewhere(origin, tmp_path, "first.py", "first\n")
    pushed: list[str] = []

    def slow_gate(path: Path) -> GateResult:
        if not pushed:
            pushed.append(push_from_elsewhere(origin, tmp_path, "second.py", "second\n"))
        return GateResult(True, "gate", "")

    # When it lands through origin
    landing = Lander(repo, "main", home / "locks", slow_gate, remote="origin").land(tree, tree.base)

    # Then its stale push was refused, and it landed on top of both other commits instead
    assert landing.landed
    history = git(origin, "log", "--format=%H", "main").split()
    assert history[0] == landing.commit
    assert {theirs, pushed[0]} <= set(history)
    assert git(origin, "show", "--name-only", "--format=", "main").split() == ["feature.py"]


def test_an_unreachable_remote_is_a_clear_error(repo: Path, home: Path, tmp_path: Path) -> None:
    git(repo, "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    tree = run_tree(repo, home, "run1", {"feature.py": "x = 1\n"})

    with pytest.raises(GitError, match="cannot fetch main from origin"):
        Lander(repo, "main", home / "locks", remote="origin").land(tree, tree.base)
    assert git(repo, "rev-parse", "HEAD").strip() == tree.base


def test_a_run_whose_lease_lapsed_during_its_gate_does_not_push(
    repo: Path, home: Path, origin: Path, tmp_path: Path
) -> None:
    # Given a landing that re-runs the gate, during which the run's lease is taken elsewhere
    tree = run_tree(repo, home, "run1", {"feature.py": "x = 1\n"})
    theirs = push_from_elsewhere(origin, tmp_path, "first.py", "first\n")
    lease = {"ours": True}

    def gate(path: Path) -> GateResult:
        lease["ours"] = False
        return GateResult(True, "gate", "")

    landing = Lander(
        repo, "main", home / "locks", gate, remote="origin", still_ours=lambda: lease["ours"]
    ).land(tree, tree.base)

    # Then nothing was pushed: the remote is as the other machine left it
    assert not landing.landed
    assert landing.reason == LEASE_LOST
    assert git(origin, "rev-parse", "main").strip() == theirs


def test_a_run_that_holds_its_lease_lands_through_the_remote(
    repo: Path, home: Path, origin: Path
) -> None:
    tree = run_tree(repo, home, "run1", {"feature.py": "x = 1\n"})
    asked: list[bool] = []

    def still_ours() -> bool:
        asked.append(True)
        return True

    landing = Lander(repo, "main", home / "locks", remote="origin", still_ours=still_ours).land(
        tree, tree.base
    )

    assert landing.landed
    assert asked  # the lease was checked before the push
    assert git(origin, "rev-parse", "main").strip() == landing.commit
