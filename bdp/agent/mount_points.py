"""The mount points the OS sandbox leaves in a session's tree, and their removal.

The Claude CLI's sandbox mounts some well-known names read-only inside the tree (so no
command can plant a ``.env`` or a ``package.json``), creating them empty where they are
missing, and does not remove them afterwards. Kept apart from the sandbox's settings so that
the finishing path can know these names without loading the SDK.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Empty files and folders the CLI's sandbox creates in the session's tree as read-only mount
#: points (agents cannot write these names), and leaves behind: removed after the session
#: when they are new and still empty (folders: nothing but empty folders).
PLACEHOLDERS = (
    ".env",
    ".env.local",
    ".env.development",
    ".env.development.local",
    ".env.production",
    ".env.production.local",
    ".env.test",
    ".env.test.local",
    ".gitmodules",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    "bunfig.toml",
    "package.json",
    "package-lock.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "node_modules",
    ".claude",
)


def absent_placeholders(tree: Path) -> set[str]:
    """The `PLACEHOLDERS` that ``tree`` does not have before a session."""
    return {name for name in PLACEHOLDERS if not os.path.lexists(tree / name)}


def remove_placeholders(tree: Path, absent: set[str]) -> list[str]:
    """Remove what the sandbox left of ``absent``: still-empty files and folders; their names."""
    removed = []
    for name in sorted(absent):
        path = tree / name
        try:
            if path.is_symlink():
                continue
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
            elif path.is_dir() and _holds_no_file(path):
                shutil.rmtree(path)
            else:
                continue
        except OSError:
            continue
        removed.append(name)
    return removed


def _holds_no_file(folder: Path) -> bool:
    """True when ``folder`` has nothing but (nested) empty folders in it."""
    return all(not files for _root, _dirs, files in os.walk(folder, followlinks=False))
