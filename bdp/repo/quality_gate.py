"""The quality gate: the repository's own checks, run by the worker after an agent says DONE.

The agent is not trusted to have run them: only a passing gate leads to commit and close.
The checks are configured per repository (`bdp.repo.repo_config`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bdp.config import user_umask
from bdp.redact import is_secret_name, url_password
from bdp.repo.gate_sandbox import GateSandbox
from bdp.repo.procs import RUN_ENV, stop_supervised, supervised
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
            f"```\n{self.output}\n```\n\nFix the cause, run the check yourself, then return "
            "your report again (DONE, or BLOCKED with the reason)."
        )


def run_gate(
    repo: Path,
    commands: tuple[ShellCommand, ...],
    run_id: str,
    sandbox: GateSandbox | None = None,
) -> GateResult:
    """Run each command in ``repo`` (inside ``sandbox``, if given) until one fails; its
    output tail when it does."""
    env = gate_env(run_id, os.environ)
    for command in commands:
        argv = ["/bin/sh", "-c", command.cmd]
        failed = _check(repo, command, sandbox.argv(repo, argv) if sandbox else argv, env)
        if failed is not None:
            return failed
    return GateResult(True)


def gate_env(run_id: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The gate's environment: the worker's, without bdp's settings, secret-named variables
    (the API key among them) or any value that carries a URL's password.

    The checks run code the agent wrote (its tests, its build files), so they get no more
    than the agent's own shell does; their output also reaches bd comments.
    """
    env = {
        name: value
        for name, value in environ.items()
        if not (name.startswith("BDP_") or is_secret_name(name) or url_password(value))
    }
    env[RUN_ENV] = run_id
    return env


def _check(
    repo: Path, command: ShellCommand, argv: list[str], env: dict[str, str]
) -> GateResult | None:
    """Run one check supervised (what it starts ends with it); None when it passed."""
    with subprocess.Popen(
        supervised(argv),
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        umask=user_umask(),
    ) as process:
        try:
            output, _ = process.communicate(timeout=command.timeout)
        except subprocess.TimeoutExpired:
            stop_supervised(process)
            output = _rest_of_output(process)
            tail = f"{output[-OUTPUT_KEPT:]}\n(timed out after {command.timeout:g}s)"
            return GateResult(False, command.cmd, tail)
    if process.returncode != 0:
        return GateResult(False, command.cmd, output[-OUTPUT_KEPT:])
    return None


def _rest_of_output(process: subprocess.Popen[str]) -> str:
    """What a stopped check printed; "" if something it left still holds the pipe open."""
    try:
        return process.communicate(timeout=2)[0]
    except subprocess.TimeoutExpired:
        return ""
