"""Closing an issue whose work is on its target branch, which survives bd failing and the
worker dying: a note (`bdp.repo.pending`) is written before the commit lands and dropped only
once bd has closed the issue. Until then the janitor, not a redo, finishes the job.

A landed commit is never followed by a reset: when `bd close` keeps failing, the run still
ends DONE (landed), and says that the janitor will close the issue.
"""

from __future__ import annotations

import logging

from bdp.agent.session import SessionResult
from bdp.errors import BdpError
from bdp.repo.pending import PendingClose
from bdp.run.job import Job

log = logging.getLogger(__name__)


def note_landing(job: Job, target_ref: str) -> PendingClose:
    """Write the note that this run's commit is about to land on ``target_ref``."""
    pending = PendingClose(str(job.repo), job.issue.id, job.run.run_id, target_ref)
    pending.save(job.deps.settings.home)
    return pending


def close_landed(job: Job, result: SessionResult, commit: str, pending: PendingClose) -> None:
    """Close the issue of a landed commit; if bd will not, leave the note for the janitor."""
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
