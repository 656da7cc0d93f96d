"""Unit tests for bdp/config.py: masked URLs and Settings from the environment."""

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
    DEFAULT_WATCH_INTERVAL,
    PERMISSION_MODES,
    SETTINGS,
    Setting,
    Settings,
    mask_url,
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


# -- durations and the table of settings -------------------------------------------------


def test_every_settings_field_has_one_row_in_the_table_with_its_own_variable() -> None:
    assert len({s.field for s in SETTINGS}) == len(SETTINGS)
    assert {s.field for s in SETTINGS} == set(FIELDS)
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)
    assert all(s.variable == f"BDP_{s.field.upper()}" for s in SETTINGS)


FIELDS = [f.name for f in dataclasses.fields(Settings)]
SECONDS = [s for s in SETTINGS if s.unit == "seconds"]


@pytest.mark.parametrize("setting", SECONDS, ids=lambda s: s.variable)
def test_a_seconds_setting_reads_a_bare_number_as_seconds_and_takes_units(
    setting: Setting,
) -> None:
    assert getattr(Settings.from_env({setting.variable: "45"}), setting.field) == 45.0
    assert getattr(Settings.from_env({setting.variable: "0.5"}), setting.field) == 0.5
    assert getattr(Settings.from_env({setting.variable: "1h30m"}), setting.field) == 5400.0


@pytest.mark.parametrize("setting", SECONDS, ids=lambda s: s.variable)
def test_a_seconds_setting_refuses_what_is_not_a_duration_naming_the_variable(
    setting: Setting,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({setting.variable: "-5"})
    assert str(caught.value).startswith(f"{setting.variable}='-5' is not a duration")
    assert "seconds (30)" in caught.value.hint


def test_waits_may_be_zero_but_heartbeats_and_intervals_may_not() -> None:
    zero_ok = {"BDP_RETRY_WAIT", "BDP_LOCK_WAIT", "BDP_WRAPUP", "BDP_LAND_WAIT"}
    for setting in SECONDS:
        env = {setting.variable: "0"}
        if setting.variable in zero_ok:
            assert getattr(Settings.from_env(env), setting.field) == 0.0
        else:
            with pytest.raises(ConfigError, match="is not a duration"):
                Settings.from_env(env)


def test_the_timeout_reads_a_bare_number_as_minutes() -> None:
    assert Settings.from_env({"BDP_TIMEOUT": "45"}).timeout == 45 * 60
    assert Settings.from_env({"BDP_TIMEOUT": "90s"}).timeout == 90
    assert Settings.from_env({"BDP_TIMEOUT": "1h30m"}).timeout == 5400


def test_keep_branches_takes_no_bare_number_because_it_decides_what_is_deleted() -> None:
    assert Settings.from_env({"BDP_KEEP_BRANCHES": "36h"}).keep_branches == 36 * 3600
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BDP_KEEP_BRANCHES": "14"})
    assert str(caught.value) == "BDP_KEEP_BRANCHES='14' has no unit (add one, e.g. 14h or 14d)"


def test_the_watch_interval_is_a_setting_in_seconds() -> None:
    assert Settings.from_env({}).watch_interval == DEFAULT_WATCH_INTERVAL
    assert Settings.from_env({"BDP_WATCH_INTERVAL": "2m"}).watch_interval == 120


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("BDP_MAX_CONTINUATIONS", "-1", "BDP_MAX_CONTINUATIONS='-1' must be at least 0"),
        ("BDP_MAX_ATTEMPTS", "2.5", "BDP_MAX_ATTEMPTS='2.5' is not a whole number"),
        ("BDP_BUDGET_USD", "0", "BDP_BUDGET_USD=0.0 must be a positive amount of USD"),
        ("BDP_SANDBOX", "maybe", "BDP_SANDBOX='maybe' is neither on nor off"),
        ("BDP_ISOLATION", "docker", "BDP_ISOLATION='docker' is not one of: worktree, shared"),
    ],
)
def test_each_kind_of_bad_value_names_the_variable_and_what_it_takes(
    name: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: text})
    assert caught.value.message == message


def test_an_empty_variable_counts_as_unset() -> None:
    assert Settings.from_env({"BDP_TIMEOUT": "", "BDP_RETRIES": ""}) == Settings.from_env({})
