"""bdp.repo.repo_config: a repository's .bdp.toml or [tool.bdp], read and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.errors import ConfigError
from bdp.repo.repo_config import GateCommand, RepoConfig, load_repo_config


def test_a_repo_without_configuration_has_no_gate(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path) == RepoConfig()


def test_the_gate_is_read_from_tool_bdp_in_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.bdp]\n'
        'gate = ["pytest -q", { cmd = "ruff check", timeout = 30 }]\nfix_rounds = 1\n'
    )

    config = load_repo_config(tmp_path)

    assert config.gate == (GateCommand("pytest -q"), GateCommand("ruff check", 30.0))
    assert config.fix_rounds == 1


def test_a_bdp_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bdp]\ngate = ["from-pyproject"]\n')
    (tmp_path / ".bdp.toml").write_text('gate = ["from-bdp-toml"]\n')

    assert load_repo_config(tmp_path).gate == (GateCommand("from-bdp-toml"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("gate = [42]\n", "each gate entry must be", id="bad-entry"),
        pytest.param('gate = ["x"]\nfix_rounds = -1\n', "fix_rounds must be", id="bad-rounds"),
        pytest.param("gate = [\n", "cannot read", id="bad-toml"),
    ],
)
def test_a_broken_configuration_names_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / ".bdp.toml").write_text(text)

    with pytest.raises(ConfigError, match=message) as caught:
        load_repo_config(tmp_path)

    assert ".bdp.toml" in str(caught.value)


def test_review_is_off_unless_asked_for(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path).review is False
    (tmp_path / ".bdp.toml").write_text("review = true\nreview_rounds = 2\n")

    config = load_repo_config(tmp_path)

    assert (config.review, config.review_rounds) == (True, 2)


def test_a_bad_review_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".bdp.toml").write_text('review = "yes"\n')

    with pytest.raises(ConfigError, match="review must be true or false"):
        load_repo_config(tmp_path)
