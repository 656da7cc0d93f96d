"""Unit tests for bdp/repo/guards.py: where agents may write and which git commands they may run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.repo.guards import check_bash, check_edit, edit_target


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository folder with a .git directory and a sibling folder outside it."""
    root = tmp_path / "repo"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("not yours\n")
    return root


# -- check_edit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("../outside/secret.txt", id="dotdot-escape"),
        pytest.param("src/../../outside/new.py", id="dotdot-after-a-folder"),
        pytest.param("../repo-sibling/file.py", id="dotdot-to-a-name-prefix-sibling"),
    ],
)
def test_check_edit_refuses_relative_paths_that_escape_the_repo(repo: Path, target: str) -> None:
    reason = check_edit(repo, target)

    assert reason is not None
    assert "outside the repository" in reason
    assert target in reason


def test_check_edit_refuses_an_absolute_path_elsewhere(repo: Path, tmp_path: Path) -> None:
    target = str(tmp_path / "outside" / "secret.txt")

    reason = check_edit(repo, target)

    assert reason is not None
    assert "outside the repository" in reason


def test_check_edit_refuses_a_system_path(repo: Path) -> None:
    assert check_edit(repo, "/etc/passwd") is not None


def test_check_edit_allows_an_absolute_path_inside_the_repo(repo: Path) -> None:
    assert check_edit(repo, str(repo / "src" / "app.py")) is None


def test_check_edit_refuses_a_path_through_a_symlinked_folder_pointing_outside(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "link").symlink_to(tmp_path / "outside", target_is_directory=True)

    reason = check_edit(repo, "link/secret.txt")

    assert reason is not None
    assert "outside the repository" in reason


def test_check_edit_refuses_a_symlinked_file_pointing_outside(repo: Path, tmp_path: Path) -> None:
    (repo / "notes.txt").symlink_to(tmp_path / "outside" / "secret.txt")

    assert check_edit(repo, "notes.txt") is not None
    assert check_edit(repo, str(repo / "notes.txt")) is not None


def test_check_edit_allows_a_symlink_that_stays_inside_the_repo(repo: Path) -> None:
    (repo / "alias.py").symlink_to(repo / "src" / "app.py")

    assert check_edit(repo, "alias.py") is None


def test_check_edit_accepts_a_repo_given_through_a_symlink(repo: Path, tmp_path: Path) -> None:
    via_link = tmp_path / "repo-link"
    via_link.symlink_to(repo, target_is_directory=True)

    assert check_edit(via_link, str(via_link / "src" / "app.py")) is None
    assert check_edit(via_link, str(repo / "src" / "app.py")) is None


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(".git/config", id="config"),
        pytest.param(".git/hooks/pre-commit", id="hook"),
        pytest.param(".git/index", id="index"),
        pytest.param("src/../.git/HEAD", id="via-dotdot"),
    ],
)
def test_check_edit_refuses_git_internals(repo: Path, target: str) -> None:
    reason = check_edit(repo, target)

    assert reason is not None
    assert "inside .git" in reason


def test_check_edit_refuses_git_internals_given_as_an_absolute_path(repo: Path) -> None:
    reason = check_edit(repo, str(repo / ".git" / "config"))

    assert reason is not None
    assert "inside .git" in reason


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("src/app.py", id="existing-file"),
        pytest.param("pkg/sub/deeper/new_module.py", id="nested-new-file"),
        pytest.param("données/résumé été.md", id="unicode"),
        pytest.param("my folder/my file.txt", id="spaces"),
        pytest.param(".gitignore", id="gitignore-is-not-git-internals"),
        pytest.param(".github/workflows/ci.yml", id="github-folder"),
        pytest.param("./src/./app.py", id="dot-segments"),
    ],
)
def test_check_edit_allows_files_inside_the_repo(repo: Path, target: str) -> None:
    assert check_edit(repo, target) is None


@pytest.mark.parametrize(
    ("tool", "tool_input", "expected"),
    [
        pytest.param("Write", {"file_path": "a.py"}, "a.py", id="write"),
        pytest.param("Edit", {"file_path": "b.py"}, "b.py", id="edit"),
        pytest.param("MultiEdit", {"file_path": "c.py"}, "c.py", id="multiedit"),
        pytest.param("NotebookEdit", {"notebook_path": "n.ipynb"}, "n.ipynb", id="notebook"),
        pytest.param("Read", {"file_path": "a.py"}, None, id="read-is-not-an-edit"),
        pytest.param("Bash", {"command": "ls"}, None, id="bash"),
        pytest.param("Write", {}, None, id="missing-path"),
    ],
)
def test_edit_target_names_the_file_an_edit_tool_writes(
    tool: str, tool_input: dict[str, object], expected: str | None
) -> None:
    assert edit_target(tool, tool_input) == expected


# -- check_bash ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("git stash", id="stash"),
        pytest.param("git stash push -m wip", id="stash-push"),
        pytest.param("git stash pop", id="stash-pop"),
        pytest.param("git stash -u", id="stash-untracked"),
        pytest.param("git reset --hard", id="reset-hard"),
        pytest.param("git reset --hard HEAD~1", id="reset-hard-ref"),
        pytest.param("git checkout -- .", id="checkout-dashdash-dot"),
        pytest.param("git checkout .", id="checkout-dot"),
        pytest.param("git restore .", id="restore-dot"),
        pytest.param("git clean -fd", id="clean-fd"),
        pytest.param("git clean -f", id="clean-f"),
        pytest.param("git commit -a -m msg", id="commit-a"),
        pytest.param("git commit -am msg", id="commit-am"),
        pytest.param("git commit --all -m msg", id="commit-all"),
        pytest.param("git commit -m msg -a", id="commit-a-after-message"),
        pytest.param("git add -A", id="add-A"),
        pytest.param("git add --all", id="add-all"),
        pytest.param("git add .", id="add-dot"),
        pytest.param("git push", id="push"),
        pytest.param("git push origin main --force", id="push-force"),
        pytest.param("cd x && git add .", id="after-and"),
        pytest.param("echo; git push", id="after-semicolon"),
        pytest.param("make test || git stash", id="after-or"),
        pytest.param("echo hi | git push", id="after-pipe"),
        pytest.param("sleep 1 & git push", id="after-background"),
        pytest.param("echo ok\ngit reset --hard", id="next-line"),
        pytest.param("echo $(git stash)", id="command-substitution"),
        pytest.param("(cd sub; git clean -fdx)", id="subshell"),
        pytest.param("git -C sub stash", id="git-C"),
        pytest.param("git -c user.name=x push", id="git-c"),
        pytest.param("git --no-pager stash", id="git-no-pager"),
        pytest.param("git --git-dir=.git --work-tree=. add -A", id="git-dir-equals"),
        pytest.param("/usr/bin/git push", id="absolute-git"),
        pytest.param("env GIT_TRACE=1 git push", id="env-prefix"),
    ],
)
def test_check_bash_denies_commands_that_destroy_shared_work(command: str) -> None:
    reason = check_bash(command)

    assert reason is not None
    assert "is not allowed" in reason
    assert "other agents have uncommitted work" in reason


def test_the_denial_reason_quotes_the_git_command() -> None:
    reason = check_bash("cd x && git -C sub stash pop")

    assert reason is not None
    assert "`git stash pop`" in reason


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("git status", id="status"),
        pytest.param("git status --short", id="status-short"),
        pytest.param("git diff", id="diff"),
        pytest.param("git diff HEAD -- src/app.py", id="diff-path"),
        pytest.param("git log --oneline -5", id="log"),
        pytest.param("git show HEAD", id="show"),
        pytest.param("git stash list", id="stash-list"),
        pytest.param("git stash show", id="stash-show"),
        pytest.param("git clean -n", id="clean-dry-run"),
        pytest.param("git clean --dry-run -d", id="clean-dry-run-long"),
        pytest.param("git reset HEAD src/app.py", id="reset-soft-path"),
        pytest.param("git checkout -b feature", id="checkout-branch"),
        pytest.param("git add path/file.py", id="add-one-file"),
        pytest.param("git add src/a.py src/b.py", id="add-two-files"),
        pytest.param("git commit -m msg -- a.py", id="commit-path"),
        pytest.param("git commit -m 'fix a bug' -- a.py", id="commit-message-with-an-a"),
        pytest.param("git commit --amend -m msg -- a.py", id="commit-amend-long-flag"),
        pytest.param("git", id="bare-git"),
        pytest.param("git --version", id="git-version"),
        pytest.param("ls -la && pytest -q", id="no-git"),
        pytest.param("grep -rn 'git push' docs/", id="git-push-inside-quotes"),
        pytest.param("echo 'do not git stash'", id="echo-mentions-git"),
        pytest.param("", id="empty"),
    ],
)
def test_check_bash_allows_read_only_and_targeted_git(command: str) -> None:
    assert check_bash(command) is None


def test_check_bash_still_checks_a_command_with_unbalanced_quotes() -> None:
    assert check_bash("echo 'oops && git push") is not None


@pytest.mark.parametrize("command", ["git add -u", "git add --update"])
def test_check_bash_denies_git_add_update(command: str) -> None:
    assert check_bash(command) is not None


@pytest.mark.parametrize("command", ["bash -c 'git stash'", 'sh -c "git push"'])
def test_check_bash_denies_git_run_through_a_nested_shell(command: str) -> None:
    assert check_bash(command) is not None


# --- a shared work tree: read-only git by an allow list -------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "git status --short",
        "git diff HEAD -- src/app.py",
        "git log --oneline -5",
        "git show HEAD:README.md",
        "git ls-files",
        "git blame src/app.py",
        "git grep -n TODO",
        "git --no-pager -C sub log",
        "git --version",
        "ls && pytest -q",
    ],
)
def test_in_a_shared_tree_read_only_git_runs(command: str) -> None:
    assert check_bash(command, read_only_git=True) is None


@pytest.mark.parametrize(
    "command",
    [
        "git add path/file.py",
        "git commit -m msg -- a.py",
        "git checkout -b feature",
        "git checkout -f",
        "git stash list",
        "git switch main",
        "git apply patch.diff",
        "git config core.hooksPath .",
        "git worktree add ../x",
        "git update-ref refs/heads/main HEAD~1",
        "bash -lc 'git stash -u'",
        "cd .. && git rm -r src",
        "/usr/bin/git -c x=y merge other",
    ],
)
def test_in_a_shared_tree_every_other_git_is_refused_however_spelled(command: str) -> None:
    reason = check_bash(command, read_only_git=True)

    assert reason is not None
    assert "only read-only git runs here" in reason


def test_in_a_worktree_the_agent_may_stage_and_branch_in_its_own_tree() -> None:
    assert check_bash("git add path/file.py && git checkout -b try") is None
    assert check_bash("git push") is not None  # still never pushes
