"""File locks for agents sharing one work tree: an atomic ``mkdir`` per repo-relative path.

Locks live under the state directory (``<home>/locks/<repo digest>/``), never in the work
tree. Each lock directory holds an owner record, written once into the directory its writer
has just made (nobody else writes there); until it is whole, readers take the lock for one
whose owner is still being written and wait. A waiter records what it waits for, so a cycle of
runs waiting on each other is found at once and the youngest waiter gives up instead of
everyone waiting out the timeout.

An uncontended acquire and release stay near the floor of one ``mkdir`` and one ``rmdir``:
one more file written and removed, one rename, and no bookkeeping of waits that did not happen
(bench/locks.py measures the ratio).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from bdp.errors import DeadlockError, LockError
from bdp.repo.lock_records import OWNER_FILE as OWNER_FILE
from bdp.repo.lock_records import Holder as Holder
from bdp.repo.lock_records import Lock as Lock
from bdp.repo.lock_records import (
    bury,
    inside,
    owner_record,
    placeholder,
    read_lock,
    remove_tree,
    write_new,
)
from bdp.repo.lock_records import lock_name as lock_name
from bdp.repo.lock_records import repo_lock_dir as repo_lock_dir

#: Seconds to wait for a lock before giving up.
LOCK_WAIT = 60.0
_WAITS = ".waits"


@dataclass(frozen=True)
class _Wait:
    """One edge of the wait-for graph: ``waiter`` waits for a lock held by ``holder_run``."""

    waiter: Holder
    holder_run: str
    path: str


#: Where the table notes the paths it gave back (names starting "." are the table's own).
RELEASED_DIR = ".released"


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


class LockTable:
    """The locks of one repository on this machine."""

    def __init__(self, home: Path, repo: Path, tree: Path | None = None) -> None:
        """The table of ``repo``; paths are resolved in ``tree`` (a run's worktree) or the repo.

        Every worktree of one repo shares the repo's table: locks name repo-relative paths.
        """
        self.repo = Path(os.path.realpath(tree or repo))
        self.root = repo_lock_dir(home, Path(os.path.realpath(repo)))
        self.waited = LockWaits()
        self._real, self._root = str(self.repo), str(self.root)

    @classmethod
    def all_in(cls, home: Path) -> list[LockTable]:
        """The lock tables of every repository on this machine (for the janitor)."""
        folder = home / "locks"
        if not folder.is_dir():
            return []
        tables = []
        for root in sorted(p for p in folder.iterdir() if p.is_dir()):
            table = cls.__new__(cls)
            table.repo, table.root, table.waited = root, root, LockWaits()
            table._real = table._root = str(root)
            tables.append(table)
        return tables

    def normalise(self, path: str) -> str:
        """The repo-relative form of ``path``; LockError when it leaves the repository."""
        relative = inside(self._real, path)
        if relative is None:
            raise LockError(
                f"cannot lock {path!r}: it is outside the repository {self.repo}",
                "lock files inside the repository, by relative path",
            )
        return relative

    # -- taking and giving back -----------------------------------------------------
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

    def release(self, paths: Iterable[str], run_id: str) -> list[str]:
        """Give back those of ``paths`` that ``run_id`` holds; the ones released."""
        return self._release(sorted({self.normalise(p) for p in paths}), run_id)

    def _release(self, paths: list[str], run_id: str) -> list[str]:
        released = []
        for path in paths:
            lock = self.holder_of(path)
            if lock is not None and lock.holder.run_id == run_id and self._remove(path, run_id):
                released.append(path)
                self._note_released(path)
        return released

    def _note_released(self, path: str) -> None:
        """Remember when ``path`` was last given back (its note's mtime), for `released_since`."""
        note = f"{self._root}/{RELEASED_DIR}/{lock_name(path)}"
        try:
            os.utime(note)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(note), mode=0o700, exist_ok=True)
            write_new(note, path.encode(), replace=True)

    def released_since(self, since: float) -> set[str]:
        """Paths some run held and gave back after ``since``: they may have changed meanwhile."""
        folder = self.root / RELEASED_DIR
        if not folder.is_dir():
            return set()
        return {f.read_text() for f in folder.iterdir() if _mtime(f) >= since}

    def release_all(self, run_id: str) -> list[str]:
        """Give back every lock ``run_id`` holds (end of a run, or the janitor)."""
        return self._release(
            [lock.path for lock in self.locks() if lock.holder.run_id == run_id], run_id
        )

    def _take_all(self, paths: list[str], holder: Holder) -> Lock | None:
        """None when all are ours now; else the lock in the way (nothing new kept)."""
        taken: list[str] = []
        for path in paths:
            blocker = self._take(path, holder, taken)
            if blocker is not None:
                for done in taken:
                    self._remove(done, holder.run_id)
                return blocker
        return None

    def _take(self, path: str, holder: Holder, taken: list[str]) -> Lock | None:
        """None when ``path`` is ours (appended to ``taken`` if this call created it)."""
        directory = f"{self._root}/{lock_name(path)}"
        try:
            os.mkdir(directory, 0o700)
        except FileNotFoundError:  # the table's first lock (or `bdp clean` removed it)
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            return self._take(path, holder, taken)
        except FileExistsError:
            current = self.holder_of(path)
            if current is None or current.holder.run_id == holder.run_id:
                return None if current is not None else placeholder(path)
            return current
        write_new(f"{directory}/{OWNER_FILE}", owner_record(path, holder))
        taken.append(path)
        return None

    def _remove(self, path: str, run_id: str) -> bool:
        """Remove ``run_id``'s lock, via an atomic rename so two removers never both win.

        If the lock changed hands between the check and the rename, it is put back.
        """
        directory = f"{self._root}/{lock_name(path)}"
        tomb = f"{self._root}/.gone-{uuid.uuid4().hex}"
        try:
            os.rename(directory, tomb)
        except FileNotFoundError:
            return False
        moved = read_lock(tomb)
        if moved is None or moved.holder.run_id != run_id:
            # Lost a race with another remover and a new holder (whose record may still be
            # being written): put it back if we can. (Linux lets a rename replace an empty
            # directory, so a just-created lock could be overwritten here; it takes three
            # parties interleaving within microseconds.)
            with contextlib.suppress(OSError):
                os.rename(tomb, directory)
            remove_tree(tomb)
            return False
        bury(tomb)
        return True

    def force_release(self, path: str) -> None:
        """Remove the lock of ``path`` whoever holds it (the janitor, `bdp clean --force`)."""
        self.force_remove(self.root / lock_name(path))

    def force_remove(self, directory: Path) -> None:
        """Remove a lock directory whatever its owner (the janitor, `bdp clean --force`)."""
        tomb = f"{self._root}/.gone-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(directory, tomb)
            bury(tomb)

    # -- looking -------------------------------------------------------------------------
    def holder_of(self, path: str) -> Lock | None:
        return read_lock(f"{self._root}/{lock_name(path)}")

    def locks(self) -> list[Lock]:
        """Every lock with an owner record (a lock mid-creation has none yet)."""
        return self.scan().locks

    def unowned(self, older_than: float) -> list[Path]:
        """Lock directories without an owner record, created more than ``older_than`` s ago."""
        return self.scan().unowned(older_than)

    def scan(self) -> LockScan:
        """Every lock directory, read once: the locks, and those with no owner record (yet)."""
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return LockScan([], [])
        locks, ownerless = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            lock = read_lock(entry.path)
            if lock is not None:
                locks.append(lock)
            elif entry.is_dir(follow_symlinks=False):
                ownerless.append(Path(entry.path))
        locks.sort(key=lambda lock: lock.path)
        return LockScan(locks, sorted(ownerless))

    # -- waiting and deadlocks -------------------------------------------------------------
    def _wait_for(self, holder: Holder, blocker: Lock) -> None:
        record: dict[str, object] = {
            "waiter": asdict(holder),
            "holder": blocker.holder.run_id,
            "path": blocker.path,
        }
        _write_json(self.root / _WAITS / f"{holder.run_id}.json", record)
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

    def cycle_from(self, run_id: str) -> list[_Wait]:
        """The waits of a cycle of runs through ``run_id``, or [] when there is none.

        A wait counts only while its path is still held by the run it names: a waiter that
        has not retried yet (or died) leaves a record that no longer stands for a wait.
        """
        waits = self.waits()
        chain: list[_Wait] = []
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

    def waits(self) -> dict[str, _Wait]:
        folder = self.root / _WAITS
        if not folder.is_dir():
            return {}
        waits = {}
        for file in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(file.read_text())
                waits[file.stem] = _Wait(Holder(**data["waiter"]), data["holder"], data["path"])
        return waits

    def clear_waits(self, live_runs: set[str]) -> list[str]:
        """Drop wait records of runs that are gone; the run ids dropped."""
        gone = [run_id for run_id in self.waits() if run_id not in live_runs]
        for run_id in gone:
            self._stop_waiting(run_id)
        return gone

    def _stop_waiting(self, run_id: str) -> None:
        (self.root / _WAITS / f"{run_id}.json").unlink(missing_ok=True)


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


def _write_json(target: Path, data: dict[str, object]) -> None:
    """Write atomically: a temp file beside the target, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    write_new(str(temp), json.dumps(data).encode())
    os.replace(temp, target)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
