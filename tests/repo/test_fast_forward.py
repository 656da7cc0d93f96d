"""bdp.repo.fast_forward: the main work tree's fast-forward, undone when a lander dies half way.

The state a killed `git merge --ff-only` leaves (some files new, one half written, the index
lock, the branch old) is built directly, so the recovery is tested exactly; then real lander
processes are killed at spread-out moments, and whatever moment it was, the branch is before
or after the landing and the next lander lands on a clean tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bdp.repo.git import CommitMessage
from bdp.repo.landing import Lander
from bdp.repo.worktree import WorkTree, branch_name, commit_all, create, tip

FILES = 40


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Human")
    git(path, "config", "user.email", "human@example.invalid")
    for n in range(FILES):
        (path / f"f{n}.txt").write_text("old\n" * 50)
    (path / "gone.txt").write_text("deleted by the landing\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "initial")
    return path


def run_tree(repo: Path, home: Path, run_id: str, text: str) -> WorkTree:
    """A run that rewrites every file, adds one and deletes one."""
    tree = create(repo, home, branch_name("t-1", run_id), tip(repo, "main"))
    for n in range(FILES):
        (tree.path / f"f{n}.txt").write_text(text * 50)
    (tree.path / "added.txt").write_text("added by the landing\n")
    (tree.path / "gone.txt").unlink(missing_ok=True)
    assert commit_all(tree, CommitMessage.for_run("t-1", "rewrite", run_id)) is not None
    return tree


def lander(repo: Path, home: Path) -> Lander:
    return Lander(repo, "main", home / "locks")


def half_done_fast_forward(
    repo: Path, home: Path, new: str, done: int, index_written: bool = False
) -> None:
    """What a `git merge --ff-only` to ``new`` killed after ``done`` files leaves behind
    (with ``index_written``, killed after git wrote the new index, before it moved the branch)."""
    old = git(repo, "rev-parse", "HEAD").strip()
    journal = home / "locks" / f"land-{lander(repo, home)._digest}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"old": old, "new": new, "marker": "dead", "at": time.time()}))
    for n in range(done):
        (repo / f"f{n}.txt").write_text(git(repo, "show", f"{new}:f{n}.txt"))
    whole = git(repo, "show", f"{new}:f{done}.txt")
    (repo / f"f{done}.txt").write_text(whole[: len(whole) // 2])  # the file being written
    (repo / "added.txt").write_text("added by the landing\n")
    (repo / "gone.txt").unlink()
    if index_written:
        git(repo, "read-tree", new)
    else:
        (repo / ".git" / "index.lock").write_text("")


@pytest.mark.parametrize("index_written", [False, True])
def test_the_next_lander_undoes_a_half_done_fast_forward_then_lands_its_own(
    repo: Path, tmp_path: Path, index_written: bool
) -> None:
    # Given a landing killed half way through the main tree's fast-forward
    home = tmp_path / "home"
    before = tip(repo, "main")
    dead = run_tree(repo, home, "dead", "dead run\n")
    half_done_fast_forward(repo, home, dead.head(), FILES // 2, index_written)
    assert git(repo, "status", "--porcelain", "--untracked-files=no").strip()

    # When the next run lands
    tree = run_tree(repo, home, "next", "next run\n")
    landing = lander(repo, home).land(tree, tree.base)

    # Then the half-done one was undone (nothing of it is left), and the next one landed
    assert landing.landed
    assert git(repo, "rev-parse", "main^").strip() == before
    assert git(repo, "status", "--porcelain").strip() == ""
    assert (repo / "f0.txt").read_text() == "next run\n" * 50
    assert not (repo / ".git" / "index.lock").exists()
    assert list((home / "locks").glob("*.journal")) == []


def test_a_persons_edit_made_before_the_landing_is_left_as_it_was(
    repo: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    dead = run_tree(repo, home, "dead", "dead run\n")
    (repo / f"f{FILES - 1}.txt").write_text("a person's edit\n")
    an_hour_ago = time.time() - 3600
    os.utime(repo / f"f{FILES - 1}.txt", (an_hour_ago, an_hour_ago))
    half_done_fast_forward(repo, home, dead.head(), done=3)

    lander(repo, home).land(run_tree(repo, home, "next", "next run\n"), tip(repo, "main"))

    assert (repo / f"f{FILES - 1}.txt").read_text() == "a person's edit\n"
    assert (repo / "f0.txt").read_text() == "old\n" * 50
    assert (repo / "gone.txt").exists()


LANDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bdp.repo.landing import Lander
    from bdp.repo.worktree import WorkTree
    repo, home, path, branch, base = sys.argv[1:]
    tree = WorkTree(Path(repo), Path(path), branch, base)
    print("landing", flush=True)
    Lander(Path(repo), "main", Path(home) / "locks").land(tree, base)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.04, 0.06, 0.08, 0.12])
def test_a_lander_killed_at_any_moment_leaves_main_before_or_after_and_the_next_lands(
    repo: Path, tmp_path: Path, delay: float
) -> None:
    # Given a lander process (and its git) killed outright ``delay`` s into a landing
    home = tmp_path / "home"
    before = tip(repo, "main")
    dead = run_tree(repo, home, "dead", "dead run\n")
    argv = [sys.executable, "-c", LANDER, str(repo), str(home), str(dead.path), dead.branch]
    with subprocess.Popen(
        [*argv, dead.base], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        assert process.stdout is not None
        process.stdout.readline()
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    # Then main is at either side of the dead landing, never elsewhere
    assert tip(repo, "main") in (before, dead.head())

    # And the next lander lands its own run on a clean tree
    tree = run_tree(repo, home, "next", "next run\n")
    landing = lander(repo, home).land(tree, tree.base)
    assert landing.landed
    assert git(repo, "status", "--porcelain").strip() == ""
    assert (repo / "f0.txt").read_text() == "next run\n" * 50
