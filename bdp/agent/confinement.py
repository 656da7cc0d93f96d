"""What an agent's shell can reach: the OS sandbox around it, and the environment it sees.

With the sandbox on (the default), the Claude CLI runs every Bash command inside bubblewrap:
writes go only to the session's tree, no command may opt out of the sandbox, the network is
closed, and other processes' environments cannot be read. bdp blanks its own settings and
every secret-named variable in the CLI's environment, so neither the Redis URL nor a token
reaches an agent's command. The CLI's own credential (the API key) stays in its tools'
environment: the CLI's scrub (``CLAUDE_CODE_SUBPROCESS_ENV_SCRUB``) would remove it, but it
also opens the temp dirs and the home folder to writes, and with the network closed a visible
key cannot leave through a command. Settings from the worker host's own ``~/.claude`` (its
hooks, its permissions) never apply to a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bdp.agent.session import PermanentSessionError
from bdp.config import Settings
from bdp.redact import is_secret_name
from bdp.repo.procs import RUN_ENV

if TYPE_CHECKING:  # types only: a consumer's preflight reads this module without the SDK
    from claude_agent_sdk.types import SandboxSettings, SettingSource

#: Credentials the CLI itself needs to reach the API (its tools see them; see above).
CLI_CREDENTIALS = frozenset(
    {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"}
)
#: Setting sources a run reads: the project's own (and its CLAUDE.md), never the host user's.
SETTING_SOURCES: list[SettingSource] = ["project"]
#: How to get bubblewrap where it is missing.
INSTALL_BWRAP = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap), or set BDP_SANDBOX=off to run agents' shells unconfined"
)


def session_env(run_id: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables bdp sets for a session's CLI, merged by the SDK over ``environ``."""
    env = {RUN_ENV: run_id}
    for name in environ:
        if name == RUN_ENV or name in CLI_CREDENTIALS:
            continue
        if name.startswith("BDP_") or is_secret_name(name):
            env[name] = ""
    return env


def sandbox_settings(settings: Settings) -> SandboxSettings | None:
    """The SDK's sandbox settings for a session, or None with the sandbox off.

    Raises:
        PermanentSessionError: the sandbox is on but bubblewrap is not installed (the CLI would
            refuse to start a sandboxed session; say how to fix it instead).
    """
    if not settings.sandbox:
        return None
    if shutil.which("bwrap") is None:
        raise PermanentSessionError(f"the OS sandbox needs bubblewrap (bwrap): {INSTALL_BWRAP}")
    return {"enabled": True, "allowUnsandboxedCommands": False, "autoAllowBashIfSandboxed": True}
