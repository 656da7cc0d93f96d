"""The quality gate: the repository's own checks, run by the worker after an agent says DONE.

The agent is not trusted to have run them: only a passing gate leads to commit and close.
The checks are configured per repository (`bdp.repo.repo_config`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bdp.repo.procs import RUN_ENV
from bdp.repo.repo_config import ShellCommand

#: Characters of gate output sent back to the agent and put in the comment (the tail).
OUTPUT_KEPT = 4000


@dataclass(frozen=True)
class GateResult:
    """How the gate went: passed, or the command that failed and the end of its output."""

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


def run_gate(repo: Path, commands: tuple[ShellCommand, ...], run_id: str) -> GateResult:
    """Run each command in ``repo`` until one fails; its output tail when it does."""
    env = {**os.environ, RUN_ENV: run_id}
    for command in commands:
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command.cmd],
                cwd=repo,
                env=env,
                timeout=command.timeout,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                check=False,
            )
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
