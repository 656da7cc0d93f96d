"""What the agent's own tools do and say: plain functions, wrapped as SDK tools in hooks.py.

The agent can plan its edits up front (lock every file it will touch at once, all or
nothing) instead of discovering conflicts one edit at a time, and file follow-up work it
finds (its sandbox cannot write bd's database; the worker files the issue for it).
"""

from __future__ import annotations

from typing import Any

from bdp.agent.session import SessionRequest
from bdp.errors import BdpError, DeadlockError, LockError
from bdp.models import Outcome
from bdp.repo.beads import FollowUp
from bdp.repo.lock_records import Holder
from bdp.repo.lock_table import Locks

LOCK_ADVICE = "Work on other files meanwhile, or end with BLOCKED: <reason> if you cannot."


def lock_files(request: SessionRequest, paths: list[str], wait: float) -> str:
    """Take every path or none; the text the agent reads back."""
    if not paths:
        return "No paths given: pass the repository-relative files you will edit."
    try:
        taken = request.locks.acquire(paths, request.holder, wait=wait)
    except DeadlockError as error:
        request.stop.stop(Outcome.BLOCKED, str(error), waits_for=error.waits_for)
        return f"Deadlock: {error}. End now with BLOCKED."
    except LockError as error:
        return f"Not locked: {error}. {LOCK_ADVICE}"
    fresh = request.freshen(taken) if request.freshen is not None else []
    note = f" {refreshed_note(fresh, request.issue.id)}" if fresh else ""
    return "Locked: " + ", ".join(taken) + note


def refreshed_note(paths: list[str], issue_id: str) -> str:
    """What the agent is told when files it just locked were brought up to date."""
    return (
        f"{', '.join(paths)} changed on the target branch since you started on {issue_id} "
        "(another agent's work landed), and bdp has updated your copy to the newest version. "
        "Read it again, then make your edit on top of it."
    )


def unlock_files(locks: Locks, holder: Holder, paths: list[str]) -> str:
    try:
        released = locks.release(paths, holder.run_id)
    except LockError as error:
        return f"Not unlocked: {error}"
    return "Unlocked: " + (", ".join(released) if released else "nothing (you held none of them)")


def list_locks(locks: Locks, holder: Holder) -> str:
    held = locks.locks()
    if not held:
        return "No files are locked."
    lines = [
        f"{lock.path}: yours" if lock.holder.run_id == holder.run_id else lock.describe()
        for lock in held
    ]
    return "\n".join(lines)


def file_follow_up(request: SessionRequest, args: dict[str, Any]) -> str:
    """File a follow-up of the request's issue; the text the agent reads back."""
    title = str(args.get("title") or "").strip()
    if not title:
        return "Not filed: give the follow-up a title."
    if request.file_issue is None:
        return "Not filed: this run cannot file issues. Mention the follow-up in your summary."
    follow_up = FollowUp(
        found_in=request.issue.id,
        title=title,
        description=str(args.get("description") or ""),
        issue_type=str(args.get("issue_type") or "task"),
        priority=int(args.get("priority", 2)),
    )
    try:
        new_id = request.file_issue(follow_up)
    except BdpError as error:
        return f"Not filed: {error}"
    return f"Filed {new_id}: {title} (discovered from {request.issue.id})"
