"""Work that did not land, kept on the shared remote, so a continuation can go on anywhere.

A run that ends unfinished (or whose work must be replayed at a newer tip) keeps its work on
a branch of its machine's clone. When the repo lands through a shared remote, bdp also pushes
that branch there, under ``refs/bdp/kept/`` (out of the remote's branch list), so whichever
machine takes the continuation can fetch it. Once the work lands, the copy is deleted.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from bdp.repo.git import GitError, git, repo_lock

#: Where kept branches live on the remote.
KEPT_REFS = "refs/bdp/kept/"


def kept_ref(branch: str) -> str:
    """The remote ref holding the kept ``branch`` (one of bdp's: ``bdp/...``)."""
    return f"{KEPT_REFS}{branch}"


def share(repo: Path, remote: str, branch: str, lock_dir: Path) -> None:
    """Push the kept ``branch`` to ``remote``, replacing an older copy; GitError if it fails."""
    with repo_lock(repo, lock_dir):
        git(repo, "push", "--quiet", "--force", remote, f"refs/heads/{branch}:{kept_ref(branch)}")


def bring(repo: Path, remote: str | None, branch: str, lock_dir: Path) -> bool:
    """Make sure this clone has ``branch``: it is here, or fetched from the remote's copy.
    False when neither has it (the machine that kept it had no remote to share it on)."""
    if _has_branch(repo, branch):
        return True
    if remote is None:
        return False
    try:
        with repo_lock(repo, lock_dir):
            git(
                repo,
                "fetch",
                "--quiet",
                "--no-tags",
                remote,
                f"{kept_ref(branch)}:refs/heads/{branch}",
            )
    except GitError:
        return False
    return True


def unshare(repo: Path, remote: str, branch: str, lock_dir: Path) -> None:
    """Delete the remote's copy of ``branch`` (its work landed); nothing if there is none."""
    with contextlib.suppress(GitError), repo_lock(repo, lock_dir):
        git(repo, "push", "--quiet", remote, f":{kept_ref(branch)}")


def _has_branch(repo: Path, branch: str) -> bool:
    try:
        git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True
