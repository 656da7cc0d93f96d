"""Closing an issue whose work is on its target branch, which survives bd failing and the
worker dying: a note (`bdp.repo.pending`) is written before the commit lands and dropped only
once bd has closed the issue. Until then the janitor, not a redo, finishes the job.

A landed commit is never followed by a reset: when `bd close` keeps failing, the run still
ends DONE (landed), and says that the janitor will close the issue.

A close may finish an epic (`bdp.repo.epics`): the last open child's run closes it, and its
epic above if that was the last one too; with ``epic_review = true`` it queues the epic's
review instead (`bdp.run.epic_task`), and the review's approval closes it. A failure there
changes nothing of the run: the janitor's sweep closes (or queues) finished epics as well.
"""

from __future__ import annotations

import logging

from bdp.agent.session import SessionResult
from bdp.errors import BdpError
from bdp.models import Outcome
from bdp.repo.epics import close_parents
from bdp.repo.pending import PendingClose
from bdp.run.bookkeeping import despite_broker
from bdp.run.epic_task import queue_parent_review
from bdp.run.job import Job

log = logging.getLogger(__name__)


def note_landing(job: Job, target_ref: str) -> PendingClose:
    """Write the note that this run's commit is about to land on ``target_ref``."""
    pending = PendingClose(str(job.repo), job.issue.id, job.run.run_id, target_ref)
    pending.save(job.deps.settings.home)
    return pending


def close_landed(job: Job, result: SessionResult, commit: str, pending: PendingClose) -> None:
    """Close the issue of a landed commit; if bd will not, leave the note for the janitor.
    Its tombstone comes first: no machine queues it again, whether its bd synced or not."""
    fence = job.fence
    if fence is not None:
        despite_broker("record the landing", lambda: fence.bury(commit, job.run.host))
    try:
        job.beads.close(job.issue.id, result.summary, job.actor)
    except BdpError as error:
        log.error("landed %s but could not close %s: %s", commit[:12], job.issue.id, error)
        result.summary += (
            f"; landed {commit[:12]}, but bd close failed ({error}): the janitor closes it"
        )
        job.transcript.line(f"bdp: {result.summary}")
        return
    pending.drop(job.deps.settings.home)
    close_epics_above(job)


def close_epics_above(job: Job) -> None:
    """After the run's issue closed: close the epics it was the last open child of, or
    queue the review of the one above (epic reviews on).

    An issue enqueue saw without a parent has none to look up (the janitor's sweep closes an
    epic it gained since)."""
    if not job.issue.parent and job.args.parent == "":
        return
    if job.tree is not None and job.tree.config.epic_review:
        _queue_review_above(job)
        return
    try:
        closed = close_parents(job.beads, job.issue, job.actor)
    except BdpError as error:
        log.warning("could not close the epic above %s: %s", job.issue.id, error)
        return
    for epic_id in closed:
        job.transcript.line(f"bdp: closed epic {epic_id}: all its children are closed")


def _queue_review_above(job: Job) -> None:
    try:
        queued = queue_parent_review(job)
    except BdpError as error:
        log.warning("could not queue the review of the epic above %s: %s", job.issue.id, error)
        return
    if queued:
        job.transcript.line(f"bdp: all children of epic {queued} are closed: its review is queued")


def close_reviewed_epic(job: Job, result: SessionResult) -> None:
    """Close an epic its review approved, naming its children, then what it finishes above.
    A close bd refuses (a child was reopened meanwhile) fails the review; the epic is
    reviewed again once it is finished."""
    if result.outcome is not Outcome.DONE or job.epic is None:
        return
    names = ", ".join(child.issue.id for child in job.epic.children)
    reason = f"all {len(job.epic.children)} children closed: {names}; the epic review approved it"
    try:
        job.beads.close(job.issue.id, reason, job.actor)
    except BdpError as error:
        result.outcome, result.summary = Outcome.FAILED, f"could not close the epic: {error}"
        return
    close_epics_above(job)
