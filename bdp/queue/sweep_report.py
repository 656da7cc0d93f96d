"""What one janitor sweep did: kept as the last sweep for `bdp status`, counted for `bdp
metrics` (each field is a ``janitor:<action>`` counter) and printed by `bdp clean`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bdp.host import host_name


@dataclass
class SweepReport:
    """What one sweep did; kept as the janitor's last sweep for `bdp status`."""

    at: float = field(default_factory=time.time)
    host: str = field(default_factory=host_name)
    freed_locks: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    needs_human: list[str] = field(default_factory=list)
    cleared_markers: list[str] = field(default_factory=list)
    removed_worktrees: list[str] = field(default_factory=list)  # their branches are kept
    closed_landed: list[str] = field(default_factory=list)  # landed, then bd close never ran
    deleted_branches: list[str] = field(default_factory=list)  # kept work past BDP_KEEP_BRANCHES
    closed_epics: list[str] = field(default_factory=list)  # all their children were closed
    reviewed_epics: list[str] = field(default_factory=list)  # finished: their review queued
    worktrees: int = 0  # worktrees on this host after the sweep
    worktree_bytes: int = 0  # the disk their files take

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def listed(self) -> list[tuple[str, list[str]]]:
        """Each kind of action with what it was done to, for `bdp clean` to print."""
        return [
            ("freed lock", self.freed_locks),
            ("reset", self.reset),
            ("requeued", self.requeued),
            ("needs a human", self.needs_human),
            ("cleared marker", self.cleared_markers),
            ("removed worktree (branch kept)", self.removed_worktrees),
            ("closed, its work landed", self.closed_landed),
            ("deleted branch", self.deleted_branches),
            ("closed epic, all its children closed", self.closed_epics),
            ("queued the review of a finished epic", self.reviewed_epics),
        ]

    def summary(self) -> str:
        return (
            f"freed {len(self.freed_locks)} locks, reset {len(self.reset)} issues, "
            f"requeued {len(self.requeued)}, {len(self.needs_human)} need a human, "
            f"cleared {len(self.cleared_markers)} markers, killed {len(self.killed)} processes, "
            f"removed {len(self.removed_worktrees)} worktrees, "
            f"closed {len(self.closed_landed)} landed issues, {len(self.closed_epics)} epics"
        )
