"""Starts each session's Claude CLI under bdp's process supervisor.

The SDK starts the CLI itself, from the path it is given; bdp gives it a launcher that runs
the real CLI under `bdp.repo.supervisor` (same arguments, same environment). The supervisor
puts the CLI in a session of its own, so a terminal's Ctrl-C reaches bdp alone (were the CLIs
in bdp's process group they would die at once, and their sessions end FAILED instead of
getting bdp's wrap-up window), and it ends every process the agent's commands left behind
when the CLI exits, however they were started.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from bdp.config import Settings, user_umask
from bdp.repo import supervisor

_LAUNCHER = """#!{python} -SE
import os, runpy, sys
os.umask({umask:#o})  # the user's: what the agent writes in the repo is as they would
sys.argv[1:1] = [{cli!r}]
runpy.run_path({supervisor!r}, run_name="__main__")
"""


def detached_cli(settings: Settings) -> str | None:
    """The launcher of the CLI bdp would run, or None when there is no CLI to point at
    (the SDK then reports it missing)."""
    real = real_cli(settings)
    if real is None:
        return None
    text = _LAUNCHER.format(
        python=sys.executable, cli=real, supervisor=supervisor.__file__, umask=user_umask()
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    launcher = settings.home / "bin" / f"claude-{digest}"
    if not launcher.exists():
        _write(launcher, text)
    return str(launcher)


def real_cli(settings: Settings) -> str | None:
    """The CLI itself: the configured one (BDP_CLAUDE_CLI), else the SDK's bundled one."""
    return settings.claude_cli or _bundled_cli()


def _bundled_cli() -> str | None:
    """The CLI bundled in the claude-agent-sdk wheel, where the SDK itself looks for it
    (found without importing the SDK: a consumer's preflight looks before a worker starts)."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "_bundled" / "claude"
    return str(bundled) if bundled.is_file() else None


def _write(launcher: Path, text: str) -> None:
    launcher.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = launcher.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o700)
    os.replace(temporary, launcher)  # atomic: workers starting at once never see half a file
