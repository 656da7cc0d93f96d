"""An epic's own task: its review, when the repo asks for one (``epic_review = true``).

An epic has no work for an agent. With epic reviews on, the close of its last open child
does not close it: it queues the epic's task, and the janitor does the same for a finished
epic nobody queued (the worker died between the child's close and the queueing, or a person
closed the last child). That task claims the epic like any issue, so one review runs at a
time, a dead reviewer's epic is reset and queued again, and a duplicate finds it taken.

How the review ends is `bdp.agent.epic_review`; this module decides whether one runs and
queues it; `bdp.run.closing` closes an approved epic.
"""

from __future__ import annotations

from pathlib import Path

from bdp.broker.state import State
from bdp.models import Issue, TaskArgs
from bdp.repo.beads import Beads
from bdp.repo.epic_work import EpicBrief, gather
from bdp.repo.epics import EpicBeads, EpicProgress, finished_parent, review_rounds_used
from bdp.repo.repo_config import load_repo_config
from bdp.run.deps import Requeue
from bdp.run.job import Job


def epic_review_brief(repo: Path, beads: Beads, epic: Issue) -> tuple[EpicBrief | None, str]:
    """What the reviewer of this claimed epic is given; or None and why no review runs."""
    config = load_repo_config(repo)
    if not config.epic_review:
        return None, "an epic: bdp closes it when all its children are closed"
    [progress] = beads.epics([epic.id])
    if not progress.finished():
        return None, "an epic with open children: it is reviewed once they are all closed"
    comments = beads.comment_texts(epic.id)
    brief = gather(repo, "HEAD", progress, comments, config.epic_review_rounds)
    if brief.exhausted:
        return None, f"its review asked for changes {brief.rounds_used} times: a person decides"
    return brief, ""


def queue_parent_review(job: Job) -> str:
    """After the run's issue closed: queue its epic's review if that was its last open child;
    the epic's id, or ""."""
    epic = finished_parent(job.beads, job.issue)
    if epic is None:
        return ""
    args = job.args
    again = TaskArgs(args.repo, epic.issue.id, isolation=args.isolation, max_cost=args.max_cost)
    requeue = job.deps.requeue
    queued = requeue is not None and queue_review(job.deps.state, requeue, again)
    return epic.issue.id if queued else ""


def queue_review(state: State, requeue: Requeue, args: TaskArgs) -> bool:
    """Queue an epic's review task unless one is queued or running; True if queued.

    Not atomic with another worker doing the same: a second task finds the epic claimed (or
    closed, or no longer finished) and ends SKIPPED without a session.
    """
    if state.marker(args.repo, args.issue_id) is not None:
        return False
    requeue(args)
    return True


def epics_to_review(beads: EpicBeads, rounds: int) -> list[EpicProgress]:
    """The open epics whose children are all closed and whose review has rounds left (the
    janitor's backstop: one `bd list`, one `bd show`, and a comments read per finished epic)."""
    due = []
    for epic in beads.epics():
        if not epic.finished():
            continue
        if rounds_left(beads, epic.issue.id, rounds):
            due.append(epic)
    return due


def rounds_left(beads: EpicBeads, epic_id: str, rounds: int) -> bool:
    """The epic may be reviewed again: fewer reviews than ``rounds`` + 1 found something
    missing (bd's comments on it say how many did)."""
    return review_rounds_used(beads.comment_texts(epic_id)) <= rounds
