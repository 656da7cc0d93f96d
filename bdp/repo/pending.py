"""Landings not yet closed: a note on disk from just before a run's commit goes onto its
target branch until bd has closed the issue.

A run can die (or bd can fail) between landing its commit and `bd close`. Without a note,
recovery would reset the issue and an agent would do it again, on top of its own landed
work. With one, the janitor looks for the run's commit (its ``Bdp-Run`` trailer) on the
target branch and, when it is there, closes the issue instead. The notes live in the state
directory, not the broker, so they outlast a Redis that lost its data.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bdp.repo.git import GitError, git

#: How far back on the target branch a run's landed commit is looked for.
HISTORY_DEPTH = 500


@dataclass(frozen=True)
class PendingClose:
    """Run ``run_id`` is landing (or has landed) on ``target`` of ``repo``; not yet closed."""

    repo: str
    issue_id: str
    run_id: str
    target: str  # a ref: refs/heads/<branch>, or the remote-tracking ref when landing remotely

    def save(self, home: Path) -> None:
        folder = _folder(home)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = folder / f".{self.run_id}.tmp"
        with open(temporary, "w", encoding="utf-8", opener=_private) as out:
            json.dump(asdict(self), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, folder / f"{self.run_id}.json")

    def drop(self, home: Path) -> None:
        (_folder(home) / f"{self.run_id}.json").unlink(missing_ok=True)

    def landed_commit(self) -> str | None:
        """The run's commit when it is on the target branch, else None."""
        return landed_commit(Path(self.repo), self.run_id, self.target)


def pending_closes(home: Path) -> list[PendingClose]:
    """Every note on this machine (an unreadable one is dropped: it names no landing)."""
    folder = _folder(home)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(PendingClose(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
    return found


def landed_commit(repo: Path, run_id: str, ref: str) -> str | None:
    """The commit on ``ref`` whose ``Bdp-Run`` trailer names ``run_id``, if any."""
    trailer = "%H %(trailers:key=Bdp-Run,valueonly,separator=%x20)"
    try:
        log = git(repo, "log", f"-n{HISTORY_DEPTH}", f"--format={trailer}", ref, "--")
    except GitError:
        return None  # no such ref (yet), or no repo here
    for line in log.splitlines():
        commit, *runs = line.split()
        if run_id in runs:
            return commit
    return None


def _folder(home: Path) -> Path:
    return home / "landings"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
