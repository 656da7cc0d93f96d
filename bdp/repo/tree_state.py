"""Shared isolation's after-the-fact check: what a session changed in the repo's own tree.

A guard on what an agent may type cannot hold (a script can run any git command), so bdp
compares the tree before and after a session instead: the branch, HEAD, the stash, the
index, and every file that is not the run's own. HEAD may only move forward by bdp's own
commits (other runs landing); a path may only change while another run holds its lock.
Anything else means the session reached outside its files, and bdp will not commit it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from bdp.repo.git import GitError, checked_out_branch, git

#: bd's workspace in the repo: its files change whenever any run claims or closes an issue.
BEADS_DIR = ".beads/"

#: The digest of a path git lists as changed that is not there (deleted).
GONE = "(gone)"


@dataclass(frozen=True)
class TreeState:
    """The parts of a work tree's state a session must leave as they were."""

    branch: str | None
    head: str
    stash: str  # the stash's top commit, or ""
    staged: frozenset[str]
    dirty: Mapping[str, str]  # a changed path (against HEAD) and a digest of its content

    @classmethod
    def of(cls, repo: Path) -> TreeState:
        return cls(
            branch=checked_out_branch(repo),
            head=git(repo, "rev-parse", "HEAD").strip(),
            stash=_stash(repo),
            staged=frozenset(_lines(git(repo, "diff", "--cached", "--name-only", "-z"), "\0")),
            dirty={path: _digest(repo / path) for path in _dirty(repo)},
        )


#: The digest of an empty file (the sandbox leaves such files as mount points).
EMPTY = hashlib.sha256(b"").hexdigest()


def trespasses(
    repo: Path,
    before: TreeState,
    after: TreeState,
    own: Collection[str],
    placeholders: Collection[str] = (),
) -> list[str]:
    """What changed between ``before`` and ``after`` outside the paths in ``own``, in words.

    An empty file named in ``placeholders`` coming or going is a sandbox's mount point (of
    this session or another one), not a change.
    """
    found = []
    if after.branch != before.branch:
        found.append(f"the checked-out branch changed from {before.branch} to {after.branch}")
    moved, committed = _head_moves(repo, before.head, after.head)
    found += moved
    if after.stash != before.stash:
        found.append("the stash changed (git stash)")
    if after.staged != before.staged:
        found.append(f"the index changed: {', '.join(sorted(after.staged ^ before.staged))}")
    allowed = {*own, *committed}
    for path in sorted({*before.dirty, *after.dirty} - allowed):
        if path.startswith(BEADS_DIR):
            continue  # bd's own files change as runs claim and close issues
        was, now = before.dirty.get(path), after.dirty.get(path)
        if was != now and not (path in placeholders and {was, now} <= {None, EMPTY, GONE}):
            found.append(f"{path} changed")
    return found


def _head_moves(repo: Path, old: str, new: str) -> tuple[list[str], set[str]]:
    """Why HEAD's move is not bdp's own (none if it is), and the paths its new commits touch."""
    if old == new:
        return [], set()
    try:
        git(repo, "merge-base", "--is-ancestor", old, new)
    except GitError:
        return [f"HEAD was moved off {old[:12]} (a reset, checkout or rebase)"], set()
    bdp_runs = "%h %(trailers:key=Bdp-Run,valueonly,separator=,)"
    log = git(repo, "log", f"--format={bdp_runs}", f"{old}..{new}")
    foreign = [line.split()[0] for line in log.splitlines() if len(line.split()) < 2]
    found = [f"commits not made by bdp: {', '.join(foreign)}"] if foreign else []
    touched = git(repo, "diff", "--no-ext-diff", "--name-only", old, new)
    return found, set(_lines(touched, "\n"))


def _stash(repo: Path) -> str:
    try:
        return git(repo, "rev-parse", "--quiet", "--verify", "refs/stash").strip()
    except GitError:
        return ""


def _dirty(repo: Path) -> list[str]:
    """Paths whose file differs from HEAD (untracked ones included, ignored ones not)."""
    out = git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames")
    return [entry[3:] for entry in out.split("\0") if len(entry) > 3]


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return GONE


def _lines(text: str, separator: str) -> list[str]:
    return [line for line in text.split(separator) if line]
