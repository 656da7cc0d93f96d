"""Git for bdp: validate a work tree and commit exactly a run's files.

Commits are serialised per repository with an OS file lock, so parallel workers on one
machine never collide on git's index lock; a lock held by an agent's own git command is
waited out with a short retry.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tenacity import retry, retry_if_exception_message, stop_after_attempt, wait_random

from bdp.config import user_umask
from bdp.errors import BdpError, RepoError

#: Config that keeps git from running code the repository names: hooks (a commit runs
#: post-commit even with --no-verify), the fsmonitor (`git status` runs it), signing
#: programs, pagers and external diff drivers. An agent can write a repo's .git/config or its
#: hooks; bdp's own git calls must never execute them.
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "diff.external=",
    "core.sshCommand=ssh",
    "protocol.ext.allow=never",
)
#: Environment for bdp's git: no prompts, no editor, no system or user config surprises.
_SAFE_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_PAGER": "cat"}


class GitError(BdpError):
    """A git command failed."""


def safe_argv(*args: str) -> list[str]:
    """The argv of ``git args`` with `SAFE_CONFIG` in force."""
    config = [part for pair in SAFE_CONFIG for part in ("-c", pair)]
    return ["git", *config, *args]


def git(repo: Path, *args: str, env: dict[str, str] | None = None, feed: str | None = None) -> str:
    """Run git in ``repo`` (``feed`` on its stdin) and return stdout; GitError with git's
    message on failure.

    Every call runs with `SAFE_CONFIG`, so nothing the repository configures is executed.
    """
    done = subprocess.run(
        safe_argv(*args),
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        input=feed,
        stdin=subprocess.DEVNULL if feed is None else None,
        env={**(os.environ if env is None else env), **_SAFE_ENV},
        umask=user_umask(),
    )
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def git_bytes(repo: Path, *args: str) -> bytes:
    """Run git in ``repo`` and return its stdout as bytes (a blob's exact content)."""
    done = subprocess.run(
        safe_argv(*args),
        cwd=repo,
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **_SAFE_ENV},
        umask=user_umask(),
    )
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def checked_out_branch(repo: Path) -> str | None:
    """The branch checked out in ``repo``'s work tree, or None (detached HEAD)."""
    try:
        return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD").strip()
    except GitError:
        return None


def work_tree_root(path: Path) -> Path:
    """The top of the git work tree containing ``path``; RepoError when there is none.

    Asked of git once per process and path (`bdp enqueue --watch` asks at every poll).
    """
    if not path.exists():
        raise RepoError(f"{path} does not exist", "pass the path of a git repository")
    if not path.is_dir():
        raise RepoError(f"{path} is not a directory", "pass the path of a git repository")
    return _top_of(str(path))


@functools.lru_cache(maxsize=64)
def _top_of(path: str) -> Path:
    try:
        return Path(git(Path(path), "rev-parse", "--show-toplevel").strip())
    except GitError:
        raise RepoError(
            f"{path} is not inside a git work tree", "run `git init` there, or pass another path"
        ) from None


@dataclass(frozen=True)
class Head:
    """Where a work tree stands: HEAD's commit, the branch checked out (None: detached), and
    the tips of the branches asked about, all read by one git call."""

    commit: str
    branch: str | None
    tips: tuple[str, ...] = ()


def head_of(repo: Path, *branches: str) -> Head:
    """``repo``'s `Head`, with the tip of each of ``branches``; GitError when HEAD or one of
    them has no commit."""
    revs = ["HEAD^{commit}", *(f"refs/heads/{branch}^{{commit}}" for branch in branches)]
    lines = git(repo, "rev-parse", *revs, "--symbolic-full-name", "HEAD").split()
    name = lines[-1]
    branch = name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else None
    return Head(lines[0], branch, tuple(lines[1:-1]))


@dataclass(frozen=True)
class GitObject:
    """An object `git cat-file --batch` printed: its id, its type and its content."""

    oid: str
    kind: str  # "blob", "commit", "tree" or "tag"
    content: bytes


def read_objects(repo: Path, specs: Sequence[str]) -> list[GitObject | None]:
    """The object each of ``specs`` names (a commit, ``<rev>:<path>``), None for those that
    name nothing; all from one `git cat-file --batch`."""
    done = subprocess.run(
        safe_argv("cat-file", "--batch"),
        cwd=repo,
        capture_output=True,
        check=False,
        input="".join(f"{spec}\n" for spec in specs).encode(),
        env={**os.environ, **_SAFE_ENV},
        umask=user_umask(),
    )
    if done.returncode != 0:
        raise GitError(f"git cat-file failed: {done.stderr.decode(errors='replace').strip()}")
    return _batch_objects(done.stdout, len(specs))


def _batch_objects(out: bytes, count: int) -> list[GitObject | None]:
    """Split `git cat-file --batch` output: ``<oid> <type> <size>\n<content>\n`` per object,
    or ``<spec> missing\n`` (also ``ambiguous``)."""
    found: list[GitObject | None] = []
    at = 0
    for _ in range(count):
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if len(header) != 3 or not header[2].isdigit():
            found.append(None)
            continue
        size = int(header[2])
        found.append(GitObject(header[0].decode(), header[1].decode(), out[at : at + size]))
        at += size + 1
    return found


def changed_paths(repo: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that differ from HEAD (modified or new), repo-relative."""
    if not paths:
        return []
    out = git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths)
    entries = iter(out.split("\0"))
    changed = set()
    for entry in entries:
        if len(entry) < 4:
            continue
        changed.add(entry[3:])
        if "R" in entry[:2] or "C" in entry[:2]:
            changed.add(next(entries, ""))  # a rename or copy is followed by its old path
    changed.discard("")
    return sorted(changed)


@contextmanager
def machine_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on ``lock_file``, shared by every process on this machine.

    The kernel drops it when the holder dies, so a crashed worker never leaves it held.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def repo_lock(repo: Path, lock_dir: Path) -> Iterator[None]:
    """Exclusive per-repository lock shared by every bdp process on this machine."""
    digest = hashlib.sha1(str(repo).encode(), usedforsecurity=False).hexdigest()[:16]
    with machine_lock(lock_dir / f"git-{digest}.lock"):
        yield


#: Characters of an issue's title in a commit subject.
MAX_SUBJECT = 120


@dataclass(frozen=True)
class CommitMessage:
    """A commit's subject line and its trailers (``Key: value`` lines git appends)."""

    subject: str
    trailers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def for_run(cls, issue_id: str, title: str, run_id: str) -> CommitMessage:
        """``<id>: <title's first line>``, with Bdp-Issue and Bdp-Run trailers.

        Only one line of the title is used, so a title cannot add trailers of its own.
        """
        first = _one_line(title.strip().split("\n", 1)[0])
        if len(first) > MAX_SUBJECT:  # a title of any size stays a short argument
            first = first[: MAX_SUBJECT - 1].rstrip() + "…"
        subject = f"{_one_line(issue_id)}: {first}" if first else _one_line(issue_id)
        return cls(subject, (("Bdp-Issue", _one_line(issue_id)), ("Bdp-Run", _one_line(run_id))))

    def text(self) -> str:
        """The whole message, for `git commit -F -` (on stdin: never an argument, whatever
        its size); the trailers are its last paragraph, as `git interpret-trailers` reads them."""
        trailers = "".join(f"{key}: {value}\n" for key, value in self.trailers)
        return f"{self.subject}\n\n{trailers}" if trailers else f"{self.subject}\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def commit_paths(
    repo: Path, paths: Sequence[str], message: CommitMessage, lock_dir: Path
) -> str | None:
    """Commit exactly the changed ones among ``paths``; the new commit id, or None if none."""
    with repo_lock(repo, lock_dir):
        changed = changed_paths(repo, paths)
        return commit_changed(repo, changed, message) if changed else None


@retry(
    retry=retry_if_exception_message(match=r".*index\.lock.*"),
    stop=stop_after_attempt(20),
    wait=wait_random(0.05, 0.3),
    reraise=True,
)
def commit_changed(repo: Path, paths: Sequence[str], message: CommitMessage) -> str:
    """Commit exactly ``paths``, which differ from HEAD (the caller holds `repo_lock`); the
    new commit's id, read from git's own summary line."""
    env = {**os.environ, **fallback_identity(repo)}
    present = [path for path in paths if (repo / path).exists()]  # deletions need no add
    if present:
        git(repo, "add", "--", *present, env=env)
    argv = ("commit", "--no-verify", "-F", "-", "--", *paths)
    return committed_id(repo, git(repo, *FULL_IDS, *argv, env=env, feed=message.text()))


#: Makes `git commit` name its commit in full on its summary line (``[main 4f2c…] subject``).
FULL_IDS = ("-c", "core.abbrev=no")
_SUMMARY = re.compile(r"\[.*? ([0-9a-f]{40}(?:[0-9a-f]{24})?)\] ")


def committed_id(repo: Path, output: str) -> str:
    """The commit a `git commit` (run with `FULL_IDS`) just made, from its output; asked of
    git only if the summary line is not there (a git that words it otherwise)."""
    found = _SUMMARY.match(output)
    return found.group(1) if found else git(repo, "rev-parse", "HEAD").strip()


def fallback_identity(repo: Path) -> dict[str, str]:
    """An author identity when the repository has none, so a commit never fails for it.

    Looked up once per process and repository: a commit of every run asked git each time.
    """
    return dict(_identity_of(os.path.realpath(repo)))


@functools.lru_cache(maxsize=64)
def _identity_of(repo: str) -> tuple[tuple[str, str], ...]:
    try:
        git(Path(repo), "config", "user.email")
        return ()
    except GitError:
        return (
            ("GIT_AUTHOR_NAME", "bdp"),
            ("GIT_AUTHOR_EMAIL", "bdp@localhost"),
            ("GIT_COMMITTER_NAME", "bdp"),
            ("GIT_COMMITTER_EMAIL", "bdp@localhost"),
        )


def diff_of(repo: Path, paths: Sequence[str]) -> str:
    """The change of ``paths`` against HEAD, new files included, without touching the index."""
    tracked = {p for p in git(repo, "ls-files", "--", *paths).splitlines() if p} if paths else set()
    diff = ("diff", "--no-ext-diff", "--no-textconv", "HEAD", "--", *sorted(tracked))
    parts = [git(repo, *diff)] if tracked else []
    for path in sorted(set(paths) - tracked):
        if (repo / path).is_file():
            lines = (repo / path).read_text(errors="replace").splitlines()
            parts.append(f"--- /dev/null\n+++ b/{path}\n" + "".join(f"+{ln}\n" for ln in lines))
    return "".join(parts)
