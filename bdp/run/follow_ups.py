"""Filing the follow-ups an agent's report lists, as bd issues discovered from its issue.

bdp files them, not the agent's Bash, so they are linked (`discovered-from`), redacted, and
ready before the issue closes: a `bdp run` picks them up in the same run. A redo of the same
issue (after a crash) does not file them twice: a title already filed from the issue is
skipped. What an epic's review finds is filed as children of the epic instead, which keep
it open until they close.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bdp.agent.session import SessionResult
from bdp.errors import BdpError
from bdp.run.job import Job

log = logging.getLogger(__name__)


def file_follow_ups(job: Job, result: SessionResult) -> list[str]:
    """File the report's follow-ups that are not filed yet; the new issues' ids."""
    if not result.follow_ups:
        return []
    try:
        filed = job.beads.discovered(job.issue.id)
    except BdpError as error:
        log.error("could not read %s's follow-ups, filing none: %s", job.issue.id, error)
        return []
    if job.epic is not None:  # an epic's follow-ups are its children
        filed |= {child.issue.title: child.issue.id for child in job.epic.children}
    new_ids = []
    for listed in result.follow_ups:
        follow_up = replace(listed, found_in=job.issue.id)
        if follow_up.title in filed:
            continue
        try:
            new_id = job.beads.file(follow_up, job.actor)
        except BdpError as error:
            job.transcript.line(f"bdp: could not file follow-up {follow_up.title!r}: {error}")
            continue
        filed[follow_up.title] = new_id
        new_ids.append(new_id)
        job.transcript.line(f"bdp: filed {new_id} ({follow_up.title}), found in {job.issue.id}")
    if new_ids:
        result.summary += f"; follow-ups filed: {', '.join(new_ids)}"
    return new_ids
