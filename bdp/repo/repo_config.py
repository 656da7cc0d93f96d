"""A repository's own bdp settings, from ``.bdp.toml`` (top level) or ``[tool.bdp]`` of its
``pyproject.toml``::

    [tool.bdp]
    gate = ["uv run pytest -q", { cmd = "ruff check", timeout = 120 }]
    fix_rounds = 2          # times a failing gate goes back to the agent
    review = false          # a read-only reviewer session must APPROVE the diff
    review_rounds = 1       # times its findings go back to the agent
    epic_review = false     # a read-only reviewer checks an epic against its children's
                            # commits before bdp closes it; findings become follow-ups
    epic_review_rounds = 2  # times an epic's review may file follow-ups before it is left
                            # open for a person
    isolation = "worktree"  # or "shared": every agent in the repo's own work tree
    setup = ["uv sync"]     # run in each new worktree before the session
    land = { branch = "main", remote = "origin", rounds = 2 }
                            # where finished work lands (default: the checked-out branch, no
                            # remote), and times a conflict goes back to the agent

Read afresh for every run from what is committed at HEAD, never from the work tree: an
agent can edit its tree's ``.bdp.toml``, but not make its own gate empty. A change to the
configuration applies to the next issue once it is committed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdp.config import ISOLATION_MODES
from bdp.errors import ConfigError
from bdp.repo.git import GitError, read_objects

#: Seconds one gate command may run.
DEFAULT_GATE_TIMEOUT = 600.0
#: Fix rounds after a failing gate, before the issue is reset.
DEFAULT_FIX_ROUNDS = 2
#: Times a landing conflict (or the gate failing on the new tip) goes back to the agent.
DEFAULT_LAND_ROUNDS = 2
#: Times an epic's review may file follow-ups (and keep it open) before a person decides.
DEFAULT_EPIC_REVIEW_ROUNDS = 2


@dataclass(frozen=True)
class ShellCommand:
    """A shell command the repository names (a check, a setup step) and how long it may take."""

    cmd: str
    timeout: float = DEFAULT_GATE_TIMEOUT


@dataclass(frozen=True)
class LandConfig:
    """Where and how finished work lands."""

    branch: str | None = None  # the target branch; None: the one checked out
    remote: str | None = None  # fetch from and push to it (BDP_REMOTE overrides)
    rounds: int = DEFAULT_LAND_ROUNDS  # conflicts sent back to the agent before a reset


@dataclass(frozen=True)
class RepoConfig:
    """A repository's bdp settings."""

    gate: tuple[ShellCommand, ...] = ()
    fix_rounds: int = DEFAULT_FIX_ROUNDS
    review: bool = False  # a second, read-only session reviews the diff before close
    review_rounds: int = 1  # times the reviewer's findings go back for a fix
    isolation: str | None = None  # "worktree" or "shared"; None: bdp's default
    setup: tuple[ShellCommand, ...] = ()  # run in each new worktree before the session
    land: LandConfig = LandConfig()
    epic_review: bool = False  # a read-only reviewer checks an epic before bdp closes it
    epic_review_rounds: int = DEFAULT_EPIC_REVIEW_ROUNDS  # its findings filed as follow-ups


#: Where a repository's config is read from, first found first: a file and the table in it.
SOURCES = ((".bdp.toml", ()), ("pyproject.toml", ("tool", "bdp")))


def load_repo_config(repo: Path, ref: str = "HEAD") -> RepoConfig:
    """The config committed at ``ref``: ``.bdp.toml``, else ``[tool.bdp]``, else defaults."""
    return committed_config(repo, ref)[0]


def committed_config(repo: Path, ref: str = "HEAD") -> tuple[RepoConfig, str]:
    """The config committed at ``ref``, and the commit ``ref`` names ("" if none, or no git
    repository there), read by one git call."""
    try:
        commit, *files = read_objects(repo, [ref, *(f"{ref}:{name}" for name, _ in SOURCES)])
    except GitError:
        return RepoConfig(), ""
    at = commit.oid if commit is not None and commit.kind == "commit" else ""
    for (name, table), found in zip(SOURCES, files, strict=True):
        if found is None or found.kind != "blob":
            continue
        label = f"{repo / name} (as committed at {ref})"
        data = _read_toml(found.content.decode(errors="replace"), label)
        for key in table:
            data = data.get(key, {})
        if data:
            return _parse(data, label), at
    return RepoConfig(), at


def _read_toml(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"cannot read {label}: {error}", "fix the TOML syntax") from None


def _parse(data: dict[str, Any], path: str) -> RepoConfig:
    commands = tuple(_shell_command(item, path, "gate") for item in data.get("gate", []))
    rounds = data.get("fix_rounds", DEFAULT_FIX_ROUNDS)
    if not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{path}: fix_rounds must be a whole number >= 0, got {rounds!r}")
    review, review_rounds = data.get("review", False), data.get("review_rounds", 1)
    if not isinstance(review, bool) or not isinstance(review_rounds, int) or review_rounds < 0:
        raise ConfigError(f"{path}: review must be true or false, review_rounds a number >= 0")
    return RepoConfig(
        commands,
        rounds,
        review,
        review_rounds,
        *_worktree_settings(data, path),
        *_epic_review(data, path),
    )


def _epic_review(data: dict[str, Any], path: str) -> tuple[bool, int]:
    review = data.get("epic_review", False)
    rounds = data.get("epic_review_rounds", DEFAULT_EPIC_REVIEW_ROUNDS)
    if not isinstance(review, bool):
        raise ConfigError(f"{path}: epic_review must be true or false, got {review!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{path}: epic_review_rounds must be a whole number >= 0, got {rounds!r}")
    return review, rounds


def _worktree_settings(
    data: dict[str, Any], path: str
) -> tuple[str | None, tuple[ShellCommand, ...], LandConfig]:
    isolation = data.get("isolation")
    if isolation is not None and isolation not in ISOLATION_MODES:
        raise ConfigError(f"{path}: isolation must be one of {', '.join(ISOLATION_MODES)}")
    setup = tuple(_shell_command(item, path, "setup") for item in data.get("setup", []))
    return isolation, setup, _land(data.get("land", {}), path)


def _land(land: object, path: str) -> LandConfig:
    example = '{ branch = "main", remote = "origin", rounds = 2 }'
    if not isinstance(land, dict) or set(land) - {"branch", "remote", "rounds"}:
        raise ConfigError(f"{path}: land must be a table such as {example}, got {land!r}")
    branch, remote = land.get("branch"), land.get("remote")
    rounds = land.get("rounds", DEFAULT_LAND_ROUNDS)
    if not isinstance(branch, str | None) or not isinstance(remote, str | None):
        raise ConfigError(f"{path}: land.branch and land.remote must be names, as in {example}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{path}: land.rounds must be a whole number >= 0, got {rounds!r}")
    return LandConfig(branch or None, remote or None, rounds)


def _shell_command(item: object, path: str, key: str) -> ShellCommand:
    if isinstance(item, str):
        return ShellCommand(item)
    if isinstance(item, dict) and isinstance(item.get("cmd"), str):
        return ShellCommand(item["cmd"], float(item.get("timeout", DEFAULT_GATE_TIMEOUT)))
    raise ConfigError(
        f"{path}: each {key} entry must be a command string or "
        f'{{ cmd = "...", timeout = 600 }}, got {item!r}'
    )
