"""bdp.redact: secret values, from the environment and the Redis URL, never reach text."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from bdp.config import Settings
from bdp.redact import Redactor, scrub, scrub_tree
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


def test_a_password_given_as_a_url_parameter_is_a_secret_too(tmp_path: Path) -> None:
    url = f"redis://cache:6379/0?password={REDIS_PASSWORD}&db=0"
    redact = Redactor.from_env({"BDP_REDIS_URL": url})

    assert REDIS_PASSWORD not in redact(f"connecting to {url}; the password is {REDIS_PASSWORD}")
    assert Redactor([])(url) == "redis://cache:6379/0?password=***&db=0"


@pytest.mark.parametrize("offset", [0, 1, 2, 5])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_inside_base64_text_is_hidden_at_any_alignment(
    redactor: Redactor, offset: int, encode: Callable[[bytes], bytes]
) -> None:
    # `env | base64`: the secret sits somewhere inside a longer encoded text
    text = encode(b"x" * offset + f"ANTHROPIC_API_KEY={API_KEY}\nHOME=/home".encode()).decode()
    alone = encode(API_KEY.encode()).decode()

    assert "***" in redactor(text)
    assert redactor(f"key: {alone}") != f"key: {alone}"
    assert not decodes_to(redactor(text), API_KEY)


def decodes_to(text: str, secret: str) -> bool:
    """True when some stretch of ``text`` (between the ``***``) is base64 of ``secret``."""
    for piece in text.split("***"):
        for start in range(4):
            chunk = piece[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4].replace("-", "+").replace("_", "/")
            if secret.encode() in base64.b64decode(
                chunk.rstrip("=") + "=" * (-len(chunk.rstrip("=")) % 4)
            ):
                return True
    return False


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(API_KEY.encode().hex(), id="hex"),
        pytest.param(API_KEY.encode().hex().upper(), id="HEX"),
        pytest.param(quote(DB_PASSWORD + "/?&", safe=""), id="url-encoded"),
        pytest.param(API_KEY[::-1], id="reversed"),
    ],
)
def test_encoded_forms_of_a_secret_are_hidden(settings: Settings, form: str) -> None:
    redact = Redactor.from_env({**SECRET_ENV, "OTHER_PASSWORD": DB_PASSWORD + "/?&"}, settings)

    assert redact(f"out: {form} end") == "out: *** end"


def test_scrub_follows_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-first-value")
    assert scrub("a tok-first-value b") == "a *** b"

    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-second-value")
    assert scrub("tok-first-value tok-second-value") == "tok-first-value ***"
    assert scrub_tree({"k": ["tok-second-value"]}) == {"k": ["***"]}


# -- Transcript files ------------------------------------------------------------------
