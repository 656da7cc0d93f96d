"""A git worktree per run: the agent's own checkout, on its own branch, beside the repo.

Worktrees live in the state directory (``<home>/worktrees/<repo digest>/<run id>``), never
in the repo, on a branch ``bdp/<issue>/<run>`` made from the target branch's tip. Everything
that changes in a run's worktree is the run's own: it is committed as one commit with bdp's
message, whatever the agent did there (Bash edits, its own commits, deletions).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bdp.repo.git import CommitMessage, GitError, fallback_identity, git, repo_lock

_UNSAFE_REF = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WorkTree:
    """One run's worktree: where it is, its branch, and the commit it started from."""

    repo: Path  # the main repository (its .git holds the worktree's metadata)
    path: Path
    branch: str
    base: str  # the target branch's tip the run started from

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()


def worktrees_dir(home: Path, repo: Path) -> Path:
    """Where the worktrees of one repository go."""
    real = os.path.realpath(repo)
    digest = hashlib.sha256(real.encode()).hexdigest()[:16]
    return home / "worktrees" / f"{Path(real).name}-{digest}"


def branch_name(issue_id: str, run_id: str) -> str:
    """``bdp/<issue>/<run>``, with anything git refuses in a ref name replaced."""
    issue = _UNSAFE_REF.sub("_", issue_id).strip("._") or "issue"
    return f"bdp/{issue}/{_UNSAFE_REF.sub('_', run_id)}"


def tip(repo: Path, branch: str) -> str:
    """The commit ``branch`` points at; GitError when there is no such branch."""
    return git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}").strip()


def create(repo: Path, home: Path, branch: str, base: str) -> WorkTree:
    """A new worktree on a new ``branch`` at ``base``, under ``home``."""
    path = _new_path(home, repo, branch.rsplit("/", 1)[-1])
    with repo_lock(repo, home / "locks"):
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), base)
    return WorkTree(repo, path, branch, base)


def attach(repo: Path, home: Path, branch: str, base: str, name: str) -> WorkTree:
    """A new worktree on the existing ``branch`` (earlier work), which started at ``base``."""
    path = _new_path(home, repo, name)
    with repo_lock(repo, home / "locks"):
        git(repo, "worktree", "add", "--quiet", str(path), branch)
    return WorkTree(repo, path, branch, base)


def _new_path(home: Path, repo: Path, name: str) -> Path:
    folder = worktrees_dir(home, repo)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / name


def changes(tree: WorkTree) -> list[str]:
    """Paths that differ from the run's base: its commits and its uncommitted changes."""
    committed = git(tree.path, "diff", "--no-ext-diff", "--name-only", tree.base, "HEAD")
    pending = git(tree.path, "status", "--porcelain", "-z", "--untracked-files=all")
    paths = {line for line in committed.splitlines() if line}
    for entry in pending.split("\0"):
        if len(entry) > 3:
            paths.add(entry[3:])
    return sorted(paths)


def commit_all(tree: WorkTree, message: CommitMessage, skip: Iterable[str] = ()) -> str | None:
    """Squash everything the run changed into one commit on its branch; None if nothing.

    ``skip`` names paths to leave out (what setup commands made before the session).
    """
    env = {**os.environ, **fallback_identity(tree.repo)}
    git(tree.path, "reset", "--soft", tree.base, env=env)
    git(tree.path, "add", "--all", "--", ".", *(f":(exclude,literal){p}" for p in skip), env=env)
    staged = git(tree.path, "diff", "--cached", "--name-only", "--no-ext-diff")
    if not staged.strip():
        return None
    git(tree.path, "commit", "--no-verify", "--quiet", *message.args(), env=env)
    return tree.head()


def remove(tree: WorkTree, keep_branch: bool, lock_dir: Path) -> None:
    """Delete the worktree (and its branch unless kept: it holds unlanded work)."""
    with repo_lock(tree.repo, lock_dir):
        try:
            git(tree.repo, "worktree", "remove", "--force", str(tree.path))
        except GitError:
            shutil.rmtree(tree.path, ignore_errors=True)
            git(tree.repo, "worktree", "prune")
        if not keep_branch:
            git(tree.repo, "branch", "--quiet", "-D", tree.branch)


def orphans(home: Path, repo: Path, live: set[str], older_than: float) -> list[Path]:
    """Worktrees of ``repo`` whose run is not in ``live``, untouched for ``older_than`` s."""
    folder = worktrees_dir(home, repo)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    return [
        path
        for path in sorted(folder.iterdir())
        if path.is_dir() and path.name not in live and path.stat().st_mtime < cutoff
    ]


def retire(repo: Path, path: Path, lock_dir: Path) -> str:
    """Save what a dead run left in its worktree onto its branch, then remove the worktree.

    Returns the branch, which is kept: it holds the work for a person (or a later run).
    """
    branch = git(path, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if git(path, "status", "--porcelain", "--untracked-files=all").strip():
        env = {**os.environ, **fallback_identity(repo)}
        git(path, "add", "--all", env=env)
        message = CommitMessage(f"work in progress, saved by bdp's janitor ({path.name})")
        git(path, "commit", "--no-verify", "--quiet", *message.args(), env=env)
    remove(WorkTree(repo, path, branch, ""), keep_branch=True, lock_dir=lock_dir)
    return branch
