"""Landing: a run's commit onto the target branch, one lander per repo and branch at a time
(on this machine through an OS lock; across machines sharing a Redis, through a ``turn``).

The lander rebases the run's commit onto the branch's current tip, runs the gate again when
the tip moved since the run's own gate passed, then moves the branch: where the main work
tree has it checked out, with a fast-forward that git refuses when it would overwrite a
human's uncommitted change; otherwise with a compare-and-swap `git update-ref`. The branch
is always either before or after the commit, never in between.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from bdp.repo.fast_forward import fast_forward, recover
from bdp.repo.git import (
    GitError,
    checked_out_branch,
    fallback_identity,
    git,
    head_of,
    machine_lock,
    repo_lock,
)
from bdp.repo.quality_gate import GateResult
from bdp.repo.worktree import Squashed, WorkTree, tip

#: Times a landing starts over when someone else moved the branch meanwhile.
MOVE_ATTEMPTS = 5
#: Why a fast-forward of the main work tree was refused: a person's edit is in the way.
TREE_BUSY = (
    "the main work tree has uncommitted changes to files the landing changes; "
    "commit or stash them and the landing goes through"
)


#: Why a run may not land any more: its lease lapsed and another run took the issue.
LEASE_LOST = "the run's lease on the issue lapsed and another run took it"


@dataclass(frozen=True)
class Landing:
    """How a landing went: landed (on ``commit``), or why not."""

    landed: bool
    commit: str = ""
    reason: str = ""
    conflicts: tuple[str, ...] = ()
    gate: GateResult | None = None  # the gate run on the rebased commit, when it ran
    details: str = ""
    tree_busy: bool = False  # a person's uncommitted edit in the main tree is in the way
    onto: str = ""  # the tip the commit was rebased onto and gated against, when it was

    @property
    def regated(self) -> bool:
        return self.gate is not None


@dataclass
class Lander:
    """Lands runs' commits on ``branch`` of ``repo``."""

    repo: Path
    branch: str
    lock_dir: Path
    gate: Callable[[Path], GateResult] | None = None  # runs the gate in a tree
    attempts: int = field(default=MOVE_ATTEMPTS)
    remote: str | None = None  # land by pushing there (the push is the compare-and-swap)
    still_ours: Callable[[], bool] | None = None  # the run may still land (its fencing token)
    turn: Callable[[], AbstractContextManager[None]] | None = None  # one lander across machines

    def land(self, tree: WorkTree, passed_on: str, squashed: Squashed | None = None) -> Landing:
        """Put ``tree``'s commit on the branch; ``passed_on`` is the tip its gate ran against.

        ``squashed``: the commit the tree's branch has just been given, right on its base (so
        the lander need not ask git where the branch is, nor rebase it onto its own base).
        """
        with self._lock(), self.turn() if self.turn else nullcontext():
            if self._journal.exists() and self._checked_out():
                recover(self.repo, self._journal)
            known = _Known(squashed.commit, tree.base) if squashed else None
            for _ in range(self.attempts):
                result, known = self._try(tree, passed_on, known)
                if result is not None:
                    return result
        return Landing(False, reason=f"{self.branch} kept moving; gave up after retries")

    def _try(
        self, tree: WorkTree, passed_on: str, known: _Known | None
    ) -> tuple[Landing | None, _Known | None]:
        """One attempt, and what is known of the tree's commit after it; no landing when the
        branch moved under us (a human commit) and it is worth another go."""
        where = self._where()
        on_top = known is not None and known.parent == where.tip
        conflicts = () if on_top else _rebase(tree, where.tip)
        if conflicts:
            reason = "conflicts with the target branch"
            return Landing(False, reason=reason, conflicts=conflicts), None
        gate = None
        if self.gate is not None and where.tip != passed_on:
            gate = self.gate(tree.path)
            if not gate.passed:
                reason = f"the gate fails on the target's new tip: {gate.command}"
                return Landing(False, reason=reason, gate=gate, details=gate.output), None
        commit = known.commit if on_top and known is not None else tree.head()
        if not on_top or gate is not None:  # time passed: the branch may have moved meanwhile
            where = replace(where, head="")
        if self.still_ours is not None and not self.still_ours():
            return Landing(False, reason=LEASE_LOST), None
        refused = self._push(where.tip, commit) if self.remote else self._move(where, commit)
        known = _Known(commit, where.tip)
        if refused is None:
            return Landing(True, commit=commit, gate=gate), known
        if refused == "moved":
            return None, known
        return Landing(False, reason=refused, tree_busy=refused == TREE_BUSY, onto=where.tip), known

    def _where(self) -> _Where:
        """The target's tip, and (landing locally) where the main tree stands: one git call."""
        if self.remote:
            return _Where(fetch_tip(self.repo, self.remote, self.branch, self.lock_dir))
        head = head_of(self.repo, self.branch)
        return _Where(head.tips[0], head.branch == self.branch, head.commit)

    def _move(self, where: _Where, new: str) -> str | None:
        """Move the branch from ``where.tip`` to ``new``; None when done, else why not
        ("moved": it is no longer there)."""
        if where.checked_out:
            return self._fast_forward(where.tip, new, where.head)
        try:
            git(self.repo, "update-ref", f"refs/heads/{self.branch}", new, where.tip)
        except GitError:
            return "moved"
        return None

    def _push(self, old: str, new: str) -> str | None:
        """Push ``new`` as the remote branch, only while it is still at ``old``; then bring the
        local branch along where that is a fast-forward. The push and the tracking ref's
        update hold the clone's lock, as fetches do (git locks that ref for each)."""
        lease = f"--force-with-lease=refs/heads/{self.branch}:{old}"
        target = f"{new}:refs/heads/{self.branch}"
        with repo_lock(self.repo, self.lock_dir):
            try:
                git(self.repo, "push", "--quiet", lease, str(self.remote), target)
            except GitError as error:
                if any(word in str(error) for word in ("stale info", "rejected", "fetch first")):
                    return "moved"
                return f"the push to {self.remote} failed: {error}"
            git(self.repo, "update-ref", _tracking(str(self.remote), self.branch), new)
        self._follow(new)
        return None

    def _follow(self, new: str) -> None:
        """Move the local branch to the landed commit when that is a fast-forward (a person's
        own local commits, or edits in the way, leave it where it is: the work is landed)."""
        local = tip(self.repo, self.branch)
        try:
            git(self.repo, "merge-base", "--is-ancestor", local, new)
        except GitError:
            return
        self._move(_Where(local, self._checked_out()), new)

    def _checked_out(self) -> bool:
        return checked_out_branch(self.repo) == self.branch

    def _fast_forward(self, old: str, new: str, head: str = "") -> str | None:
        """Fast-forward the main tree from ``old``; ``head``: where its HEAD was just seen
        ("" when time has passed since, and git is asked again)."""
        if (head or git(self.repo, "rev-parse", "HEAD").strip()) != old:
            return "moved"
        try:
            fast_forward(self.repo, new, self._journal, old)
        except GitError as error:
            if git(self.repo, "rev-parse", "HEAD").strip() != old:
                return "moved"
            if "would be overwritten" in str(error):
                return TREE_BUSY
            return f"the main work tree could not be fast-forwarded: {error}"
        return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One lander per repo and branch on this machine (every consumer honours it)."""
        with machine_lock(self.lock_dir / f"land-{self._digest}.lock"):
            yield

    @property
    def _digest(self) -> str:
        key = f"{os.path.realpath(self.repo)}\0{self.branch}".encode()
        return hashlib.sha256(key).hexdigest()[:16]

    @property
    def _journal(self) -> Path:
        """Where a fast-forward of the main work tree notes what it is doing."""
        return self.lock_dir / f"land-{self._digest}.journal"


@dataclass(frozen=True)
class _Known:
    """The commit a run's branch is at, and the tip it sits right on top of."""

    commit: str
    parent: str


@dataclass(frozen=True)
class _Where:
    """The target branch's tip; landing locally, whether the main tree has it checked out,
    and where that tree's HEAD was seen ("" if not looked at)."""

    tip: str
    checked_out: bool = False
    head: str = ""


def _rebase(tree: WorkTree, onto: str) -> tuple[str, ...]:
    """Rebase the run's branch onto ``onto``; the conflicted paths (rebase undone) or ()."""
    if git(tree.path, "merge-base", "HEAD", onto).strip() == onto:
        return ()  # already on top of it
    try:
        git(
            tree.path, "rebase", "--quiet", onto, env={**os.environ, **fallback_identity(tree.repo)}
        )
    except GitError:
        conflicted = git(tree.path, "diff", "--name-only", "--diff-filter=U").split()
        git(tree.path, "rebase", "--abort")
        return tuple(sorted(conflicted)) or ("(rebase failed)",)
    return ()


def fetch_tip(repo: Path, remote: str | None, branch: str, lock_dir: Path) -> str:
    """The target branch's tip: fetched from ``remote`` first when there is one. A fetch
    holds the clone's lock: two at once fail on git's lock of the tracking ref, and one
    beside a worktree being added or removed can read that worktree's HEAD half made."""
    if remote is None:
        return tip(repo, branch)
    tracking = _tracking(remote, branch)
    try:
        with repo_lock(repo, lock_dir):
            git(repo, "fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}")
    except GitError as error:
        raise GitError(
            f"cannot fetch {branch} from {remote}: {error}",
            f"check that the remote {remote!r} is reachable and has the branch {branch}",
        ) from None
    return git(repo, "rev-parse", "--verify", f"{tracking}^{{commit}}").strip()


def _tracking(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"
