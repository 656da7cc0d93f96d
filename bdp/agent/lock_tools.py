"""What the agent's lock tools do and say: plain functions, wrapped as SDK tools in agent.py.

The agent can plan its edits up front (lock every file it will touch at once, all or
nothing) instead of discovering conflicts one edit at a time.
"""

from __future__ import annotations

from bdp.agent.session import StopSignal
from bdp.errors import DeadlockError, LockError
from bdp.models import Outcome
from bdp.repo.locks import Holder, LockTable

LOCK_ADVICE = "Work on other files meanwhile, or end with BLOCKED: <reason> if you cannot."


def lock_files(
    locks: LockTable, holder: Holder, paths: list[str], wait: float, stop: StopSignal
) -> str:
    """Take every path or none; the text the agent reads back."""
    if not paths:
        return "No paths given: pass the repository-relative files you will edit."
    try:
        taken = locks.acquire(paths, holder, wait=wait)
    except DeadlockError as error:
        stop.stop(Outcome.BLOCKED, str(error))
        return f"Deadlock: {error}. End now with BLOCKED."
    except LockError as error:
        return f"Not locked: {error}. {LOCK_ADVICE}"
    return "Locked: " + ", ".join(taken)


def unlock_files(locks: LockTable, holder: Holder, paths: list[str]) -> str:
    try:
        released = locks.release(paths, holder.run_id)
    except LockError as error:
        return f"Not unlocked: {error}"
    return "Unlocked: " + (", ".join(released) if released else "nothing (you held none of them)")


def list_locks(locks: LockTable, holder: Holder) -> str:
    held = locks.locks()
    if not held:
        return "No files are locked."
    lines = [
        f"{lock.path}: yours" if lock.holder.run_id == holder.run_id else lock.describe()
        for lock in held
    ]
    return "\n".join(lines)
