"""Unit tests for bdp/repo/git.py against real git repositories in tmp_path."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from pathlib import Path

import pytest

from bdp.errors import RepoError
from bdp.repo import git as git_module
from bdp.repo.git import (
    CommitMessage,
    GitError,
    Head,
    changed_paths,
    commit_paths,
    committed_id,
    diff_of,
    fallback_identity,
    git,
    head_of,
    read_objects,
    repo_lock,
    work_tree_root,
)


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def init_repo(path: Path, identity: bool = True) -> Path:
    """A repository with a.py, b.py and c.py committed; ``identity`` sets user.name/email."""
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "-b", "main")
    run_git(path, "config", "commit.gpgsign", "false")
    if identity:
        run_git(path, "config", "user.name", "Test User")
        run_git(path, "config", "user.email", "test@example.com")
    for name in ("a.py", "b.py", "c.py"):
        (path / name).write_text(f"# {name}\n")
    run_git(path, "add", ".")
    who = [] if identity else ["-c", "user.name=Setup", "-c", "user.email=setup@example.com"]
    run_git(path, *who, "commit", "-q", "-m", "initial")
    return path


def commit_count(repo: Path) -> int:
    return int(run_git(repo, "rev-list", "--count", "HEAD"))


def status(repo: Path) -> dict[str, str]:
    """Path -> two-letter porcelain status (index, work tree)."""
    out = run_git(repo, "status", "--porcelain", "-z", "--untracked-files=all")
    return {entry[3:]: entry[:2] for entry in out.split("\0") if entry}


def files_in_head(repo: Path) -> list[str]:
    return run_git(repo, "show", "--name-only", "--format=", "HEAD").split()


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Git never walks above tmp_path, whatever the developer's environment."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


# -- work_tree_root --------------------------------------------------------------------


def test_work_tree_root_of_a_subfolder_is_the_top_of_the_repo(repo: Path) -> None:
    (repo / "pkg" / "sub").mkdir(parents=True)

    assert work_tree_root(repo / "pkg" / "sub") == repo.resolve()


def test_work_tree_root_of_a_missing_path_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(RepoError, match="does not exist") as caught:
        work_tree_root(tmp_path / "nowhere")

    assert str(tmp_path / "nowhere") in str(caught.value)
    assert "git repository" in caught.value.hint


def test_work_tree_root_of_a_file_says_it_is_not_a_directory(repo: Path) -> None:
    with pytest.raises(RepoError, match="is not a directory"):
        work_tree_root(repo / "a.py")


def test_work_tree_root_of_a_plain_folder_says_it_is_not_a_work_tree(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    with pytest.raises(RepoError, match="not inside a git work tree") as caught:
        work_tree_root(plain)

    assert "git init" in caught.value.hint


def test_git_failures_carry_gits_own_message(repo: Path) -> None:
    with pytest.raises(GitError, match=r"git checkout failed: .*no-such-branch"):
        git(repo, "checkout", "no-such-branch")


# -- changed_paths ---------------------------------------------------------------------


def test_changed_paths_lists_modified_and_new_files_among_the_given_paths(repo: Path) -> None:
    (repo / "a.py").write_text("changed\n")
    (repo / "b.py").write_text("changed too, but not ours\n")
    (repo / "new.py").write_text("new\n")
    (repo / "stranger.py").write_text("not ours\n")

    changed = changed_paths(repo, ["new.py", "a.py", "c.py", "missing.py"])

    assert changed == ["a.py", "new.py"]


def test_changed_paths_lists_new_files_in_new_folders_and_odd_names(repo: Path) -> None:
    (repo / "pkg" / "sub").mkdir(parents=True)
    (repo / "pkg" / "sub" / "deep.py").write_text("x\n")
    (repo / "my notes é.md").write_text("x\n")

    changed = changed_paths(repo, ["pkg/sub/deep.py", "my notes é.md"])

    assert changed == ["my notes é.md", "pkg/sub/deep.py"]


def test_changed_paths_lists_a_deleted_file(repo: Path) -> None:
    (repo / "a.py").unlink()

    assert changed_paths(repo, ["a.py"]) == ["a.py"]


def test_changed_paths_is_empty_for_unchanged_or_no_paths(repo: Path) -> None:
    (repo / "b.py").write_text("changed\n")

    assert changed_paths(repo, ["a.py"]) == []
    assert changed_paths(repo, []) == []


# -- commit_paths ----------------------------------------------------------------------


def test_commit_paths_commits_exactly_the_listed_changed_files(repo: Path, lock_dir: Path) -> None:
    # Given our edits to a.py and a new file, and someone else's edit to b.py
    (repo / "a.py").write_text("ours\n")
    (repo / "new.py").write_text("ours, new\n")
    (repo / "b.py").write_text("someone else's\n")

    # When bdp commits our files (c.py is listed but unchanged)
    sha = commit_paths(
        repo, ["a.py", "new.py", "c.py"], CommitMessage("proj-1: our change"), lock_dir
    )

    # Then the commit holds only our changed files, with our message
    assert sha == run_git(repo, "rev-parse", "HEAD").strip()
    assert sorted(files_in_head(repo)) == ["a.py", "new.py"]
    assert run_git(repo, "log", "-1", "--format=%B").strip() == "proj-1: our change"
    assert commit_count(repo) == 2
    # And the other edit stays uncommitted and unstaged, as before
    assert status(repo) == {"b.py": " M"}
    assert (repo / "b.py").read_text() == "someone else's\n"


def test_commit_paths_leaves_changes_staged_by_others_staged(repo: Path, lock_dir: Path) -> None:
    # Given someone staged b.py before our run ends
    (repo / "b.py").write_text("staged by someone\n")
    run_git(repo, "add", "b.py")
    (repo / "a.py").write_text("ours\n")

    commit_paths(repo, ["a.py"], CommitMessage("ours only"), lock_dir)

    assert files_in_head(repo) == ["a.py"]
    assert status(repo) == {"b.py": "M "}


def test_commit_paths_commits_a_deletion(repo: Path, lock_dir: Path) -> None:
    (repo / "c.py").unlink()

    assert commit_paths(repo, ["c.py"], CommitMessage("remove c"), lock_dir) is not None

    assert "c.py" not in run_git(repo, "ls-tree", "--name-only", "HEAD").split()
    assert status(repo) == {}


def test_commit_paths_returns_none_when_nothing_changed(repo: Path, lock_dir: Path) -> None:
    (repo / "b.py").write_text("not ours\n")
    head = run_git(repo, "rev-parse", "HEAD")

    assert commit_paths(repo, ["a.py", "c.py"], CommitMessage("nothing"), lock_dir) is None
    assert commit_paths(repo, [], CommitMessage("nothing"), lock_dir) is None

    assert run_git(repo, "rev-parse", "HEAD") == head


def test_concurrent_commits_of_different_files_all_succeed(repo: Path, lock_dir: Path) -> None:
    # Given eight workers, each with its own new file in the same repo
    names = [f"worker_{i}.py" for i in range(8)]
    for name in names:
        (repo / name).write_text(f"# {name}\n")
    start = threading.Barrier(len(names))
    results: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        start.wait()
        try:
            results[name] = commit_paths(repo, [name], CommitMessage(f"add {name}"), lock_dir)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    # When they all commit at once
    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then every commit landed, one file each
    assert errors == []
    assert all(results[name] for name in names)
    assert commit_count(repo) == 1 + len(names)
    for name in names:
        log = run_git(repo, "log", "--format=%s", "--", name).split("\n")
        assert log[0] == f"add {name}"
    assert status(repo) == {}


def test_repo_lock_is_an_exclusive_file_lock_while_held(repo: Path, lock_dir: Path) -> None:
    with repo_lock(repo, lock_dir):
        (lock_file,) = lock_dir.glob("git-*.lock")
        fd = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)

    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once released
    finally:
        os.close(fd)


def test_commit_paths_in_a_repo_without_identity_uses_the_bdp_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lock_dir: Path
) -> None:
    # Given no identity anywhere: not in the repo, the global or system config, or the env
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "no-such-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    bare = init_repo(tmp_path / "anonymous", identity=False)
    (bare / "a.py").write_text("changed\n")

    # When bdp commits
    sha = commit_paths(bare, ["a.py"], CommitMessage("anonymous change"), lock_dir)

    # Then the commit exists under the fallback identity
    assert sha is not None
    author = run_git(bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip()
    assert author == "bdp <bdp@localhost>|bdp <bdp@localhost>"


def test_commit_paths_keeps_the_repos_own_identity(repo: Path, lock_dir: Path) -> None:
    (repo / "a.py").write_text("changed\n")

    commit_paths(repo, ["a.py"], CommitMessage("with identity"), lock_dir)

    assert run_git(repo, "log", "-1", "--format=%an <%ae>").strip() == (
        "Test User <test@example.com>"
    )


def test_commit_paths_commits_a_staged_rename(repo: Path, lock_dir: Path) -> None:
    run_git(repo, "mv", "a.py", "renamed.py")

    assert changed_paths(repo, ["a.py", "renamed.py"]) == ["a.py", "renamed.py"]
    assert commit_paths(repo, ["a.py", "renamed.py"], CommitMessage("rename"), lock_dir) is not None


def test_diff_of_shows_modified_and_new_files_without_touching_the_index(repo: Path) -> None:
    from bdp.repo.git import diff_of

    (repo / "a.py").write_text("changed\n")
    (repo / "new.py").write_text("brand new\n")
    before = run_git(repo, "diff", "--cached", "--name-only")

    diff = diff_of(repo, ["a.py", "new.py"])

    assert "+changed" in diff
    assert "+++ b/new.py" in diff
    assert "+brand new" in diff
    assert run_git(repo, "diff", "--cached", "--name-only") == before
    assert "??" in run_git(repo, "status", "--porcelain", "--", "new.py")


# --- repository-controlled code --------------------------------------------------------------


def planted(repo: Path, name: str) -> tuple[Path, Path]:
    """An executable that leaves ``<name>.ran`` beside the repo when anything runs it."""
    marker = repo.parent / f"{name}.ran"
    script = repo.parent / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\ncat >/dev/null 2>&1 || true\n")
    script.chmod(0o755)
    return script, marker


def test_a_hook_planted_in_the_repo_is_never_run_by_bdps_commit(repo: Path, lock_dir: Path) -> None:
    # Given hooks an agent planted, in .git/hooks and through core.hooksPath
    script, marker = planted(repo, "hook")
    for hook in ("pre-commit", "commit-msg", "post-commit", "post-index-change"):
        (repo / ".git" / "hooks" / hook).write_text(script.read_text())
        (repo / ".git" / "hooks" / hook).chmod(0o755)
    (repo / "new.txt").write_text("x\n")

    # When bdp commits the agent's file
    commit = commit_paths(repo, ["new.txt"], CommitMessage("t-1: add"), lock_dir)

    # Then the commit exists and no hook ran
    assert commit is not None
    assert not marker.exists()


def test_an_fsmonitor_planted_in_the_config_is_never_run_by_bdps_status(repo: Path) -> None:
    script, marker = planted(repo, "fsmonitor")
    run_git(repo, "config", "core.fsmonitor", str(script))
    (repo / "new.txt").write_text("x\n")

    assert changed_paths(repo, ["new.txt"]) == ["new.txt"]
    assert not marker.exists()


def test_signing_and_external_diff_programs_in_the_config_are_never_run(
    repo: Path, lock_dir: Path
) -> None:
    # Given a config that would sign every commit and diff through a planted program
    script, marker = planted(repo, "program")
    run_git(repo, "config", "commit.gpgSign", "true")
    run_git(repo, "config", "gpg.program", str(script))
    run_git(repo, "config", "diff.external", str(script))
    (repo / "README.md").write_text("changed\n")

    # When bdp diffs and commits
    diff = diff_of(repo, ["README.md"])
    commit = commit_paths(repo, ["README.md"], CommitMessage("t-2: change"), lock_dir)

    # Then git's own diff came back, the commit is made, and the program never ran
    assert "+changed" in diff
    assert commit is not None
    assert not marker.exists()


def test_a_runs_commit_names_its_issue_and_run_in_trailers(repo: Path, lock_dir: Path) -> None:
    (repo / "new.txt").write_text("x\n")
    message = CommitMessage.for_run("t-7", "Add the thing\nmore detail", "run123")

    commit_paths(repo, ["new.txt"], message, lock_dir)

    assert run_git(repo, "log", "-1", "--format=%s").strip() == "t-7: Add the thing"
    trailers = run_git(repo, "log", "-1", "--format=%(trailers:only,unfold)").strip()
    assert trailers.splitlines() == ["Bdp-Issue: t-7", "Bdp-Run: run123"]


def test_a_title_cannot_inject_trailers_into_a_runs_commit(repo: Path, lock_dir: Path) -> None:
    (repo / "new.txt").write_text("x\n")
    title = "Fix it\n\nSigned-off-by: Mallory <m@example.invalid>\nBdp-Run: forged"
    message = CommitMessage.for_run("t-8", title, "run456")

    commit_paths(repo, ["new.txt"], message, lock_dir)

    body = run_git(repo, "log", "-1", "--format=%B")
    assert "Mallory" not in body
    trailers = run_git(repo, "log", "-1", "--format=%(trailers:only,unfold)").strip()
    assert trailers.splitlines() == ["Bdp-Issue: t-8", "Bdp-Run: run456"]


def test_a_huge_title_makes_a_short_subject() -> None:
    message = CommitMessage.for_run("t-1", "y" * 200_000, "run-1")

    assert len(message.subject) <= 130
    assert message.subject.startswith("t-1: yyy")
    assert message.subject.endswith("…")


def test_a_message_of_any_size_reaches_git_on_stdin(repo: Path, lock_dir: Path) -> None:
    # One argument over 128 KiB is refused by the kernel (E2BIG); stdin has no such limit
    (repo / "new.txt").write_text("x\n")
    message = CommitMessage("z" * 200_000, (("Bdp-Issue", "t-9"),))

    commit_paths(repo, ["new.txt"], message, lock_dir)

    assert len(run_git(repo, "log", "-1", "--format=%s").strip()) == 200_000
    assert (
        run_git(repo, "log", "-1", "--format=%(trailers:only,unfold)").strip() == "Bdp-Issue: t-9"
    )


# -- one git call where one does -----------------------------------------------------------


def test_commit_paths_returns_the_commit_git_made(repo: Path, lock_dir: Path) -> None:
    (repo / "a.py").write_text("changed\n")

    sha = commit_paths(repo, ["a.py"], CommitMessage("t-1: change"), lock_dir)

    assert sha == run_git(repo, "rev-parse", "HEAD").strip()
    assert len(sha or "") == 40


def test_the_commit_is_read_from_gits_summary_line_else_asked_of_git(repo: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD").strip()
    other = "f" * 40

    assert committed_id(repo, f"[main {other}] subject [x {head}] y\n 1 file changed\n") == other
    assert committed_id(repo, f"[detached HEAD {other}] s\n") == other
    assert committed_id(repo, f"[main (root-commit) {other}] s\n") == other
    assert committed_id(repo, "a git that words it otherwise\n") == head


def test_head_of_names_the_commit_the_branch_and_the_tips_asked_for(repo: Path) -> None:
    head = run_git(repo, "rev-parse", "HEAD").strip()
    run_git(repo, "branch", "other")

    assert head_of(repo) == Head(head, "main")
    assert head_of(repo, "other", "main") == Head(head, "main", (head, head))
    with pytest.raises(GitError):
        head_of(repo, "no-such-branch")
    run_git(repo, "checkout", "-q", "--detach")
    assert head_of(repo).branch is None


def test_read_objects_gives_each_file_exactly_and_none_for_what_is_not_there(
    repo: Path,
) -> None:
    (repo / "odd.txt").write_bytes("é\n\nline three\n".encode())
    run_git(repo, "add", "odd.txt")
    run_git(repo, "commit", "-qm", "odd")
    head = run_git(repo, "rev-parse", "HEAD").strip()

    found = read_objects(repo, ["HEAD", "HEAD:odd.txt", "HEAD:missing.txt", "HEAD:a.py"])

    assert [(o.oid, o.kind) if o else None for o in found][:1] == [(head, "commit")]
    assert [o.content if o else None for o in found][1:] == [
        "é\n\nline three\n".encode(),
        None,
        b"# a.py\n",
    ]


def test_the_fallback_identity_is_looked_up_once_per_repository(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, ...]] = []
    real_git = git_module.git

    def counting(where: Path, *args: str, **kwargs: object) -> str:
        asked.append(args)
        return real_git(where, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(git_module, "git", counting)
    git_module._identity_of.cache_clear()  # an earlier test in this process may have asked

    first, second = fallback_identity(repo), fallback_identity(repo / ".")

    assert first == second == {}
    assert asked == [("config", "user.email")]
