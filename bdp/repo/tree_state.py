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

from bdp.repo.git import GitError, git

#: bd's workspace in the repo: its files change whenever any run claims or closes an issue.
BEADS_DIR = ".beads/"

#: The digest of a path git lists as changed that is not there (deleted).
GONE = "(gone)"


@dataclass(frozen=True)
class TreeState:
    """The parts of a work tree's state a session must leave as they were."""

    branch: str | None
    head: str
    stash: str  # how many entries the stash has ("" for none)
    staged: frozenset[str]
    dirty: Mapping[str, str]  # a changed path (against HEAD) and a digest of its content

    @classmethod
    def of(cls, repo: Path) -> TreeState:
        """The tree's state, from one `git status` (branch, HEAD, stash, index and files)."""
        status = git(repo, "status", *_STATUS_FLAGS)
        head, branch, stash = "", None, ""
        staged, dirty = set(), set()
        for entry in status.split("\0"):
            kind, _, rest = entry.partition(" ")
            if kind == "#":
                key, _, value = rest.partition(" ")
                head = value if key == "branch.oid" else head
                branch = value if key == "branch.head" and value != "(detached)" else branch
                stash = value if key == "stash" else stash
            elif kind in _CHANGED:
                path = rest.split(" ", _CHANGED[kind])[-1]
                dirty.add(path)
                if rest[0] != ".":  # X, the index against HEAD
                    staged.add(path)
            elif kind == "?":
                dirty.add(rest)
        dirty.discard("")
        return cls(branch, head, stash, frozenset(staged), {p: _digest(repo / p) for p in dirty})


#: `git status` as TreeState reads it: porcelain v2 with the branch and stash headers, every
#: untracked file, renames as a deletion and an addition.
_STATUS_FLAGS = (
    "--porcelain=v2",
    "--branch",
    "--show-stash",
    "-z",
    "--untracked-files=all",
    "--no-renames",
)
#: Porcelain v2 entries of changed paths, and the fields before the path in each.
_CHANGED = {"1": 7, "u": 9}


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
    # One listing: each new commit as "\0<hash> <Bdp-Run trailer>", then the paths it touches
    bdp_runs = "%x00%h %(trailers:key=Bdp-Run,valueonly,separator=,)"
    log = git(repo, "log", "--no-renames", "--name-only", f"--format={bdp_runs}", f"{old}..{new}")
    foreign, touched = [], set()
    for commit in log.split("\0")[1:]:
        header, _, paths = commit.partition("\n")
        if len(header.split()) < 2:
            foreign.append(header.strip())
        touched.update(_lines(paths, "\n"))
    found = [f"commits not made by bdp: {', '.join(foreign)}"] if foreign else []
    return found, touched


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return GONE


def _lines(text: str, separator: str) -> list[str]:
    return [line for line in text.split(separator) if line]
