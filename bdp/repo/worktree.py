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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from bdp.repo.git import (
    FULL_IDS,
    CommitMessage,
    GitError,
    committed_id,
    fallback_identity,
    git,
    machine_lock,
    repo_lock,
)

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
    return f"bdp/{_issue_part(issue_id)}/{_UNSAFE_REF.sub('_', run_id)}"


def lineage(branch: str) -> str:
    """The name every worktree of one series of runs gets (the first run's id).

    A continuation works in a directory of the same name as the session it resumes, because
    the Claude CLI files a session under its working directory: a new path could not resume it.
    """
    return branch.rsplit("/", 1)[-1].split("-r", 1)[0]


def next_round(branch: str, landing_round: int) -> str:
    """The branch a landing round's work goes on: ``bdp/<issue>/<first run>-r<round>``."""
    return f"{branch.rpartition('/')[0]}/{lineage(branch)}-r{landing_round}"


def tip(repo: Path, branch: str) -> str:
    """The commit ``branch`` points at; GitError when there is no such branch."""
    return git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}").strip()


def create(repo: Path, home: Path, branch: str, base: str) -> WorkTree:
    """A new worktree on a new ``branch`` at ``base``, under ``home``."""
    path = _new_path(home, repo, lineage(branch))
    with repo_lock(repo, home / "locks"):
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), base)
    return WorkTree(repo, path, branch, base)


def attach(repo: Path, home: Path, branch: str, base: str) -> WorkTree:
    """A new worktree on the existing ``branch`` (earlier work), which started at ``base``."""
    path = _new_path(home, repo, lineage(branch))
    with repo_lock(repo, home / "locks"):
        git(repo, "worktree", "add", "--quiet", str(path), branch)
    return WorkTree(repo, path, branch, base)


def replay(tree: WorkTree, work: str) -> tuple[str, ...]:
    """Apply the changes of branch ``work`` (made from an older tip) to ``tree`` uncommitted.

    Conflicting hunks are left with git's conflict markers for the agent to resolve; returns
    the paths that have them. The index is left clean, so every change is the run's own.
    """
    conflicted: tuple[str, ...] = ()
    try:
        git(tree.path, "merge", "--squash", "--no-commit", "--quiet", f"refs/heads/{work}")
    except GitError:
        names = git(tree.path, "diff", "--name-only", "--diff-filter=U")
        conflicted = tuple(sorted(line for line in names.splitlines() if line))
    git(tree.path, "reset", "--quiet")
    return conflicted


def marked(tree: WorkTree, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` that still hold a conflict marker line."""
    left = []
    for path in paths:
        try:
            text = (tree.path / path).read_text(errors="replace")
        except OSError:
            continue  # deleted: resolved by removal
        if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines()):
            left.append(path)
    return left


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


def refresh(tree: WorkTree, target_ref: str, paths: Iterable[str]) -> tuple[WorkTree, list[str]]:
    """Move the run onto the target's newest commit when another run has landed a change to
    one of ``paths`` since the run began; the tree (its new base) and those paths.

    A run locks a file only once it starts editing it; editing its older copy would conflict
    at landing, editing the newest one does not. The move is a fast-forward of the run's
    branch that carries the run's uncommitted work along, which git refuses (and nothing
    changes) when that work touches a file the newer commits change: the landing then deals
    with it. The agent has to read the returned paths again.
    """
    wanted = sorted(set(paths))
    newest = git(tree.path, "rev-parse", "--verify", f"{target_ref}^{{commit}}").strip()
    if not wanted or newest == tree.base:
        return tree, []
    diff = ("diff", "--no-ext-diff", "--name-only", "-z", tree.base, newest, "--", *wanted)
    moved = sorted(set(git(tree.path, *diff).split("\0")) - {""})
    if not moved:
        return tree, []
    try:
        git(tree.path, "merge", "--ff-only", "--quiet", newest)
    except GitError:
        return tree, []
    return replace(tree, base=newest), moved


@dataclass(frozen=True)
class Squashed:
    """A run's work as one commit on its branch, right on top of the run's base."""

    commit: str
    files: tuple[str, ...]  # the paths it changes


def commit_all(tree: WorkTree, message: CommitMessage, skip: Iterable[str] = ()) -> Squashed | None:
    """Squash everything the run changed into one commit on its branch; None if nothing.

    ``skip`` names paths to leave out (what setup commands made before the session).
    """
    env = {**os.environ, **fallback_identity(tree.repo)}
    git(tree.path, "reset", "--soft", tree.base, env=env)
    git(tree.path, "add", "--all", "--", ".", *(f":(exclude,literal){p}" for p in skip), env=env)
    staged = git(tree.path, "diff", "--cached", "--name-only", "-z", "--no-ext-diff")
    files = tuple(sorted(path for path in staged.split("\0") if path))
    if not files:
        return None
    argv = ("commit", "--no-verify", "-F", "-")
    output = git(tree.path, *FULL_IDS, *argv, env=env, feed=message.text())
    return Squashed(committed_id(tree.path, output), files)


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


def delete_branch(repo: Path, branch: str, lock_dir: Path) -> None:
    """Delete one of bdp's branches (its work has landed, or lives on a newer branch)."""
    with repo_lock(repo, lock_dir):
        git(repo, "branch", "--quiet", "-D", branch)


def orphans(home: Path, repo: Path, busy: Callable[[], set[str]], older_than: float) -> list[Path]:
    """Worktrees of ``repo`` whose issue no live run works on (``busy()`` says the issue ids
    of those that do), untouched for ``older_than`` s.

    By issue, not by run: a continuation works in the directory of the run it continues.
    The live runs are asked for after the worktrees are listed: a run registers before it
    makes its worktree, so every listed worktree of a live run is known to be busy.
    """
    folder = worktrees_dir(home, repo)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    branches = _branches_by_path(repo)
    listed = [path for path in sorted(folder.iterdir()) if path.is_dir()]
    in_use = {_issue_part(issue) for issue in busy()}
    return [
        path
        for path in listed
        if _issue_of(branches.get(os.path.realpath(path), "")) not in in_use
        and path.stat().st_mtime < cutoff
    ]


def _issue_part(issue_id: str) -> str:
    return _UNSAFE_REF.sub("_", issue_id).strip("._") or "issue"


def _issue_of(branch: str) -> str | None:
    """The issue part of ``bdp/<issue>/<run>``; None for any other branch (or none)."""
    parts = branch.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "bdp" else None


def _branches_by_path(repo: Path) -> dict[str, str]:
    """Each worktree's real path and the branch it works on: the one checked out, or the one
    a rebase in it is moving (a lander rebasing a run's commit leaves HEAD detached)."""
    listing = git(repo, "worktree", "list", "--porcelain")
    found, path = {}, ""
    for line in listing.splitlines():
        if line.startswith("worktree "):
            path = os.path.realpath(line.removeprefix("worktree "))
        elif line.startswith("branch refs/heads/"):
            found[path] = line.removeprefix("branch refs/heads/")
        elif line == "detached":
            found[path] = _rebasing(Path(path))
    return found


def _rebasing(tree: Path) -> str:
    """The branch a rebase in the worktree ``tree`` is moving; "" when none is."""
    try:
        gitdir = tree / (tree / ".git").read_text().removeprefix("gitdir:").strip()
        for state in ("rebase-merge", "rebase-apply"):
            head = gitdir / state / "head-name"
            if head.is_file():
                return head.read_text().strip().removeprefix("refs/heads/")
    except OSError:
        pass
    return ""


def expired_branches(repo: Path, busy: set[str], older_than: float) -> list[str]:
    """bdp's branches of ``repo`` with no new commit for ``older_than`` s, checked out nowhere,
    whose issue no live run works on: kept work nobody came back for."""
    listing = git(
        repo, "for-each-ref", "--format=%(refname:short) %(committerdate:unix)", "refs/heads/bdp/"
    )
    cutoff = time.time() - older_than
    checked_out = set(_branches_by_path(repo).values())
    in_use = {_issue_part(issue) for issue in busy}
    expired = []
    for line in listing.splitlines():
        branch, _, when = line.rpartition(" ")
        if branch in checked_out or _issue_of(branch) in in_use:
            continue
        if when.isdigit() and int(when) < cutoff:
            expired.append(branch)
    return expired


def disk_used(home: Path) -> tuple[int, int]:
    """How many worktrees there are under ``home``, and the bytes their files take."""
    root, count, size = home / "worktrees", 0, 0
    if not root.is_dir():
        return 0, 0
    for repo_folder in root.iterdir():
        if repo_folder.is_dir():
            count += sum(1 for path in repo_folder.iterdir() if path.is_dir())
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return count, size


def retire(repo: Path, path: Path, lock_dir: Path) -> str | None:
    """Save what a dead run left in its worktree onto its branch, then remove the worktree.

    Returns the branch, which is kept: it holds the work for a person (or a later run); None
    when another sweep retired it first. Sweeps overlap, so one worktree is retired under a
    lock of its own; the dead run's git may have left the worktree's index locked.
    """
    digest = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:16]
    with machine_lock(lock_dir / f"retire-{digest}.lock"):
        if not (path / ".git").exists():
            return None
        _drop_index_lock(path)
        branch = git(path, "rev-parse", "--abbrev-ref", "HEAD").strip()
        if git(path, "status", "--porcelain", "--untracked-files=all").strip():
            env = {**os.environ, **fallback_identity(repo)}
            git(path, "add", "--all", env=env)
            message = CommitMessage(f"work in progress, saved by bdp's janitor ({path.name})")
            git(path, "commit", "--no-verify", "--quiet", "-F", "-", env=env, feed=message.text())
        remove(WorkTree(repo, path, branch, ""), keep_branch=True, lock_dir=lock_dir)
    return branch


def _drop_index_lock(path: Path) -> None:
    """Remove the index lock a killed git left in a dead run's worktree (nobody else uses it)."""
    lock = Path(git(path, "rev-parse", "--git-path", "index.lock").strip())
    (lock if lock.is_absolute() else path / lock).unlink(missing_ok=True)
