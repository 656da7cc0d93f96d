"""Starts each session's Claude CLI in a session (and process group) of its own.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Were the CLIs in
bdp's group, they would die at once, and their sessions end FAILED instead of getting the
wrap-up window that bdp's own SIGINT handling gives them. The SDK starts the CLI itself, so
bdp points it at a two-line launcher that calls ``setsid()`` and then executes the real CLI
(same pid, same arguments, same environment).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from bdp.config import Settings

_LAUNCHER = """#!{python} -SE
import os, sys
os.setsid()
os.execv({cli!r}, [{cli!r}, *sys.argv[1:]])
"""


def detached_cli(settings: Settings) -> str | None:
    """The launcher of the CLI bdp would run, or None when there is no CLI to point at
    (the SDK then reports it missing)."""
    real = settings.claude_cli or _bundled_cli()
    if real is None:
        return None
    digest = hashlib.sha256(f"{sys.executable}\0{real}".encode()).hexdigest()[:16]
    launcher = settings.home / "bin" / f"claude-{digest}"
    if not launcher.exists():
        _write(launcher, _LAUNCHER.format(python=sys.executable, cli=real))
    return str(launcher)


def _bundled_cli() -> str | None:
    """The CLI bundled in the claude-agent-sdk wheel, where the SDK itself looks for it."""
    import claude_agent_sdk

    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(bundled) if bundled.is_file() else None


def _write(launcher: Path, text: str) -> None:
    launcher.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = launcher.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o700)
    os.replace(temporary, launcher)  # atomic: workers starting at once never see half a file
