"""The quality gate: the repository's own checks, run by the worker after an agent says DONE.

Configured per repository in ``.bdp.toml`` (top level) or ``[tool.bdp]`` of its
``pyproject.toml``::

    [tool.bdp]
    gate = ["uv run pytest -q", { cmd = "ruff check", timeout = 120 }]
    fix_rounds = 2          # times a failing gate goes back to the agent
    review = false          # a read-only reviewer session must APPROVE the diff
    review_rounds = 1       # times its findings go back to the agent

The agent is not trusted to have run them: only a passing gate leads to commit and close.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdp.errors import ConfigError
from bdp.repo.procs import RUN_ENV

#: Seconds one gate command may run.
DEFAULT_GATE_TIMEOUT = 600.0
#: Fix rounds after a failing gate, before the issue is reset.
DEFAULT_FIX_ROUNDS = 2
#: Characters of gate output sent back to the agent and put in the comment (the tail).
OUTPUT_KEPT = 4000


@dataclass(frozen=True)
class GateCommand:
    cmd: str
    timeout: float = DEFAULT_GATE_TIMEOUT


@dataclass(frozen=True)
class RepoConfig:
    """A repository's bdp settings."""

    gate: tuple[GateCommand, ...] = ()
    fix_rounds: int = DEFAULT_FIX_ROUNDS
    review: bool = False  # a second, read-only session reviews the diff before close
    review_rounds: int = 1  # times the reviewer's findings go back for a fix


@dataclass(frozen=True)
class GateResult:
    passed: bool
    command: str = ""
    output: str = ""

    def feedback(self) -> str:
        """The message that sends a failing gate back to the agent."""
        return (
            f"The quality gate failed: `{self.command}` did not pass. Its output (the end):\n\n"
            f"```\n{self.output}\n```\n\nFix the cause, run the check yourself, then end again "
            "with DONE: <summary> or BLOCKED: <reason> on the last line."
        )


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
    commands = []
    for item in data.get("gate", []):
        if isinstance(item, str):
            commands.append(GateCommand(item))
        elif isinstance(item, dict) and isinstance(item.get("cmd"), str):
            commands.append(
                GateCommand(item["cmd"], float(item.get("timeout", DEFAULT_GATE_TIMEOUT)))
            )
        else:
            raise ConfigError(f"{path}: each gate entry must be a command string or "
                              f"{{ cmd = \"...\", timeout = 600 }}, got {item!r}")  # fmt: skip
    rounds = data.get("fix_rounds", DEFAULT_FIX_ROUNDS)
    if not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(f"{path}: fix_rounds must be a whole number >= 0, got {rounds!r}")
    review, review_rounds = data.get("review", False), data.get("review_rounds", 1)
    if not isinstance(review, bool) or not isinstance(review_rounds, int) or review_rounds < 0:
        raise ConfigError(f"{path}: review must be true or false, review_rounds a number >= 0")
    return RepoConfig(tuple(commands), rounds, review, review_rounds)


def run_gate(repo: Path, commands: tuple[GateCommand, ...], run_id: str) -> GateResult:
    """Run each command in ``repo`` until one fails; its output tail when it does."""
    env = {**os.environ, RUN_ENV: run_id}
    for command in commands:
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command.cmd], cwd=repo, env=env, timeout=command.timeout,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            output = _text(error.stdout)[-OUTPUT_KEPT:]
            return GateResult(
                False, command.cmd, f"{output}\n(timed out after {command.timeout:g}s)"
            )
        if done.returncode != 0:
            return GateResult(False, command.cmd, done.stdout[-OUTPUT_KEPT:])
    return GateResult(True)


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""
