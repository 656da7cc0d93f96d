"""Unit tests for bdp/config.py: durations, masked URLs and Settings from the environment."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from bdp.config import (
    CLI_TOOLS,
    DEFAULT_ALLOWED_TOOLS,
    DEFAULT_PERMISSION_MODE,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_MINUTES,
    PERMISSION_MODES,
    Settings,
    mask_url,
    parse_duration,
    tool_name,
    unknown_tools,
)
from bdp.errors import ConfigError

PASSWORD = "hunter2-not-for-logs"
SECRET_URL = f"redis://:{PASSWORD}@redis.example:6380/3"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BDP_* variable of the developer's shell leaks in; home falls back under tmp_path."""
    for name in list(os.environ):
        if name.startswith("BDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


# -- parse_duration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30", 1800.0, id="bare-number-is-minutes"),
        pytest.param("1.5", 90.0, id="fractional-minutes"),
        pytest.param("90s", 90.0, id="seconds"),
        pytest.param("2m", 120.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param(" 0.5h ", 1800.0, id="surrounding-spaces"),
        pytest.param("10 s", 10.0, id="space-before-unit"),
    ],
)
def test_parse_duration_reads_minutes_by_default_and_s_m_h_units(text: str, seconds: float) -> None:
    assert parse_duration(text, "BDP_TIMEOUT") == seconds


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("soon", id="word"),
        pytest.param("0", id="zero"),
        pytest.param("0s", id="zero-seconds"),
        pytest.param("-5", id="negative"),
        pytest.param("5w", id="unknown-unit"),
        pytest.param("1h30m", id="compound"),
        pytest.param("m", id="unit-only"),
    ],
)
def test_parse_duration_rejects_bad_values_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "BDP_SOME_TIMEOUT")

    assert "BDP_SOME_TIMEOUT" in str(caught.value)
    assert "90s" in caught.value.hint


# -- mask_url --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param(
            "redis://:s3cret-pass@localhost:6379/0", "redis://:***@localhost:6379/0", id="no-user"
        ),
        pytest.param(
            "redis://alice:s3cret-pass@cache.internal/2",
            "redis://alice:***@cache.internal/2",
            id="user-no-port",
        ),
        pytest.param(
            "rediss://bob:s3cret-pass@cache:6380?ssl_cert_reqs=none",
            "rediss://bob:***@cache:6380?ssl_cert_reqs=none",
            id="tls-with-query",
        ),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    result = mask_url(url)

    assert result == masked
    assert "s3cret-pass" not in result


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://localhost:6379/0", id="no-credentials"),
        pytest.param("redis://alice@localhost:6379/0", id="user-only"),
        pytest.param("unix:///run/redis.sock?db=1", id="unix-socket"),
    ],
)
def test_mask_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    assert mask_url(url) == url


def test_mask_url_keeps_the_brackets_of_an_ipv6_host() -> None:
    assert mask_url("redis://:pw-secret@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


# -- Settings.from_env -----------------------------------------------------------------


def test_settings_from_an_empty_environment_uses_the_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"XDG_STATE_HOME": str(tmp_path / "xdg-state")})

    assert settings.home == tmp_path / "xdg-state" / "bdp"
    assert settings.redis_url is None
    assert settings.queue == DEFAULT_QUEUE
    assert settings.timeout == DEFAULT_TIMEOUT_MINUTES * 60
    assert settings.permission_mode == DEFAULT_PERMISSION_MODE
    assert settings.allowed_tools == DEFAULT_ALLOWED_TOOLS
    assert settings.broker_label == f"sqlite:{tmp_path / 'xdg-state' / 'bdp' / 'queue.db'}"


def test_settings_from_env_reads_every_bdp_variable(tmp_path: Path) -> None:
    env = {
        "BDP_HOME": str(tmp_path / "home"),
        "BDP_REDIS_URL": "redis://localhost:6390/1",
        "BDP_QUEUE": "team-a",
        "BDP_BD": "/opt/bin/bd",
        "BDP_MODEL": "claude-test",
        "BDP_PERMISSION_MODE": "plan",
        "BDP_TIMEOUT": "90s",
        "BDP_ALLOWED_TOOLS": "Read, Grep ,Bash",
        "BDP_RETRIES": "5",
        "BDP_MAX_TURNS": "12",
        "BDP_RETRY_WAIT": "0.5",
        "BDP_HEARTBEAT": "2.5",
    }

    settings = Settings.from_env(env)

    assert settings == Settings(
        home=tmp_path / "home",
        redis_url="redis://localhost:6390/1",
        queue="team-a",
        bd="/opt/bin/bd",
        model="claude-test",
        permission_mode="plan",
        timeout=90.0,
        allowed_tools=("Read", "Grep", "Bash"),
        retries=5,
        max_turns=12,
        retry_wait=0.5,
        heartbeat=2.5,
    )


def test_the_default_tools_are_ones_the_cli_offers() -> None:
    assert unknown_tools(DEFAULT_ALLOWED_TOOLS) == []
    assert set(DEFAULT_ALLOWED_TOOLS) <= CLI_TOOLS
    assert {"TodoWrite", "MultiEdit"} & set(DEFAULT_ALLOWED_TOOLS) == set()  # the CLI dropped them


def test_unknown_tools_names_the_entries_the_cli_does_not_offer() -> None:
    entries = ("Read", "TodoWrite", "Bash(git log:*)", "Reed", "mcp__docs__search", "MultiEdit")

    assert unknown_tools(entries) == ["TodoWrite", "Reed", "MultiEdit"]
    assert tool_name("Bash(git log:*)") == "Bash"


def test_settings_from_env_without_argument_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BDP_QUEUE", "from-process")
    monkeypatch.setenv("BDP_HOME", str(tmp_path / "process-home"))

    settings = Settings.from_env()

    assert settings.queue == "from-process"
    assert settings.home == tmp_path / "process-home"


def test_bdp_home_wins_over_xdg_state_home_for_the_default_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BDP_HOME", str(tmp_path / "explicit"))

    assert Settings().home == tmp_path / "explicit"


def test_the_default_home_is_bdp_under_xdg_state_home(tmp_path: Path) -> None:
    assert Settings().home == tmp_path / "xdg-state" / "bdp"


def test_without_xdg_state_home_the_default_home_is_under_the_user_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))

    assert Settings().home == tmp_path / "user" / ".local" / "state" / "bdp"


def test_a_bad_permission_mode_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BDP_PERMISSION_MODE": "yolo"})

    text = str(caught.value)
    assert "BDP_PERMISSION_MODE" in text
    assert "'yolo'" in text
    for mode in PERMISSION_MODES:
        assert mode in text


@pytest.mark.parametrize(
    "name", ["BDP_RETRIES", "BDP_MAX_TURNS", "BDP_RETRY_WAIT", "BDP_HEARTBEAT"]
)
def test_a_value_that_is_not_a_number_names_the_variable(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: "lots"})

    assert f"{name}='lots'" in str(caught.value)


def test_a_bad_timeout_names_bdp_timeout() -> None:
    with pytest.raises(ConfigError, match="BDP_TIMEOUT"):
        Settings.from_env({"BDP_TIMEOUT": "forever"})


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"BDP_RETRIES": "0"}, id="no-retries"),
        pytest.param({"BDP_MAX_TURNS": "0"}, id="no-turns"),
    ],
)
def test_retries_and_max_turns_must_be_at_least_one(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        Settings.from_env(env)


def test_a_redis_url_with_another_scheme_is_refused_with_the_password_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BDP_REDIS_URL": f"http://:{PASSWORD}@redis.example:6380"})

    text = str(caught.value)
    assert "BDP_REDIS_URL" in text
    assert PASSWORD not in text
    assert "***" in text


def test_keyword_overrides_win_over_the_environment() -> None:
    env = {"BDP_QUEUE": "from-env", "BDP_RETRIES": "7", "BDP_MODEL": "env-model"}

    settings = Settings.from_env(env, queue="from-cli", retries=2, model=None)

    assert settings.queue == "from-cli"
    assert settings.retries == 2
    assert settings.model == "env-model"  # a None override means "option not given"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.queue = "other"  # type: ignore[misc]


# -- secrets: one test per surface -----------------------------------------------------


def test_repr_of_settings_never_contains_the_redis_password() -> None:
    settings = Settings.from_env({"BDP_REDIS_URL": SECRET_URL})

    assert PASSWORD not in repr(settings)
    assert "redis://:***@redis.example:6380/3" in repr(settings)


def test_str_and_format_of_settings_never_contain_the_redis_password() -> None:
    settings = Settings.from_env({"BDP_REDIS_URL": SECRET_URL})

    assert PASSWORD not in str(settings)
    assert PASSWORD not in f"{settings}"
    assert PASSWORD not in f"{settings!r}"


def test_broker_label_never_contains_the_redis_password() -> None:
    settings = Settings.from_env({"BDP_REDIS_URL": SECRET_URL})

    assert settings.broker_label == "redis://:***@redis.example:6380/3"
    assert settings.redis_url == SECRET_URL  # the real value is still there for connecting
