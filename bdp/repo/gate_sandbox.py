"""The OS sandbox around the quality gate's checks.

The gate runs code the agent wrote (its tests, its build files), so it gets what the agent's
own shell gets: with the sandbox on, each check runs in bubblewrap, where the run's tree is
the one place it can write, bdp's state dir (its queue, its key, other runs' worktrees) is
not there at all, the network is closed, and its processes live in a PID namespace that
ends with the check. The rest of the machine is visible read-only, so compilers, virtual
environments and caches still work.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bdp.config import Settings

#: The machine's shared temp dirs: a check gets empty private ones in their place.
SHARED_TEMP = tuple(Path(p) for p in ("/tmp", "/var/tmp", "/dev/shm"))  # noqa: S108


@dataclass(frozen=True)
class GateSandbox:
    """What a sandboxed check may not see (``hidden``) and may only read (``readable``,
    mounted again inside a hidden place: the repo's git dir, which worktrees point at)."""

    hidden: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()

    @classmethod
    def for_run(cls, settings: Settings, repo: Path) -> GateSandbox | None:
        """The sandbox for checks of a run on ``repo``; None with the sandbox off, or where
        bubblewrap is missing (sessions are refused there before any gate runs)."""
        if not settings.sandbox or shutil.which("bwrap") is None:
            return None
        return cls(hidden=(*SHARED_TEMP, settings.home), readable=(repo / ".git",))

    def argv(self, tree: Path, command: Sequence[str]) -> list[str]:
        """``command`` run inside the sandbox, in ``tree``."""
        tree = tree.resolve()
        argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for path in self.hidden:
            if path.is_dir():
                argv += ["--tmpfs", str(path.resolve())]
        for path in self.readable:
            if path.exists():
                argv += ["--ro-bind", str(path.resolve()), str(path.resolve())]
        argv += ["--bind", str(tree), str(tree), "--chdir", str(tree)]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
        argv += ["--die-with-parent", "--new-session", "--"]
        return [*argv, *command]
