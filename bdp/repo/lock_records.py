"""The lock table's files: a directory per locked path, named from the path, holding the
owner record of the run that made it.

The record is written once, into the directory its writer has just made (nobody else writes
there), and never changed; a reader that finds it missing or half written takes the lock for
one whose owner is still being written (`placeholder`), and waits rather than steals.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from bdp.host import host_name

OWNER_FILE = "owner.json"
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
            host_name(),
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


@functools.lru_cache(maxsize=4096)  # a pure function, called on every acquire and release
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


def inside(root: str, target: str) -> str | None:
    """``target`` relative to the real path ``root``, in posix form; None when it resolves
    outside it (symlinks resolved) or to the root itself."""
    resolved = _real_below(root, target if target.startswith("/") else f"{root}/{target}")
    if not resolved.startswith(root + os.sep):
        return None
    return resolved[len(root) + 1 :].replace(os.sep, "/")


def _real_below(root: str, path: str) -> str:
    """The real path of ``path``: its normal form when no part of it below the real path
    ``root`` is a symlink (a look at each part, not realpath's at every part from /)."""
    normal = os.path.normpath(path)
    if not normal.startswith(root + os.sep):
        return os.path.realpath(path)
    part = root
    for name in normal[len(root) + 1 :].split(os.sep):
        part = f"{part}/{name}"
        try:
            if stat.S_ISLNK(os.lstat(part).st_mode):
                return os.path.realpath(path)
        except OSError:  # not there (yet): nothing below it can be a link
            break
    return normal


def placeholder(path: str) -> Lock:
    """Stands for a lock whose owner record is still being written: wait, don't steal."""
    return Lock(path, Holder("?", "?", "?", 0, 0.0), time.time())


def owner_record(path: str, holder: Holder) -> bytes:
    return json.dumps({"path": path, **holder_record(holder)}).encode()


def holder_record(holder: Holder) -> dict[str, object]:
    """What a lock's record says of its holder, and since when."""
    return {
        "acquired": time.time(),
        "run_id": holder.run_id,
        "issue_id": holder.issue_id,
        "host": holder.host,
        "pid": holder.pid,
        "started": holder.started,
    }


def write_new(target: str, data: bytes, replace: bool = False) -> None:
    """Write ``data`` to a new private file ``target`` (or over it, with ``replace``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(target, flags, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def bury(tomb: str) -> None:
    """Delete a lock directory renamed out of the way: its record, then itself."""
    try:
        os.unlink(f"{tomb}/{OWNER_FILE}")
        os.rmdir(tomb)
    except OSError:  # no record (a crash mid-acquire), or something more in it
        remove_tree(tomb)


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything in it, as far as possible: the rare slow path of a
    release, so shutil (and the compression modules it imports) loads only here."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _read_small(path: str) -> bytes:
    """A small file's bytes, in as few system calls as it takes (open, read, close)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, 4096)]
        while len(chunks[-1]) == 4096:
            chunks.append(os.read(fd, 4096))
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_lock(directory: str | Path) -> Lock | None:
    """The lock of ``directory``; None while it has no whole owner record."""
    try:
        raw = _read_small(f"{directory}/{OWNER_FILE}")
    except OSError:
        return None
    return parse_lock(raw, unquote(os.path.basename(directory)))


def parse_lock(raw: bytes | str, path: str) -> Lock | None:
    """The lock an owner record describes (``path`` when it names none); None if half made."""
    try:
        data = json.loads(raw)
        holder = Holder(
            data["run_id"], data["issue_id"], data["host"], int(data["pid"]), float(data["started"])
        )
        acquired = float(data["acquired"])
    except (ValueError, KeyError, TypeError):
        return None
    return Lock(data.get("path") or path, holder, acquired)
