"""Checks before anything is claimed: can a session start here, and does the repo answer?

Run by `bdp run` (all of them), `bdp enqueue` (the repo's: the workers that take its tasks may
be on other machines, with their own credentials) and at consumer start (the worker's), and
all together by `bdp doctor`. A failing check is one line saying what is wrong and what to
do; nothing has been claimed or commented on by then, so fixing it and starting again loses
nothing. Warnings (the sandbox switched off, no git identity) never stop a start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bdp.agent.confinement import CLI_CREDENTIALS, INSTALL_BWRAP
from bdp.agent.launcher import real_cli
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import BdpError, PreflightError, is_broker_error
from bdp.repo.beads import INSTALL_BD, BdCli
from bdp.repo.git import GitError, git

#: Variables that point the CLI at another way in than an API key (a gateway, a cloud).
OTHER_WAYS_IN = ("ANTHROPIC_BASE_URL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
#: Seconds a check's subprocess may take (bd on a cold store is the slowest).
CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Check:
    """One check's verdict: ok, a warning (the start goes on) or a failure, and why."""

    name: str
    status: str  # "ok", "warning" or "failed"
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def line(self) -> str:
        return f"{self.name}: {self.detail}" + (f"; {self.fix}" if self.fix else "")

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def worker_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """What a worker needs to start sessions: the CLI, a way to the API, the sandbox, bd."""
    return [
        check_cli(settings),
        check_credentials(environ),
        check_sandbox(settings),
        check_bd_installed(settings.bd),
    ]


def repo_checks(settings: Settings, repo: Path) -> list[Check]:
    """What queueing a repo's issues needs: bd answering there, and git."""
    installed = check_bd_installed(settings.bd)
    if installed.failed:
        return [installed, check_git(repo)]
    return [installed, check_bd_workspace(settings.bd, repo), check_git(repo)]


def require(checks: list[Check]) -> list[Check]:
    """The warnings among ``checks``; PreflightError naming every failure."""
    failed = [check for check in checks if check.failed]
    if failed:
        raise PreflightError("; ".join(check.line() for check in failed))
    return [check for check in checks if check.status == "warning"]


def check_cli(settings: Settings) -> Check:
    cli = real_cli(settings)
    if cli is None or not os.access(cli, os.X_OK):
        where = f"BDP_CLAUDE_CLI={settings.claude_cli}" if settings.claude_cli else "bundled"
        fix = "reinstall bdp (the CLI comes in the claude-agent-sdk wheel), or fix BDP_CLAUDE_CLI"
        return Check("claude CLI", "failed", f"no runnable Claude CLI ({where})", fix)
    return ok("claude CLI", cli)


def check_credentials(environ: Mapping[str, str]) -> Check:
    """An API key or token, another way in (a gateway, Bedrock, Vertex), or the CLI's login."""
    keys = [name for name in sorted(CLI_CREDENTIALS) if environ.get(name)]
    if keys:
        return ok("credentials", f"{keys[0]} is set")
    ways = [name for name in OTHER_WAYS_IN if environ.get(name)]
    if ways:
        return ok("credentials", f"{ways[0]} is set")
    login = _cli_login(environ)
    if login is not None:
        return ok("credentials", f"the Claude CLI's login ({login})")
    fix = "export ANTHROPIC_API_KEY=..., or log the Claude CLI in (`claude /login`)"
    return Check("credentials", "failed", "no API key, token or CLI login found", fix)


def _cli_login(environ: Mapping[str, str]) -> Path | None:
    config = environ.get("CLAUDE_CONFIG_DIR") or str(Path(environ.get("HOME", "~")) / ".claude")
    credentials = Path(config).expanduser() / ".credentials.json"
    return credentials if credentials.is_file() else None


def check_sandbox(settings: Settings, run: Callable[..., object] = subprocess.run) -> Check:
    """bubblewrap is installed and can make a sandbox here (user namespaces allowed)."""
    if not settings.sandbox:
        return Check("sandbox", "warning", "off (BDP_SANDBOX=off): agents' shells run unconfined")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Check("sandbox", "failed", "bubblewrap (bwrap) is not installed", INSTALL_BWRAP)
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "true"]
    try:
        run(probe, check=True, capture_output=True, timeout=CHECK_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        fix = "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        return Check("sandbox", "failed", f"{bwrap} cannot make a sandbox here", fix)
    return ok("sandbox", bwrap)


def check_bd_installed(bd: str) -> Check:
    found = shutil.which(bd) or (bd if os.access(bd, os.X_OK) else None)
    if found is None:
        return Check("bd", "failed", f"`{bd}` was not found on PATH", INSTALL_BD)
    return ok("bd", found)


def check_bd_workspace(bd: str, repo: Path) -> Check:
    """bd answers in the repo: a workspace is there, and its store opens."""
    try:
        BdCli(repo, bd).in_progress()
    except BdpError as error:
        return Check("beads workspace", "failed", error.message, error.hint)
    return ok("beads workspace", str(repo))


def check_git(repo: Path) -> Check:
    try:
        name = git(repo, "config", "user.name").strip()
        email = git(repo, "config", "user.email").strip()
    except GitError:
        fix = "git config --global user.name '...' and user.email '...'"
        return Check("git identity", "warning", "none set: bdp's commits use a stand-in", fix)
    return ok("git identity", f"{name} <{email}>")


def check_broker(state: State) -> Check:
    """The broker answers (Redis, or the SQLite file)."""
    try:
        state.pause()
    except Exception as error:  # redis-py's errors are not OSErrors
        if not is_broker_error(error):
            raise
        return Check(
            "broker", "failed", f"unreachable: {error}", "start Redis, or fix BDP_REDIS_URL"
        )
    return ok("broker", "answers")
