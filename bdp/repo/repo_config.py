"""A repository's own bdp settings, from ``.bdp.toml`` (top level) or ``[tool.bdp]`` of its
``pyproject.toml``::

    [tool.bdp]
    gate = ["uv run pytest -q", { cmd = "ruff check", timeout = 120 }]
    fix_rounds = 2          # times a failing gate goes back to the agent
    review = false          # a read-only reviewer session must APPROVE the diff
    review_rounds = 1       # times its findings go back to the agent

Read afresh for every run, so a change to the file applies to the next issue.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdp.errors import ConfigError

#: Seconds one gate command may run.
DEFAULT_GATE_TIMEOUT = 600.0
#: Fix rounds after a failing gate, before the issue is reset.
DEFAULT_FIX_ROUNDS = 2


@dataclass(frozen=True)
class GateCommand:
    """One of the repository's checks: a shell command and how long it may take."""

    cmd: str
    timeout: float = DEFAULT_GATE_TIMEOUT


@dataclass(frozen=True)
class RepoConfig:
    """A repository's bdp settings."""

    gate: tuple[GateCommand, ...] = ()
    fix_rounds: int = DEFAULT_FIX_ROUNDS
    review: bool = False  # a second, read-only session reviews the diff before close
    review_rounds: int = 1  # times the reviewer's findings go back for a fix


def load_repo_config(repo: Path) -> RepoConfig:
    """The config of ``repo``: ``.bdp.toml`` if present, else ``[tool.bdp]``, else defaults."""
    for path, table in ((repo / ".bdp.toml", ()), (repo / "pyproject.toml", ("tool", "bdp"))):
        if path.is_file():
            data = _read_toml(path)
            for key in table:
                data = data.get(key, {})
            if data:
                return _parse(data, path)
    return RepoConfig()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}", "fix the TOML syntax") from None


def _parse(data: dict[str, Any], path: Path) -> RepoConfig:
    commands = tuple(_gate_command(item, path) for item in data.get("gate", []))
    rounds = data.get("fix_rounds", DEFAULT_FIX_ROUNDS)
    if not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{path}: fix_rounds must be a whole number >= 0, got {rounds!r}")
    review, review_rounds = data.get("review", False), data.get("review_rounds", 1)
    if not isinstance(review, bool) or not isinstance(review_rounds, int) or review_rounds < 0:
        raise ConfigError(f"{path}: review must be true or false, review_rounds a number >= 0")
    return RepoConfig(commands, rounds, review, review_rounds)


def _gate_command(item: object, path: Path) -> GateCommand:
    if isinstance(item, str):
        return GateCommand(item)
    if isinstance(item, dict) and isinstance(item.get("cmd"), str):
        return GateCommand(item["cmd"], float(item.get("timeout", DEFAULT_GATE_TIMEOUT)))
    raise ConfigError(
        f"{path}: each gate entry must be a command string or "
        f'{{ cmd = "...", timeout = 600 }}, got {item!r}'
    )
