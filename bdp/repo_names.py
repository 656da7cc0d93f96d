"""Repos by name, for a queue several machines share.

A task names its repo by a path (one machine) or by a name in BDP_REPOS, which every machine
maps to its own clone (``BDP_REPOS=app=/srv/app,lib=/home/me/lib``): the clones need not sit
at the same path. A name is never a path, so a task's repo is plainly one or the other.
"""

from __future__ import annotations

import os
import re

from bdp.errors import ConfigError

#: What a repo's name may be: letters, digits, ``.``, ``_`` and ``-``, not starting with a
#: punctuation mark (so never a path, absolute or relative).
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_repo_name(text: str) -> bool:
    return REPO_NAME.fullmatch(text) is not None


def parse_repo_names(text: str, variable: str) -> tuple[tuple[str, str], ...]:
    """The (name, clone) pairs of a BDP_REPOS value; ConfigError naming a bad entry."""
    pairs: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, path = (part.strip() for part in entry.partition("="))
        if not sep or not is_repo_name(name) or not os.path.isabs(path):
            raise ConfigError(
                f"{variable} entry {entry!r} is not name=/absolute/path",
                f"set {variable}=app=/srv/app,lib=/srv/lib (a name of letters, digits, . _ -)",
            )
        if name in pairs:
            raise ConfigError(f"{variable} names {name!r} twice", "give each repo one clone")
        pairs[name] = os.path.normpath(path)
    return tuple(pairs.items())
