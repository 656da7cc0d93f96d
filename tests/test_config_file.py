"""bdp.config_file: the user's config file, applied under the environment, its mistakes named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.config_file import Start, start, user_config_path
from bdp.errors import ConfigError
from bdp.redact import Redactor

SECRET = "file-secret-0123456789abcdef"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> tuple[dict[str, str], Path]:
    """An environment whose user config file holds ``text``, and the file's path."""
    path = tmp_path / "config" / "bdp" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}, path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    env, _ = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        start(env)
    return caught.value


def test_the_file_is_under_xdg_config_home_else_under_home(tmp_path: Path) -> None:
    xdg, home = str(tmp_path / "xdg"), str(tmp_path / "home")
    assert user_config_path({"XDG_CONFIG_HOME": xdg, "HOME": home}) == Path(xdg, "bdp/config.toml")
    assert user_config_path({"HOME": home}) == Path(home, ".config/bdp/config.toml")
    assert user_config_path({}) is None


def test_no_file_changes_nothing(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    started = start(env)
    assert started == Start(tmp_path / "bdp" / "config.toml")
    assert env == {"XDG_CONFIG_HOME": str(tmp_path)}


def test_the_files_values_become_the_settings_each_as_its_variable_reads_them(
    tmp_path: Path,
) -> None:
    # Given a file with a bare timeout, a bool, a list and a fractional number of seconds
    env, path = write(
        tmp_path,
        'timeout = 45\nsandbox = false\nallowed_tools = ["Read", "Bash"]\nheartbeat = 2.5\n'
        'keep_branches = "36h"\nmax_turns = 12\n',
    )
    # When a process starts
    started = start(env)
    # Then the settings read from the environment are the file's
    settings = Settings.from_env(env)
    assert settings.timeout == 45 * 60  # minutes, as BDP_TIMEOUT=45 would be
    assert settings.sandbox is False
    assert settings.allowed_tools == ("Read", "Bash")
    assert settings.heartbeat == 2.5
    assert settings.keep_branches == 36 * 3600
    assert settings.max_turns == 12
    assert started.path == path
    assert started.found
    assert started.applied["BDP_TIMEOUT"] == "timeout"


def test_the_environment_wins_over_the_file_and_the_override_is_recorded(tmp_path: Path) -> None:
    env, _ = write(tmp_path, 'timeout = "10m"\nmodel = "file-model"\n')
    env["BDP_TIMEOUT"] = "1h"
    started = start(env)
    settings = Settings.from_env(env)
    assert settings.timeout == 3600
    assert settings.model == "file-model"
    assert started.shadowed == {"BDP_TIMEOUT": "timeout"}
    assert "BDP_TIMEOUT" not in started.applied


def test_an_empty_variable_does_not_hide_the_files_value(tmp_path: Path) -> None:
    env, _ = write(tmp_path, 'queue = "from-file"\n')
    env["BDP_QUEUE"] = ""
    start(env)
    assert Settings.from_env(env).queue == "from-file"


def test_a_secret_from_the_file_is_redacted_like_one_from_the_environment(tmp_path: Path) -> None:
    env, _ = write(tmp_path, f'secret = "{SECRET}"\nredis_url = "redis://:pw-{SECRET}@h:6379/0"\n')
    start(env)
    redact = Redactor.from_env(env)
    assert SECRET not in redact(f"the key is {SECRET} and the url redis://:pw-{SECRET}@h:6379/0")


def test_an_unknown_key_names_the_file_and_the_closest_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, "timout = 5\n")
    assert str(error) == (
        f"{tmp_path}/config/bdp/config.toml: timout is not a setting bdp reads from it "
        "(did you mean timeout?)"
    )
    assert error.exit_code == 2


def test_a_key_like_none_lists_every_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, "colour = 'blue'\n")
    assert error.hint.startswith("its keys are: redis_url, secret, queue, bd, timeout")


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("home", "only BDP_HOME sets it"),
        ("isolation", "set isolation in its .bdp.toml, or BDP_ISOLATION"),
        ("remote", "set land.remote in its .bdp.toml, or BDP_REMOTE"),
    ],
)
def test_a_setting_that_belongs_elsewhere_says_where_it_goes(
    tmp_path: Path, key: str, where: str
) -> None:
    error = error_of(tmp_path, f'{key} = "x"\n')
    assert error.message.endswith(f"{key} is not a setting bdp reads from it")
    assert where in error.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('timeout = "soon"', "timeout='soon' is not a duration"),
        ("retries = 0", "retries='0' must be at least 1"),
        ('permission_mode = "yolo"', "permission_mode='yolo' is not one of: default, acceptEdits"),
        ('redis_url = "http://h"', "redis_url='http://h' is not a Redis URL"),
        ('keep_branches = "14"', "keep_branches='14' has no unit"),
        ("timeout = true", "timeout = True is not a value bdp reads"),
        ('timeout = ["1h"]', "timeout = ['1h'] is not a value bdp reads"),
        ("sandbox = 1", "sandbox='1' is neither on nor off"),
    ],
)
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, text: str, message: str
) -> None:
    error = error_of(tmp_path, text + "\n")
    assert str(error).startswith(f"{tmp_path}/config/bdp/config.toml: {message}")


def test_a_file_that_is_not_toml_is_one_error_naming_it(tmp_path: Path) -> None:
    error = error_of(tmp_path, "timeout 45\n")
    assert str(error).startswith(f"cannot read {tmp_path}/config/bdp/config.toml: ")
    assert error.hint == "fix the TOML syntax"


def test_a_folder_in_the_files_place_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "bdp" / "config.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"cannot read .*config\.toml: Is a directory"):
        start({"XDG_CONFIG_HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("mode", "how"),
    [(0o640, "read"), (0o604, "read"), (0o620, "written"), (0o666, "read and written")],
)
def test_a_file_others_may_read_or_write_is_a_warning(tmp_path: Path, mode: int, how: str) -> None:
    env, path = write(tmp_path, 'queue = "q"\n', mode)
    assert start(env).warnings == (
        f"{path} can be {how} by other users (mode {mode:04o}) and may hold secrets: "
        f"chmod 600 {path}",
    )


def test_a_private_file_is_no_warning(tmp_path: Path) -> None:
    env, _ = write(tmp_path, 'queue = "q"\n', 0o600)
    assert start(env).warnings == ()


def test_unknown_variables_are_warned_about_before_the_file_is_applied(tmp_path: Path) -> None:
    env, _ = write(tmp_path, 'queue = "q"\n')
    env["BDP_TIMOUT"] = "5"
    assert start(env).warnings == ("BDP_TIMOUT is not a bdp setting (did you mean BDP_TIMEOUT?)",)


HELP_PROBE = """
import sys
from bdp.cli import main
main(["--help"], standalone_mode=False)
print("loaded" if "bdp.config_file" in sys.modules else "not loaded", file=sys.stderr)
"""


def test_bdp_help_never_reads_the_file_nor_loads_this_module(tmp_path: Path) -> None:
    env, _ = write(tmp_path, "not toml at all\n")  # a start would fail on it
    done = subprocess.run(
        [sys.executable, "-c", HELP_PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "not loaded"
