"""bdp.redact: secret values, from the environment and the Redis URL, never reach text."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.redact import Redactor
from tests.support.secrets import API_KEY, DB_PASSWORD, GH_TOKEN, REDIS_PASSWORD, SECRET_ENV


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "state", redis_url=f"redis://:{REDIS_PASSWORD}@cache:6379/0")


@pytest.fixture
def redactor(settings: Settings) -> Redactor:
    return Redactor.from_env(SECRET_ENV, settings)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(API_KEY, id="api-key"),
        pytest.param(GH_TOKEN, id="token"),
        pytest.param(DB_PASSWORD, id="password-in-the-middle-of-the-name"),
        pytest.param(REDIS_PASSWORD, id="redis-url-password"),
    ],
)
def test_redactor_hides_secret_values_anywhere_in_text(redactor: Redactor, secret: str) -> None:
    text = f"env dump: X={secret}\nand again:{secret}."

    redacted = redactor(text)

    assert secret not in redacted
    assert redacted == "env dump: X=***\nand again:***."


def test_redactor_leaves_values_of_ordinary_variables_alone(redactor: Redactor) -> None:
    assert redactor("HOME=/home/someone EDITOR=vim-editor") == (
        "HOME=/home/someone EDITOR=vim-editor"
    )


def test_redactor_matches_secret_names_case_insensitively(settings: Settings) -> None:
    redact = Redactor.from_env({"slack_Token": "xoxb-123456"}, settings)

    assert redact("token xoxb-123456") == "token ***"


def test_redactor_ignores_very_short_values_so_ordinary_words_survive(settings: Settings) -> None:
    redact = Redactor.from_env({"SOME_KEY": "a", "OTHER_TOKEN": "true"}, settings)

    assert redact("a true story") == "a true story"


def test_redactor_hides_the_password_of_any_url_even_when_not_configured() -> None:
    redact = Redactor([])

    assert redact("REDIS=redis://:pw@localhost:6379/0 and https://u:p4ss@example.com/x") == (
        "REDIS=redis://:***@localhost:6379/0 and https://u:***@example.com/x"
    )


def test_redactor_hides_the_longest_secret_when_one_contains_another() -> None:
    redact = Redactor(["abcdef", "abcdef-and-more"])

    assert redact("x abcdef-and-more y abcdef") == "x *** y ***"


# -- Transcript files ------------------------------------------------------------------
