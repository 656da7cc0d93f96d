"""File locks for agents sharing one work tree: an atomic ``mkdir`` per repo-relative path.

Locks live under the state directory (``<home>/locks/<repo digest>/``), never in the work
tree. Each lock directory holds an owner record written atomically (temp file + rename).
A waiter records what it waits for, so a cycle of runs waiting on each other is found at
once and the youngest waiter gives up instead of everyone waiting out the timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from bdp.errors import DeadlockError, LockError
from bdp.repo.guards import resolve_in_repo

#: Seconds to wait for a lock before giving up.
LOCK_WAIT = 60.0
OWNER_FILE = "owner.json"
_WAITS = ".waits"
_MAX_NAME = 180  # bytes; file systems allow 255 per name
_HASHED = "%h"  # quote() never writes a % that is not followed by two hex digits


@dataclass(frozen=True)
class Holder:
    """Who holds (or waits for) a lock: one run of one issue."""

    run_id: str
    issue_id: str
    host: str
    pid: int
    started: float

    @classmethod
    def here(cls, run_id: str, issue_id: str, started: float | None = None) -> Holder:
        return cls(
            run_id,
            issue_id,
            socket.gethostname(),
            os.getpid(),
            time.time() if started is None else started,
        )


@dataclass(frozen=True)
class Lock:
    """A held lock: the path, its holder and since when."""

    path: str
    holder: Holder
    acquired: float

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.acquired))
        h = self.holder
        return (
            f"{self.path} is locked by issue {h.issue_id} "
            f"(run {h.run_id} on {h.host}, since {since})"
        )


@dataclass(frozen=True)
class _Wait:
    """One edge of the wait-for graph: ``waiter`` waits for a lock held by ``holder_run``."""

    waiter: Holder
    holder_run: str
    path: str


#: Where the table notes the paths it gave back (names starting "." are the table's own).
RELEASED_DIR = ".released"


def lock_name(path: str) -> str:
    """A file-system-safe, collision-free directory name for a repo-relative path."""
    name = quote(path, safe="")
    if name.startswith("."):  # names starting with "." are the table's own (.waits, .gone-*)
        name = "%2E" + name[1:]
    if len(name.encode()) <= _MAX_NAME:
        return name
    return _HASHED + hashlib.sha256(path.encode()).hexdigest()


def repo_lock_dir(home: Path, repo: Path) -> Path:
    real = os.path.realpath(repo)
    digest = hashlib.sha256(real.encode()).hexdigest()[:16]
    return home / "locks" / f"{Path(real).name}-{digest}"


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

    @classmethod
    def all_in(cls, home: Path) -> list[LockTable]:
        """The lock tables of every repository on this machine (for the janitor)."""
        folder = home / "locks"
        if not folder.is_dir():
            return []
        tables = []
        for root in sorted(p for p in folder.iterdir() if p.is_dir()):
            table = cls.__new__(cls)
            table.repo, table.root = root, root
            tables.append(table)
        return tables

    def normalise(self, path: str) -> str:
        """The repo-relative form of ``path``; LockError when it leaves the repository."""
        relative = resolve_in_repo(self.repo, path)
        if relative is None or str(relative) in ("", "."):
            raise LockError(
                f"cannot lock {path!r}: it is outside the repository {self.repo}",
                "lock files inside the repository, by relative path",
            )
        return relative.as_posix()

    # -- taking and giving back -----------------------------------------------------
    def acquire(self, paths: Iterable[str], holder: Holder, wait: float = LOCK_WAIT) -> list[str]:
        """Take every path or none, in sorted order, waiting up to ``wait`` seconds.

        Raises:
            LockError: a path is held by another run when the wait runs out (names the holder).
            DeadlockError: this run is the youngest waiter in a cycle of waiting runs.
        """
        wanted = sorted({self.normalise(p) for p in paths})
        start = time.monotonic()
        delay, waited, timed_out = 0.005, False, False
        try:
            while True:
                blocker = self._take_all(wanted, holder)
                if blocker is None:
                    return wanted
                waited = True
                self._wait_for(holder, blocker)
                if time.monotonic() - start >= wait:
                    timed_out = True
                    raise LockError(blocker.describe(), "work on other files, or end with BLOCKED")
                time.sleep(delay)
                delay = min(delay * 1.5, 0.25)
        finally:
            self._stop_waiting(holder.run_id)
            if waited:
                self.waited.add(time.monotonic() - start, timed_out)

    def release(self, paths: Iterable[str], run_id: str) -> list[str]:
        """Give back those of ``paths`` that ``run_id`` holds; the ones released."""
        released = []
        for path in sorted({self.normalise(p) for p in paths}):
            lock = self.holder_of(path)
            if lock is not None and lock.holder.run_id == run_id and self._remove(path, run_id):
                released.append(path)
                self._note_released(path)
        return released

    def _note_released(self, path: str) -> None:
        """Remember when ``path`` was last given back (its file's mtime), for `released_since`."""
        folder = self.root / RELEASED_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        (folder / lock_name(path)).write_text(path)

    def released_since(self, since: float) -> set[str]:
        """Paths some run held and gave back after ``since``: they may have changed meanwhile."""
        folder = self.root / RELEASED_DIR
        if not folder.is_dir():
            return set()
        return {f.read_text() for f in folder.iterdir() if _mtime(f) >= since}

    def release_all(self, run_id: str) -> list[str]:
        """Give back every lock ``run_id`` holds (end of a run, or the janitor)."""
        mine = [lock.path for lock in self.locks() if lock.holder.run_id == run_id]
        return self.release(mine, run_id)

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
        directory = self.root / lock_name(path)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            current = self.holder_of(path)
            if current is None or current.holder.run_id == holder.run_id:
                return None if current is not None else _unowned(path)
            return current
        _write_json(directory / OWNER_FILE, _owner_record(path, holder))
        taken.append(path)
        return None

    def _remove(self, path: str, run_id: str) -> bool:
        """Remove ``run_id``'s lock, via an atomic rename so two removers never both win.

        If the lock changed hands between the check and the rename, it is put back.
        """
        directory = self.root / lock_name(path)
        tomb = self.root / f".gone-{uuid.uuid4().hex}"
        try:
            directory.rename(tomb)
        except FileNotFoundError:
            return False
        moved = _read_lock(tomb)
        if moved is not None and moved.holder.run_id != run_id:
            # Lost a race with another remover and a new holder: put it back if we can.
            # (Linux lets a rename replace an empty directory, so a just-created lock could be
            # overwritten here; it takes three parties interleaving within microseconds.)
            with contextlib.suppress(OSError):
                tomb.rename(directory)
            shutil.rmtree(tomb, ignore_errors=True)
            return False
        shutil.rmtree(tomb, ignore_errors=True)
        return True

    def force_release(self, path: str) -> None:
        """Remove the lock of ``path`` whoever holds it (the janitor, `bdp clean --force`)."""
        self.force_remove(self.root / lock_name(path))

    def force_remove(self, directory: Path) -> None:
        """Remove a lock directory whatever its owner (the janitor, `bdp clean --force`)."""
        tomb = self.root / f".gone-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            directory.rename(tomb)
            shutil.rmtree(tomb, ignore_errors=True)

    # -- looking -------------------------------------------------------------------------
    def holder_of(self, path: str) -> Lock | None:
        return _read_lock(self.root / lock_name(path))

    def locks(self) -> list[Lock]:
        """Every lock with an owner record (a lock mid-creation has none yet)."""
        if not self.root.is_dir():
            return []
        found = (_read_lock(d) for d in self.root.iterdir() if not d.name.startswith("."))
        return sorted((lock for lock in found if lock), key=lambda lock: lock.path)

    def unowned(self, older_than: float) -> list[Path]:
        """Lock directories without an owner record, created more than ``older_than`` s ago."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than
        return [
            d
            for d in self.root.iterdir()
            if not d.name.startswith(".") and not (d / OWNER_FILE).exists() and _mtime(d) < cutoff
        ]

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


def _unowned(path: str) -> Lock:
    """Stands for a lock whose owner record is still being written: wait, don't steal."""
    return Lock(path, Holder("?", "?", "?", 0, 0.0), time.time())


def _owner_record(path: str, holder: Holder) -> dict[str, object]:
    return {"path": path, "acquired": time.time(), **asdict(holder)}


def _write_json(target: Path, data: dict[str, object]) -> None:
    """Write atomically: a temp file beside the target, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(temp, target)


def _read_lock(directory: Path) -> Lock | None:
    try:
        data = json.loads((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    holder = Holder(
        data["run_id"], data["issue_id"], data["host"], int(data["pid"]), float(data["started"])
    )
    return Lock(data.get("path") or unquote(directory.name), holder, float(data["acquired"]))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
