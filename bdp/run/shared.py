"""Shared isolation's end of a run: commit exactly the run's files in the repo's own tree, and
only when the session touched nothing else there.

The tree is compared with how it was before the session (`bdp.repo.tree_state`): a changed
branch, HEAD, stash or index, or a changed file the run holds no lock on, means the session
reached outside its files, and nothing is committed.
"""

from __future__ import annotations

import time

from bdp.agent.mount_points import PLACEHOLDERS
from bdp.agent.session import SessionResult
from bdp.errors import BdpError
from bdp.models import Outcome
from bdp.repo.git import CommitMessage, commit_changed, repo_lock
from bdp.repo.pending import PendingClose
from bdp.repo.tree_state import TreeState, trespasses
from bdp.run.closing import close_landed, note_landing
from bdp.run.job import Job


def snapshot(job: Job) -> None:
    """Note the shared tree's state before the session, to compare with after it."""
    with repo_lock(job.repo, job.deps.settings.home / "locks"):
        job.before = TreeState.of(job.repo)
    job.before_at = time.time()


def commit_shared(job: Job, result: SessionResult) -> str:
    """Commit a DONE run's files and close its issue; the commit, or "" (outcome adjusted).

    One look at the tree (`TreeState`) says both what the run changed and whether it reached
    outside its files; the repo's lock is held from that look to the commit, and let go
    before bd is asked to close.
    """
    try:
        with repo_lock(job.repo, job.deps.settings.home / "locks"):
            after = TreeState.of(job.repo)
            changed = _held_changes(job, result, after)
            if result.outcome is Outcome.DONE and not changed:
                result.outcome = Outcome.NO_CHANGE
                result.summary = f"said DONE ({result.summary}) but changed no file"
            if result.outcome is not Outcome.DONE or _trespassed(job, result, after):
                return ""
            commit, pending = _commit(job, changed)
        close_landed(job, result, commit, pending)
        return commit
    except BdpError as error:
        result.outcome, result.summary = Outcome.FAILED, f"could not finish: {error}"
    return ""


def _held_changes(job: Job, result: SessionResult, after: TreeState) -> list[str]:
    """The run's changed files that it holds locks on and that differ from HEAD."""
    held = {lock.path for lock in job.locks.locks() if lock.holder.run_id == job.run.run_id}
    result.changed_files = [path for path in result.changed_files if path in held]
    return [path for path in result.changed_files if path in after.dirty]


def _trespassed(job: Job, result: SessionResult, after: TreeState) -> bool:
    """True (the outcome made FAILED) when the session changed the tree outside its files.

    Files another run holds, or held during the session, are that run's to change.
    """
    if job.before is None:
        return False
    others = {lock.path for lock in job.locks.locks()} | job.locks.released_since(job.before_at)
    own = {*result.changed_files, *others}
    found = trespasses(job.repo, job.before, after, own, PLACEHOLDERS)
    if found:
        result.outcome = Outcome.FAILED
        result.summary = (
            "not committed: the shared work tree changed outside this run's files "
            f"({'; '.join(found)}); check them before the next run"
        )
        job.transcript.line(f"bdp: {result.summary}")
    return bool(found)


def _commit(job: Job, changed: list[str]) -> tuple[str, PendingClose]:
    """Commit the changed files this run holds locks on (the repo's lock held), after noting
    the landing; the commit and the note, which the close drops."""
    message = CommitMessage.for_run(job.issue.id, job.issue.title, job.run.run_id)
    pending = note_landing(job, "HEAD")
    try:
        return commit_changed(job.repo, changed, message), pending
    except BaseException:
        pending.drop(job.deps.settings.home)
        raise
