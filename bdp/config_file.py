"""The user's config file: ``$XDG_CONFIG_HOME/bdp/config.toml`` (else ``~/.config/bdp/``).

Its keys are the settings' own names, each taking what its variable takes::

    timeout = "45m"                       # a bare number is minutes, as for BDP_TIMEOUT
    redis_url = "redis://:pw@queue:6379/0"
    allowed_tools = ["Read", "Edit", "Bash"]
    sandbox = true

`apply_user_file` puts its values into the environment as the settings' variables, under
the environment's own: a variable already set wins, and a secret from the file is hidden
wherever an environment secret is (redaction, the agent's and the gate's environment) by the
same code, instead of by a second path that could miss one. Precedence, highest first: CLI
option, environment, the repo's ``.bdp.toml`` (only its own settings), this file, default.

The file is bdp's alone, so anything in it bdp cannot use (an unknown key, a bad value) is
one ConfigError naming the file, the key and what is allowed; a file other users can read or
write is a warning, since it may hold secrets.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdp.config import SETTINGS, Setting
from bdp.errors import ConfigError
from bdp.variables import unknown_variables

#: The settings the file may set, by key.
FILE_KEYS = {s.field: s for s in SETTINGS if s.user_file}
#: Where each setting the file may not set comes from instead.
ELSEWHERE = {
    "home": "only BDP_HOME sets it (where bdp keeps its state is found before the file)",
    "isolation": "it is the repo's: set isolation in its .bdp.toml, or BDP_ISOLATION",
    "remote": "it is the repo's: set land.remote in its .bdp.toml, or BDP_REMOTE",
}


@dataclass(frozen=True)
class Start:
    """What a process start found: where the user file is looked for (None: no home) and
    whether it is there, the variables it set (variable -> key), those the environment kept
    (set in both), and warnings for stderr."""

    path: Path | None = None
    found: bool = False
    applied: dict[str, str] = field(default_factory=dict)
    shadowed: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def user_config_path(env: Mapping[str, str]) -> Path | None:
    """Where the user's config file is looked for; None without XDG_CONFIG_HOME or HOME."""
    if env.get("XDG_CONFIG_HOME"):
        base = Path(env["XDG_CONFIG_HOME"]).expanduser()
    elif env.get("HOME"):
        base = Path(env["HOME"]) / ".config"
    else:
        return None
    return base / "bdp" / "config.toml"


def start(environ: MutableMapping[str, str]) -> Start:
    """Warn about unknown ``BDP_*`` variables, then apply the user file under ``environ``.

    Raises:
        ConfigError: the file cannot be read, or has a key or value bdp cannot use.
    """
    warnings = unknown_variables(environ)
    path = user_config_path(environ)
    texts = read_user_file(path) if path is not None else None
    if path is None or texts is None:
        return Start(path, warnings=tuple(warnings))
    applied, shadowed = {}, {}
    for variable, (key, text) in texts.items():
        if environ.get(variable):
            shadowed[variable] = key
        else:
            environ[variable] = text
            applied[variable] = key
    loose = exposure(path)
    return Start(path, True, applied, shadowed, (*warnings, *([loose] if loose else [])))


def read_user_file(path: Path) -> dict[str, tuple[str, str]] | None:
    """Each variable the file at ``path`` sets, with its key and its text (checked as the
    variable would be); None when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}", "fix or remove it") from None
    import tomllib  # only when there is a file

    try:
        data = tomllib.loads(raw.decode(errors="replace"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"cannot read {path}: {error}", "fix the TOML syntax") from None
    return {
        FILE_KEYS[key].variable: (key, text)
        for key, value in data.items()
        if (text := file_value(path, key, value))
    }


def file_value(path: Path, key: str, value: Any) -> str:
    """The text the variable of ``key`` would hold for ``value``, checked; ConfigError naming
    the file, the key and what is allowed."""
    setting = FILE_KEYS.get(key)
    if setting is None:
        raise ConfigError(f"{path}: {key} is not a setting bdp reads from it", _allowed(key))
    text = _as_text(setting, value)
    if text is None:
        raise ConfigError(
            f"{path}: {key} = {value!r} is not a value bdp reads",
            "use a string, a number"
            + (", true or false" if key == "sandbox" else "")
            + (" or a list of tool names" if key == "allowed_tools" else "")
            + (" or a table of name = path" if key == "repos" else ""),
        )
    try:
        setting.read(text, key)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.message}", error.hint) from None
    return text


def _as_text(setting: Setting, value: Any) -> str | None:
    """TOML's value as the variable's text, or None when the setting takes no such value."""
    if isinstance(value, bool):
        return ("on" if value else "off") if setting.field == "sandbox" else None
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and setting.field == "repos":  # repos = { app = "/srv/app" }
        pairs = value.items()
        return (
            ",".join(f"{k}={v}" for k, v in pairs)
            if all(isinstance(v, str) for _, v in pairs)
            else None
        )
    listed = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return ",".join(value) if listed and setting.field == "allowed_tools" else None


def _allowed(key: str) -> str:
    if key in ELSEWHERE:
        return ELSEWHERE[key]
    import difflib

    close = difflib.get_close_matches(key, list(FILE_KEYS), n=1)
    if close:
        return f"did you mean {close[0]}?"
    return f"its keys are: {', '.join(FILE_KEYS)}"


def exposure(path: Path) -> str | None:
    """A warning when users other than its owner may read or write the file, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    readable = bool(mode & (stat.S_IRGRP | stat.S_IROTH))
    writable = bool(mode & (stat.S_IWGRP | stat.S_IWOTH))
    if not (readable or writable):
        return None
    how = " and ".join(w for w, on in (("read", readable), ("written", writable)) if on)
    return (
        f"{path} can be {how} by other users (mode {stat.S_IMODE(mode):04o}) and may hold "
        f"secrets: chmod 600 {path}"
    )
