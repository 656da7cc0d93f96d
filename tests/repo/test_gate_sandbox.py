"""bdp.repo.gate_sandbox with real bubblewrap: a gate check writes in its tree and nowhere else.

The places it must not reach are real ones of this machine: the state dir beside the tree,
the main repo's git dir, the shared /tmp, a folder in the user's home, and a TCP server on
127.0.0.1.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.repo.gate_sandbox import GateSandbox
from bdp.repo.quality_gate import run_gate
from bdp.repo.repo_config import ShellCommand
from bdp.repo.worktree import branch_name, create, tip

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    """A folder in the user's real home (outside every temp dir)."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    path = home / ".cache" / "bdp-gate-tests" / uuid.uuid4().hex
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def setup(tmp_path: Path, repo: Path) -> tuple[Settings, Path, Path]:
    """Settings, the main repo, and a run's worktree under the state dir."""
    settings = Settings(home=tmp_path / "home")
    (settings.home / "secret.key").parent.mkdir(parents=True)
    (settings.home / "secret.key").write_text("the task key\n")
    tree = create(repo, settings.home, branch_name("t-1", "run-1"), tip(repo, "main")).path
    return settings, repo, tree


def check(settings: Settings, repo: Path, tree: Path, command: str) -> str:
    """Run ``command`` as a sandboxed gate check in ``tree``; its output (it must pass)."""
    sandbox = GateSandbox.for_run(settings, repo)
    assert sandbox is not None
    result = run_gate(tree, (ShellCommand(f"{command}; exit 1", timeout=30),), "run-1", sandbox)
    return result.output


def test_a_check_writes_in_its_tree_and_nowhere_else(
    setup: tuple[Settings, Path, Path], elsewhere: Path
) -> None:
    settings, repo, tree = setup
    targets = {
        "tree": tree / "built.txt",
        "home": elsewhere / "planted.txt",
        "main repo": repo / "planted.txt",
        "git dir": repo / ".git" / "hooks" / "pre-commit",
    }
    script = "; ".join(f"echo x > {path} && echo wrote-{name}" for name, path in targets.items())

    output = check(settings, repo, tree, script)

    assert "wrote-tree" in output
    assert (tree / "built.txt").exists()
    for name, path in targets.items():
        if name != "tree":
            assert not path.exists(), name


def test_a_check_cannot_see_the_state_dir_or_the_shared_tmp(
    setup: tuple[Settings, Path, Path],
) -> None:
    settings, repo, tree = setup
    planted = Path("/tmp") / f"bdp-gate-{uuid.uuid4().hex}"
    mine = planted.with_suffix(".mine")
    planted.write_text("another user's temp file\n")
    try:
        script = (
            f"cat {settings.home / 'secret.key'}; cat {planted}; echo tmp > {mine} && ls {mine}"
        )
        output = check(settings, repo, tree, script)
    finally:
        planted.unlink()

    assert "the task key" not in output
    assert "another user's temp file" not in output
    assert str(mine) in output  # it has a /tmp of its own to write to
    assert not mine.exists()  # which is not the machine's


def test_a_check_has_no_network_but_git_works_in_its_tree(
    setup: tuple[Settings, Path, Path],
) -> None:
    settings, repo, tree = setup
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = (
            f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' "
            "&& echo connected || echo refused"
        )
        output = check(settings, repo, tree, f"{probe}; git log --format=%s -1")

    assert "refused" in output
    assert "connected" not in output
    assert "initial" in output  # the worktree's git, read through the repo's git dir
