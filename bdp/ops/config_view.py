"""`bdp config`: each setting, the value bdp uses, and where that value came from.

Sources, highest first: the environment, the repo's ``.bdp.toml`` / ``[tool.bdp]`` as
committed at HEAD (only its own settings, and ``isolation`` and ``land.remote``, which a
variable overrides), the user's config file, the default. Secrets are masked here, before
anything else sees them: ``BDP_SECRET`` entirely, the Redis URL's password, the notify target
past its host; every text still passes the output's redaction too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdp.config import DEFAULT_ISOLATION, SETTINGS, Setting, Settings, mask_url
from bdp.config_file import Start
from bdp.durations import format_duration
from bdp.repo.git import read_objects
from bdp.repo.repo_config import SOURCES, LandConfig, RepoConfig, committed_config

DEFAULT, ENVIRONMENT, USER_FILE, REPO_FILE = "default", "environment", "user file", "repo file"
#: Where the repo's config is read from, for the heading.
REPO_FILES = " or ".join(
    name if not table else f"[{'.'.join(table)}] of {name}" for name, table in SOURCES
)


@dataclass(frozen=True)
class Row:
    """One setting as `bdp config` shows it."""

    key: str  # its name: the config file's key (the repo file's for the repo's own)
    variable: str  # its BDP_* variable; "" for the repo's own settings
    value: Any  # JSON-ready, secrets masked
    text: str  # as printed: durations as 1h30m, unset as "-"
    source: str  # DEFAULT, ENVIRONMENT, USER_FILE or REPO_FILE


@dataclass(frozen=True)
class ConfigView:
    """Everything `bdp config` prints."""

    user_file: str  # where the user's file is looked for ("" without a home)
    user_file_found: bool
    settings: tuple[Row, ...]
    repo: tuple[Row, ...] = ()
    repo_path: str = ""
    notes: tuple[str, ...] = ()  # e.g. a file value the environment overrides

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def collect_config(env: Mapping[str, str], started: Start, repo: Path | None) -> ConfigView:
    """The view of ``env`` (after `bdp.config_file.start` applied the user file) and of the
    config committed in ``repo`` (its work tree root), if given."""
    settings = Settings.from_env(env)
    repo_config = committed_config(repo)[0] if repo is not None else None
    rows = tuple(_row(s, settings, env, started, repo_config) for s in SETTINGS)
    notes = tuple(
        f"{variable} overrides {key} of {started.path}"
        for variable, key in sorted(started.shadowed.items())
    ) + (ignored_repo_keys(repo) if repo is not None else ())
    return ConfigView(
        str(started.path or ""),
        started.found,
        rows,
        _repo_rows(repo_config) if repo_config is not None else (),
        str(repo or ""),
        notes,
    )


def _row(
    setting: Setting,
    settings: Settings,
    env: Mapping[str, str],
    started: Start,
    repo_config: RepoConfig | None,
) -> Row:
    value = getattr(settings, setting.field)
    if setting.variable in started.applied:
        source = USER_FILE
    elif env.get(setting.variable):
        source = ENVIRONMENT
    else:
        value, source = _repo_or_default(setting.field, value, repo_config)
    shown = _masked(setting, value)
    return Row(setting.field, setting.variable, shown, _text(setting, shown), source)


def _repo_or_default(field: str, value: Any, config: RepoConfig | None) -> tuple[Any, str]:
    """The value of a setting no variable set: the repo's own for isolation and remote."""
    if field == "isolation":
        if config is not None and config.isolation:
            return config.isolation, REPO_FILE
        return DEFAULT_ISOLATION, DEFAULT
    if field == "remote" and config is not None and config.land.remote:
        return config.land.remote, REPO_FILE
    return value, DEFAULT


def _masked(setting: Setting, value: Any) -> Any:
    if not setting.secret or value is None:
        return str(value) if isinstance(value, Path) else value
    if setting.field == "redis_url":
        return mask_url(str(value))
    if setting.field == "notify" and "://" in str(value):
        scheme, _, rest = str(value).partition("://")
        return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/***"
    return "***"


def _text(setting: Setting, value: Any) -> str:
    if value is None:
        return "-"
    if setting.unit and isinstance(value, int | float):
        return format_duration(value) if float(value).is_integer() else f"{value:g}s"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return ", ".join(_item(item) for item in value)
    return str(value)


def _item(item: object) -> str:
    """One entry of a list setting: a BDP_REPOS pair as ``name=path``."""
    if isinstance(item, tuple) and len(item) == 2:
        return f"{item[0]}={item[1]}"
    return str(item)


def _repo_rows(config: RepoConfig) -> tuple[Row, ...]:
    """The repo's own settings, each marked as the repo file's when it differs from the
    default (a key set to its default value shows as the default)."""
    default = RepoConfig()
    rows = []
    for name, value, was in _flat(config, default):
        shown = _repo_value(value)
        source = DEFAULT if value == was else REPO_FILE
        rows.append(Row(name, "", shown, _repo_text(shown), source))
    return tuple(rows)


def _flat(config: RepoConfig, default: RepoConfig) -> list[tuple[str, Any, Any]]:
    """(key, value, default value) of each field, ``land`` as ``land.branch`` and so on."""
    found = []
    for f in dataclasses.fields(config):
        value, was = getattr(config, f.name), getattr(default, f.name)
        if isinstance(value, LandConfig):
            found += [
                (f"land.{g.name}", getattr(value, g.name), getattr(was, g.name))
                for g in dataclasses.fields(value)
            ]
        else:
            found.append((f.name, value, was))
    return found


def _repo_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [item.cmd if hasattr(item, "cmd") else item for item in value]
    return value


def _repo_text(value: Any) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ignored_repo_keys(repo: Path) -> tuple[str, ...]:
    """A note for each key of the repo's committed config that bdp does not read: a user
    setting put there, or a misspelt one (the repo's config itself ignores both)."""
    files = read_objects(repo, [f"HEAD:{name}" for name, _ in SOURCES])
    for (name, table), found in zip(SOURCES, files, strict=True):
        if found is None or found.kind != "blob":
            continue
        data = _table(found.content.decode(errors="replace"), table)
        if data:
            return tuple(_ignored(name, key) for key in data if key not in _REPO_KEYS)
    return ()


_REPO_KEYS = {f.name for f in dataclasses.fields(RepoConfig)}


def _table(text: str, table: tuple[str, ...]) -> dict[str, Any]:
    import tomllib

    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}  # committed_config has already said so
    for key in table:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else {}


def _ignored(name: str, key: str) -> str:
    user = {s.field: s.variable for s in SETTINGS if s.user_file}
    if key in user:
        where = f"the user config file or {user[key]}"
        return f"{key} in {name} is not a repo setting, so bdp ignores it (set it in {where})"
    import difflib

    close = difflib.get_close_matches(key, sorted(_REPO_KEYS), n=1)
    hint = f"did you mean {close[0]}?" if close else f"its keys: {', '.join(sorted(_REPO_KEYS))}"
    return f"{key} in {name} is not a repo setting, so bdp ignores it ({hint})"
