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
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from bdp.repo.lock_records import OWNER_FILE as OWNER_FILE
from bdp.repo.lock_records import Holder as Holder
from bdp.repo.lock_records import Lock as Lock
from bdp.repo.lock_records import (
    bury,
    owner_record,
    placeholder,
    read_lock,
    remove_tree,
    write_new,
)
from bdp.repo.lock_records import lock_name as lock_name
from bdp.repo.lock_records import repo_lock_dir as repo_lock_dir
from bdp.repo.lock_table import LOCK_WAIT as LOCK_WAIT
from bdp.repo.lock_table import Locks, LockWaits, Wait
from bdp.repo.lock_table import LockScan as LockScan

_WAITS = ".waits"

#: Where the table notes the paths it gave back (names starting "." are the table's own).
RELEASED_DIR = ".released"


class LockTable(Locks):
    """The locks of one repository on this machine, as directories."""

    def __init__(self, home: Path, repo: Path, tree: Path | None = None) -> None:
        """The table of ``repo``; paths are resolved in ``tree`` (a run's worktree) or the repo.

        Every worktree of one repo shares the repo's table: locks name repo-relative paths.
        """
        self.repo = Path(os.path.realpath(tree or repo))
        self.root = repo_lock_dir(home, Path(os.path.realpath(repo)))
        self.waited = LockWaits()
        self.name = self.root.name
        self._root = str(self.root)

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
            table.name, table._root = root.name, str(root)
            tables.append(table)
        return tables

    # -- taking and giving back -----------------------------------------------------
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

    def free_orphans(self, scan: LockScan, older_than: float) -> list[str]:
        """Remove the lock directories a crash left without an owner record (made more than
        ``older_than`` s ago); their names."""
        gone = scan.unowned(older_than)
        for directory in gone:
            self.force_remove(directory)
        return [f"{directory.name} (no owner)" for directory in gone]

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

    # -- waiting -------------------------------------------------------------------------
    def _note_wait(self, wait: Wait) -> None:
        _write_json(self.root / _WAITS / f"{wait.waiter.run_id}.json", wait.to_json())

    def waits(self) -> dict[str, Wait]:
        folder = self.root / _WAITS
        if not folder.is_dir():
            return {}
        waits = {}
        for file in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(file.read_text())
                waits[file.stem] = Wait.from_json(data)
        return waits

    def _stop_waiting(self, run_id: str) -> None:
        (self.root / _WAITS / f"{run_id}.json").unlink(missing_ok=True)


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
