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
from bdp.repo.git import CommitMessage, changed_paths, commit_paths, repo_lock
from bdp.repo.tree_state import TreeState, trespasses
from bdp.run.closing import close_landed, note_landing
from bdp.run.job import Job


def snapshot(job: Job) -> None:
    """Note the shared tree's state before the session, to compare with after it."""
    with repo_lock(job.repo, job.deps.settings.home / "locks"):
        job.before = TreeState.of(job.repo)
    job.before_at = time.time()


def commit_shared(job: Job, result: SessionResult) -> str:
    """Commit a DONE run's files and close its issue; the commit, or "" (outcome adjusted)."""
    try:
        if result.outcome is Outcome.DONE and not _held_changes(job, result):
            result.outcome = Outcome.NO_CHANGE
            result.summary = f"said DONE ({result.summary}) but changed no file"
        if result.outcome is Outcome.DONE and not _trespassed(job, result):
            return _commit_and_close(job, result)
    except BdpError as error:
        result.outcome, result.summary = Outcome.FAILED, f"could not finish: {error}"
    return ""


def _held_changes(job: Job, result: SessionResult) -> list[str]:
    """The run's changed files that it holds locks on and that differ from HEAD."""
    held = {lock.path for lock in job.locks.locks() if lock.holder.run_id == job.run.run_id}
    result.changed_files = [path for path in result.changed_files if path in held]
    return changed_paths(job.repo, result.changed_files)


def _trespassed(job: Job, result: SessionResult) -> bool:
    """True (the outcome made FAILED) when the session changed the tree outside its files.

    Files another run holds, or held during the session, are that run's to change.
    """
    if job.before is None:
        return False
    with repo_lock(job.repo, job.deps.settings.home / "locks"):
        after = TreeState.of(job.repo)
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


def _commit_and_close(job: Job, result: SessionResult) -> str:
    """Commit the changed files this run holds locks on, then close the issue."""
    message = CommitMessage.for_run(job.issue.id, job.issue.title, job.run.run_id)
    lock_dir = job.deps.settings.home / "locks"
    pending = note_landing(job, "HEAD")
    try:
        commit = commit_paths(job.repo, result.changed_files, message, lock_dir) or ""
    except BaseException:
        pending.drop(job.deps.settings.home)
        raise
    close_landed(job, result, commit, pending)
    return commit
