"""The janitor's care of this machine's worktrees: retire the ones no run works in (saving
what they hold on their branches), and delete bdp's branches of work nobody came back to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bdp.queue.sweep_report import SweepReport
from bdp.repo.worktree import delete_branch, expired_branches, orphans, retire, worktrees_dir


def remove_worktrees(
    home: Path, clone: Path, busy: Callable[[], set[str]], older_than: float, report: SweepReport
) -> None:
    """Retire the worktrees of ``clone`` older than ``older_than`` s whose issue is not
    ``busy()`` (a live run's, asked once the worktrees are listed)."""
    for path in orphans(home, clone, busy, older_than=older_than):
        branch = retire(clone, path, home / "locks")
        if branch is not None:
            report.removed_worktrees.append(f"{path.name} ({branch})")


def delete_expired_branches(
    home: Path, clone: Path, busy: set[str], keep: float, report: SweepReport
) -> None:
    """Delete bdp's branches of unlanded work nobody came back to in ``keep`` seconds
    (BDP_KEEP_BRANCHES)."""
    if not worktrees_dir(home, clone).is_dir():
        return  # bdp never made a worktree of it here
    for branch in expired_branches(clone, busy, older_than=keep):
        delete_branch(clone, branch, home / "locks")
        report.deleted_branches.append(f"{clone.name}:{branch}")
