"""The main work tree's fast-forward, safe against the lander dying half way through it.

`git merge --ff-only` rewrites the work tree's files one by one, then the index, then the
branch. Killed in between, it leaves some files new and the branch old: to git (and to the
next lander, and to the person) those files look like uncommitted edits, and every later
fast-forward over them is refused. So before it starts, bdp writes a journal (the old and the
new commit) beside the lander's lock; the next lander to take the lock finds it and puts the
files and index entries the landing had touched back as they were at the old commit. The
branch is then as it was before the landing, never half way; the landing itself is done again
by whoever redoes the run. A file whose content is neither the old nor the new one is a
person's, and is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bdp.repo.git import GitError, git, git_bytes
from bdp.repo.procs import pids_where

log = logging.getLogger(__name__)

#: Marks the git processes of one fast-forward, so a recovery can wait for orphans of it.
MARKER_ENV = "BDP_LANDING"
#: Seconds a recovery waits for a dead lander's git to finish before it gives up for now.
ORPHAN_WAIT = 30.0


def fast_forward(repo: Path, new: str, journal: Path, old: str = "") -> None:
    """Fast-forward the checked-out branch of ``repo`` to ``new``, journalled; GitError when
    git refuses (then nothing was changed). ``old``: HEAD's commit, when the caller has just
    seen it (else git is asked)."""
    marker = uuid.uuid4().hex
    old = old or git(repo, "rev-parse", "HEAD").strip()
    _write(journal, {"old": old, "new": new, "marker": marker, "at": time.time()})
    try:
        env = {**os.environ, MARKER_ENV: marker}
        git(repo, "merge", "--ff-only", "--quiet", "--no-edit", new, env=env)
    finally:
        journal.unlink(missing_ok=True)


def recover(repo: Path, journal: Path) -> list[str]:
    """Undo what a fast-forward that died half way left in the work tree; the paths put back.

    Call it holding the lander's lock (no other fast-forward of this tree runs meanwhile).
    """
    entry = _read(journal)
    if entry is None:
        return []
    if not _orphans_gone(entry.marker):
        log.warning("a dead lander's git still runs in %s; recovering later", repo)
        return []
    restored: list[str] = []
    if git(repo, "rev-parse", "HEAD").strip() == entry.old:  # else it finished, or moved on
        _drop_stale_index_lock(repo, entry.at)
        restored = _put_back(repo, entry.old, entry.new, entry.at)
    journal.unlink(missing_ok=True)
    if restored:
        log.warning("undid a half-done landing in %s (%d files put back)", repo, len(restored))
    return restored


def _put_back(repo: Path, old: str, new: str, since: float) -> list[str]:
    """Return each path the landing changes to its old content where it has the new one (or
    a truncated start of it: the file git was writing when it died); the paths put back."""
    paths = [p for p in git(repo, "diff", "--name-only", "-z", old, new).split("\0") if p]
    in_old, in_new = _blobs(repo, old, paths), _blobs(repo, new, paths)
    _put_back_index(repo, old, paths, in_new)
    on_disk = _blobs_on_disk(repo, paths)
    put_back = [
        path
        for path in paths
        if on_disk.get(path) == in_new.get(path)  # None == None: deleted, as in new
        or _half_written(repo, path, in_new.get(path), since)
    ]
    for path in (p for p in put_back if p not in in_old):
        (repo / path).unlink(missing_ok=True)
    back = [p for p in put_back if p in in_old]
    if back:
        git(repo, "checkout", old, "--", *back)
    with contextlib.suppress(GitError):  # exits 1 while other files differ; refreshed anyway
        git(repo, "update-index", "-q", "--refresh")
    return put_back


def _put_back_index(repo: Path, old: str, paths: list[str], in_new: dict[str, str]) -> None:
    """Return the index entries git already wrote as the new commit's to the old commit's.

    git writes the whole new index before it moves the branch: killed in between, the index
    says the new commit while the branch says the old, and every later fast-forward is refused.
    """
    staged = _blobs_in_index(repo, paths)
    written = [p for p in paths if staged.get(p) == in_new.get(p)]
    if written:
        feed = "\0".join(written)
        git(repo, "reset", "-q", "--pathspec-from-file=-", "--pathspec-file-nul", old, feed=feed)


def _blobs_in_index(repo: Path, paths: list[str]) -> dict[str, str]:
    """Each of ``paths`` that the index has, with its blob id."""
    listing = git(repo, "ls-files", "-s", "-z", "--", *paths)
    found = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        found[path] = meta.split()[1]
    return found


def _blobs(repo: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """Each of ``paths`` that ``commit`` has, with its blob id."""
    listing = git(repo, "ls-tree", "-r", "-z", commit, "--", *paths)
    found = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        found[path] = meta.split()[2]
    return found


def _blobs_on_disk(repo: Path, paths: list[str]) -> dict[str, str]:
    """The blob id of each of ``paths`` that is a file on disk (no filters run)."""
    present = [p for p in paths if (repo / p).is_file() and not (repo / p).is_symlink()]
    if not present:
        return {}
    ids = git(repo, "hash-object", "--no-filters", "--stdin-paths", feed="\n".join(present))
    return dict(zip(present, ids.split(), strict=True))


def _half_written(repo: Path, path: str, blob: str | None, since: float) -> bool:
    """True when the file, changed since the landing began, is a strict start of ``blob``."""
    file = repo / path
    try:
        if blob is None or file.stat().st_mtime < since - 1:
            return False
        written = file.read_bytes()
    except OSError:
        return False
    whole = git_bytes(repo, "cat-file", "blob", blob)
    return len(written) < len(whole) and whole.startswith(written)


def _orphans_gone(marker: str) -> bool:
    deadline = time.monotonic() + ORPHAN_WAIT
    while pids_where(lambda environ: environ.get(MARKER_ENV) == marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _drop_stale_index_lock(repo: Path, since: float) -> None:
    """Remove git's index lock when the dead landing made it (no git of it runs any more)."""
    lock = Path(git(repo, "rev-parse", "--git-path", "index.lock").strip())
    lock = lock if lock.is_absolute() else repo / lock
    try:
        if lock.stat().st_mtime >= since - 1:
            lock.unlink()
    except FileNotFoundError:
        return


def _write(journal: Path, entry: dict[str, object]) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = journal.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(entry, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, journal)


def _read(journal: Path) -> _Entry | None:
    try:
        entry = json.loads(journal.read_text())
        return _Entry(str(entry["old"]), str(entry["new"]), str(entry["marker"]), entry["at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # not bdp's journal: nothing to undo by it
        return None


@dataclass(frozen=True)
class _Entry:
    """One fast-forward in progress: from ``old`` to ``new``, its git marked by ``marker``."""

    old: str
    new: str
    marker: str
    at: float
