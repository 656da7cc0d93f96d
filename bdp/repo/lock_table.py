"""A lock table, whatever keeps it: taking locks with a wait, and seeing deadlocks.

A lock table is a store of owner records (directories on this machine, or a Redis hash
shared by several) plus a record of who waits for what. Acquiring is the same on either:
take every path or none; if one is held, note the wait, look for a cycle of runs waiting on
each other (the youngest waiter in it gives up at once), and try again with a growing delay
until the wait runs out. `Locks` is that part, and the interface every user of locks sees; a
store (`bdp.repo.locks` on files, `bdp.repo.shared_locks` in Redis) supplies the records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bdp.errors import DeadlockError, LockError
from bdp.repo.lock_records import Holder, Lock, inside

#: Seconds to wait for a lock before giving up.
LOCK_WAIT = 60.0


@dataclass(frozen=True)
class Wait:
    """One edge of the wait-for graph: ``waiter`` waits for a lock held by ``holder_run``."""

    waiter: Holder
    holder_run: str
    path: str

    def to_json(self) -> dict[str, object]:
        holder = self.waiter
        waiter = {
            "run_id": holder.run_id,
            "issue_id": holder.issue_id,
            "host": holder.host,
            "pid": holder.pid,
            "started": holder.started,
        }
        return {"waiter": waiter, "holder": self.holder_run, "path": self.path}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Wait:
        """The wait ``data`` records; KeyError or TypeError when it is not one."""
        waiter = data["waiter"]
        if not isinstance(waiter, dict):
            raise TypeError("a wait's waiter is a mapping")
        return cls(Holder(**waiter), str(data["holder"]), str(data["path"]))


@dataclass
class LockWaits:
    """How often, and how long, acquiring had to wait for another run (for metrics)."""

    waits: int = 0
    seconds: float = 0.0
    timeouts: int = 0

    def __post_init__(self) -> None:
        self._guard = threading.Lock()  # hooks acquire from several threads

    def add(self, seconds: float, timed_out: bool) -> None:
        with self._guard:
            self.waits += 1
            self.seconds += seconds
            self.timeouts += int(timed_out)


@dataclass(frozen=True)
class LockScan:
    """One read of a lock table: its locks, and its directories with no (whole) owner record."""

    locks: list[Lock]
    ownerless: list[Path]

    def unowned(self, older_than: float) -> list[Path]:
        """The ownerless directories made more than ``older_than`` s ago (a crash mid-acquire;
        a younger one may be a run writing its record right now)."""
        cutoff = time.time() - older_than
        return [d for d in self.ownerless if _mtime(d) < cutoff]


class Locks:
    """The locks of one repository: acquire with waits and deadlock detection here; the
    records, and every other step, in a subclass.

    A subclass sets ``repo`` (the tree paths are resolved in), ``name`` (for reports) and
    ``waited``.
    """

    repo: Path
    name: str
    waited: LockWaits

    def normalise(self, path: str) -> str:
        """The repo-relative form of ``path``; LockError when it leaves the repository."""
        relative = inside(str(self.repo), path)
        if relative is None:
            raise LockError(
                f"cannot lock {path!r}: it is outside the repository {self.repo}",
                "lock files inside the repository, by relative path",
            )
        return relative

    def acquire(self, paths: Iterable[str], holder: Holder, wait: float = LOCK_WAIT) -> list[str]:
        """Take every path or none, in sorted order, waiting up to ``wait`` seconds.

        Raises:
            LockError: a path is held by another run when the wait runs out (names the holder).
            DeadlockError: this run is the youngest waiter in a cycle of waiting runs.
        """
        wanted = sorted({self.normalise(p) for p in paths})
        blocker = self._take_all(wanted, holder)
        if blocker is not None:  # only a wait has anything to note
            self._wait_then_take(wanted, holder, wait, blocker)
        return wanted

    def _wait_then_take(self, wanted: list[str], holder: Holder, wait: float, first: Lock) -> None:
        """Wait (noting what for, so deadlocks are seen) until every path is ours or time is up."""
        start = time.monotonic()
        delay, timed_out = 0.005, False
        blocker: Lock | None = first
        try:
            while blocker is not None:
                self._wait_for(holder, blocker)
                if time.monotonic() - start >= wait:
                    timed_out = True
                    raise LockError(blocker.describe(), "work on other files, or end with BLOCKED")
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)
                blocker = self._take_all(wanted, holder)
        finally:
            self._stop_waiting(holder.run_id)
            self.waited.add(time.monotonic() - start, timed_out)

    def _wait_for(self, holder: Holder, blocker: Lock) -> None:
        self._note_wait(Wait(holder, blocker.holder.run_id, blocker.path))
        cycle = self.cycle_from(holder.run_id)
        youngest = max(cycle, key=lambda w: (w.waiter.started, w.waiter.run_id), default=None)
        if youngest is not None and youngest.waiter.run_id == holder.run_id:
            issues = " -> ".join(w.waiter.issue_id for w in [*cycle, cycle[0]])
            paths = ", ".join(w.path for w in cycle)
            raise DeadlockError(
                f"deadlock: {issues} wait on each other's locks ({paths}); "
                f"{holder.issue_id} is the youngest waiter and gives up",
                "end with BLOCKED so the other runs can finish",
                waits_for=blocker.holder.issue_id,
            )

    def cycle_from(self, run_id: str) -> list[Wait]:
        """The waits of a cycle of runs through ``run_id``, or [] when there is none.

        A wait counts only while its path is still held by the run it names: a waiter that
        has not retried yet (or died) leaves a record that no longer stands for a wait.
        """
        waits = self.waits()
        chain: list[Wait] = []
        current = run_id
        while current in waits and len(chain) <= len(waits):
            lock = self.holder_of(waits[current].path)
            if lock is None or lock.holder.run_id != waits[current].holder_run:
                return []
            chain.append(waits[current])
            current = waits[current].holder_run
            if current == run_id:
                return chain
        return []

    # -- what a store supplies ---------------------------------------------------------
    def release(self, paths: Iterable[str], run_id: str) -> list[str]:
        """Give back those of ``paths`` that ``run_id`` holds; the ones released."""
        raise NotImplementedError

    def release_all(self, run_id: str) -> list[str]:
        """Give back every lock ``run_id`` holds (end of a run, or the janitor)."""
        raise NotImplementedError

    def released_since(self, since: float) -> set[str]:
        """Paths some run held and gave back after ``since``: they may have changed meanwhile."""
        raise NotImplementedError

    def locks(self) -> list[Lock]:
        """Every held lock, by path."""
        raise NotImplementedError

    def scan(self) -> LockScan:
        """Every lock, read once, and the records a crash left half made."""
        raise NotImplementedError

    def force_release(self, path: str) -> None:
        """Remove the lock of ``path`` whoever holds it (the janitor, `bdp clean --force`)."""
        raise NotImplementedError

    def free_orphans(self, scan: LockScan, older_than: float) -> list[str]:
        """Remove what no live owner stands behind (older than ``older_than`` s); what went."""
        raise NotImplementedError

    def clear_waits(self, live_runs: set[str]) -> list[str]:
        """Drop wait records of runs that are gone; the run ids dropped."""
        gone = [run_id for run_id in self.waits() if run_id not in live_runs]
        for run_id in gone:
            self._stop_waiting(run_id)
        return gone

    def _take_all(self, paths: list[str], holder: Holder) -> Lock | None:
        """None when all of ``paths`` are ours now; else the lock in the way (none taken)."""
        raise NotImplementedError

    def holder_of(self, path: str) -> Lock | None:
        raise NotImplementedError

    def waits(self) -> dict[str, Wait]:
        """Every run's standing wait, by run id."""
        raise NotImplementedError

    def _note_wait(self, wait: Wait) -> None:
        raise NotImplementedError

    def _stop_waiting(self, run_id: str) -> None:
        raise NotImplementedError


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
