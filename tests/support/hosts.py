"""Simulated machines on one machine: each "host" has its own clone (at its own path), its
own BDP_HOME, its own stand-in bd database and its own host name; they share one Redis and
one bare git repository as the remote. Every clone's bd database starts as the same copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import git
from tests.support.beads import create_issue, init_workspace

#: The name every host's BDP_REPOS gives the shared repo.
REPO_NAME = "app"


@dataclass(frozen=True)
class Host:
    """One simulated machine."""

    name: str
    clone: Path
    home: Path
    env: dict[str, str]


def shared_remote(root: Path) -> Path:
    """A bare repository holding one commit on main: the remote every host lands through."""
    seed, bare = root / "seed", root / "remote.git"
    seed.mkdir(parents=True)
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("# shared repo\n")
    (seed / ".gitignore").write_text(".beads/\n")
    git(seed, "add", ".")
    git(
        seed,
        "-c",
        "user.name=Seed",
        "-c",
        "user.email=seed@example.invalid",
        "commit",
        "-qm",
        "initial",
    )
    git(root, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def seeded_backlog(root: Path, count: int) -> tuple[Path, list[str]]:
    """A bd workspace holding ``count`` ready issues, to copy into every clone."""
    workspace = root / "backlog"
    init_workspace(workspace)
    ids = [create_issue(workspace, f"Feature {n}") for n in range(count)]
    return workspace / ".beads", ids


def make_host(
    root: Path, name: str, bare: Path, beads: Path | None, base_env: dict[str, str]
) -> Host:
    """A host named ``name`` under ``root``: a clone of ``bare`` at a path of its own (with a
    copy of ``beads``, when given), mapped as `REPO_NAME`."""
    clone = root / name / "src" / f"{REPO_NAME}-{name}"
    clone.parent.mkdir(parents=True)
    git(root, "clone", "-q", str(bare), str(clone))
    git(clone, "config", "user.name", f"Dev {name}")
    git(clone, "config", "user.email", f"{name}@example.invalid")
    if beads is not None:
        shutil.copytree(beads, clone / ".beads")
    home = root / name / "bdp-home"
    env = {
        **base_env,
        "BDP_HOME": str(home),
        "BDP_HOST": name,
        "BDP_REPOS": f"{REPO_NAME}={clone}",
        "BDP_REMOTE": "origin",
        "BDP_ISOLATION": "worktree",
    }
    return Host(name, clone, home, env)


def landed_on(bare: Path, branch: str = "main") -> dict[str, list[str]]:
    """Each issue's commits on the remote's ``branch`` (by their Bdp-Issue trailer)."""
    log = git(bare, "log", branch, "--format=%H %(trailers:key=Bdp-Issue,valueonly)")
    found: dict[str, list[str]] = {}
    for line in log.splitlines():
        sha, _, issue_id = line.partition(" ")
        if issue_id.strip():
            found.setdefault(issue_id.strip(), []).append(sha)
    return found


def files_of(bare: Path, sha: str) -> set[str]:
    shown = git(bare, "show", "--name-only", "--format=", sha)
    return {line for line in shown.splitlines() if line}
