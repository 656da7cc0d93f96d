"""bdp.repo.repo_config: a repository's .bdp.toml or [tool.bdp], read and checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bdp.errors import ConfigError
from bdp.repo.repo_config import RepoConfig, ShellCommand, committed_config, load_repo_config


def git(tree: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=tree, check=True, capture_output=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A git repository (with an identity) in the test's temp folder."""
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.name", "Test")
    git(tmp_path, "config", "user.email", "test@example.invalid")
    return tmp_path


def committed(tree: Path, name: str, text: str) -> None:
    (tree / name).write_text(text)
    git(tree, "add", name)
    git(tree, "commit", "-qm", f"config {name}")


def test_a_repo_without_configuration_has_no_gate(tree: Path) -> None:
    assert load_repo_config(tree) == RepoConfig()


def test_the_gate_is_read_from_tool_bdp_in_pyproject(tree: Path) -> None:
    committed(
        tree,
        "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.bdp]\n'
        'gate = ["pytest -q", { cmd = "ruff check", timeout = 30 }]\nfix_rounds = 1\n',
    )

    config = load_repo_config(tree)

    assert config.gate == (ShellCommand("pytest -q"), ShellCommand("ruff check", 30.0))
    assert config.fix_rounds == 1


def test_a_bdp_toml_wins_over_pyproject(tree: Path) -> None:
    committed(tree, "pyproject.toml", '[tool.bdp]\ngate = ["from-pyproject"]\n')
    committed(tree, ".bdp.toml", 'gate = ["from-bdp-toml"]\n')

    assert load_repo_config(tree).gate == (ShellCommand("from-bdp-toml"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("gate = [42]\n", "each gate entry must be", id="bad-entry"),
        pytest.param('gate = ["x"]\nfix_rounds = -1\n', "fix_rounds must be", id="bad-rounds"),
        pytest.param("gate = [\n", "cannot read", id="bad-toml"),
    ],
)
def test_a_broken_configuration_names_the_file_and_the_problem(
    tree: Path, text: str, message: str
) -> None:
    committed(tree, ".bdp.toml", text)

    with pytest.raises(ConfigError, match=message) as caught:
        load_repo_config(tree)

    assert ".bdp.toml" in str(caught.value)


def test_review_is_off_unless_asked_for(tree: Path) -> None:
    assert load_repo_config(tree).review is False
    committed(tree, ".bdp.toml", "review = true\nreview_rounds = 2\n")

    config = load_repo_config(tree)

    assert (config.review, config.review_rounds) == (True, 2)


def test_a_bad_review_setting_is_refused(tree: Path) -> None:
    committed(tree, ".bdp.toml", 'review = "yes"\n')

    with pytest.raises(ConfigError, match="review must be true or false"):
        load_repo_config(tree)


def test_epic_review_is_off_unless_asked_for_and_has_two_rounds_by_default(tree: Path) -> None:
    assert load_repo_config(tree).epic_review is False
    committed(tree, ".bdp.toml", "epic_review = true\n")

    config = load_repo_config(tree)

    assert (config.epic_review, config.epic_review_rounds) == (True, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('epic_review = "on"\n', "epic_review must be true or false"),
        ("epic_review = true\nepic_review_rounds = -1\n", "epic_review_rounds must be"),
        ("epic_review = true\nepic_review_rounds = true\n", "epic_review_rounds must be"),
    ],
)
def test_a_bad_epic_review_setting_is_refused(tree: Path, text: str, message: str) -> None:
    committed(tree, ".bdp.toml", text)

    with pytest.raises(ConfigError, match=message):
        load_repo_config(tree)


def test_an_agent_emptying_its_trees_bdp_toml_does_not_change_the_gate(tree: Path) -> None:
    # Given a committed gate
    committed(tree, ".bdp.toml", 'gate = ["pytest -q"]\n')

    # When the file in the work tree is emptied (uncommitted), or pyproject adds another
    (tree / ".bdp.toml").write_text("")
    (tree / "pyproject.toml").write_text('[tool.bdp]\ngate = ["true"]\n')

    # Then the gate is still the committed one
    assert load_repo_config(tree).gate == (ShellCommand("pytest -q"),)


def test_an_uncommitted_configuration_does_not_apply(tree: Path) -> None:
    (tree / ".bdp.toml").write_text('gate = ["pytest -q"]\n')

    assert load_repo_config(tree) == RepoConfig()


def test_a_folder_that_is_not_a_repository_has_no_configuration(tree: Path) -> None:
    plain = tree / "plain"
    plain.mkdir()

    assert load_repo_config(plain) == RepoConfig()


def test_the_config_comes_with_the_commit_it_was_read_at(tree: Path) -> None:
    # Given .bdp.toml committed, then changed in a later commit
    committed(tree, ".bdp.toml", 'gate = ["first"]\n')
    first = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=True
    ).stdout.strip()
    committed(tree, ".bdp.toml", 'gate = ["second"]\n')

    # Then each commit's own config is read, with that commit's id
    assert committed_config(tree, first) == (RepoConfig((ShellCommand("first"),)), first)
    config, at = committed_config(tree)
    assert config.gate == (ShellCommand("second"),)
    assert at not in ("", first)


def test_a_repo_without_a_commit_has_the_defaults_and_no_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")

    assert committed_config(tmp_path) == (RepoConfig(), "")


def test_a_folder_that_is_no_git_repository_has_the_defaults(tmp_path: Path) -> None:
    assert committed_config(tmp_path) == (RepoConfig(), "")
