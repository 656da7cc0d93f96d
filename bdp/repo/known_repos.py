"""The repositories bdp has worked on from this machine, kept in the state directory.

The broker keeps the same list, but a Redis restarted without persistence forgets it; the
janitor then still needs to know where to look for issues claimed by bdp's actors that no
run holds any more. One line per repository, appended once.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_NAME = "repos"


def remember(home: Path, repo: str) -> None:
    """Add ``repo`` to the list (a no-op when it is there already)."""
    if repo in known(home):
        return
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(home / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{repo}\n".encode())  # one small append: whole lines even when racing
    finally:
        os.close(fd)


def known(home: Path) -> list[str]:
    try:
        text = (home / FILE_NAME).read_text()
    except FileNotFoundError:
        return []
    return sorted({line for line in text.splitlines() if line.strip()})
