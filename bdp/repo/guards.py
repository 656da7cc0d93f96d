"""Guard rails for agents sharing one work tree: where they may write, which git they may run.

Pure functions, so the rules are tested without a session; `agent.py` wires them into SDK
hooks that deny the tool call with the reason returned here.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

#: Tools that write files, and the input key naming the file.
EDIT_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}
_SEPARATORS = re.compile(r"&&|\|\||[;|&\n()`]|\$\(")
_GIT_OPTS_WITH_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace"}
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh"}
_SHARED_TREE = "other agents have uncommitted work in this tree"


def edit_target(tool_name: str, tool_input: dict[str, Any]) -> str | None:
    """The file an edit tool call would write, or None for other tools."""
    key = EDIT_TOOLS.get(tool_name)
    value = tool_input.get(key) if key else None
    return str(value) if value else None


def resolve_in_repo(repo: Path, target: str) -> Path | None:
    """The repo-relative path of ``target``, or None when it resolves outside ``repo``.

    Symlinks are resolved, so a link pointing out of the repo does not count as inside.
    """
    root = Path(os.path.realpath(repo))
    path = Path(target) if os.path.isabs(target) else root / target
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(root):
        return None
    return resolved.relative_to(root)


def check_edit(repo: Path, target: str) -> str | None:
    """Why an edit of ``target`` is refused, or None when it is allowed."""
    relative = resolve_in_repo(repo, target)
    if relative is None:
        return f"{target} is outside the repository {repo}; agents may only write inside it"
    if relative.parts[:1] == (".git",):
        return f"{target} is inside .git; let git manage its own files"
    return None


#: The git an agent may run in a shared work tree: reading, nothing that writes.
READ_ONLY_GIT = frozenset({"status", "diff", "log", "show", "ls-files", "blame", "grep"})


def check_bash(command: str, read_only_git: bool = False) -> str | None:
    """Why a shell command is refused (it would destroy shared work), or None.

    With ``read_only_git`` (a shared work tree) only `READ_ONLY_GIT` subcommands pass, however
    they are spelled; otherwise the commands that destroy others' work are refused.
    """
    for segment in _SEPARATORS.split(command):
        reason = _check_git(_tokens(segment), read_only_git)
        if reason:
            return reason
    return None


def _tokens(segment: str) -> list[str]:
    try:
        return shlex.split(segment)
    except ValueError:
        return segment.split()


def _check_git(tokens: list[str], read_only_git: bool) -> str | None:
    nested = _nested_script(tokens)
    if nested is not None:
        return check_bash(nested, read_only_git)
    starts = [i for i, tok in enumerate(tokens) if os.path.basename(tok) == "git"]
    if not starts:
        return None
    args = _skip_git_options(tokens[starts[0] + 1 :])
    if not args:
        return None
    if read_only_git:
        return _read_only_verdict(args[0], args[1:])
    return _verdict(args[0], args[1:])


def _read_only_verdict(sub: str, rest: list[str]) -> str | None:
    if sub in READ_ONLY_GIT:
        return None
    shown = " ".join(["git", sub, *rest])
    allowed = ", ".join(sorted(READ_ONLY_GIT))
    return (
        f"`{shown}` is not allowed: {_SHARED_TREE}, so only read-only git runs here ({allowed}). "
        "Edit files with the edit tools and leave staging and committing to bdp."
    )


def _nested_script(tokens: list[str]) -> str | None:
    """The script of ``sh -c '...'`` (bash, zsh, dash; ``-lc``, ``-ec`` too), which hides
    commands in one token."""
    for i, token in enumerate(tokens[:-1]):
        if os.path.basename(token) not in _SHELLS:
            continue
        for j in range(i + 1, len(tokens) - 1):
            flag = tokens[j]
            if not flag.startswith("-") or flag.startswith("--"):
                break
            if "c" in flag[1:]:
                return tokens[j + 1]
    return None


def _skip_git_options(args: list[str]) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GIT_OPTS_WITH_VALUE else 1
    return args[i:]


def _verdict(sub: str, rest: list[str]) -> str | None:
    rules = {
        "stash": not rest or rest[0] not in ("list", "show"),
        "reset": "--hard" in rest,
        "checkout": "." in rest or ":/" in rest,
        "restore": "." in rest or ":/" in rest,
        "clean": "-n" not in rest and "--dry-run" not in rest,
        "commit": "--all" in rest or any(_short_flag(a, "a") for a in rest),
        "add": bool({"-A", "--all", "-u", "--update", ".", ":/", "*"} & set(rest)),
        "push": True,
    }
    if not rules.get(sub, False):
        return None
    shown = " ".join(["git", sub, *rest])
    return (
        f"`{shown}` is not allowed: {_SHARED_TREE}. Edit files with the edit tools and "
        "leave staging, committing and pushing to bdp, which commits exactly your files."
    )


def _short_flag(arg: str, letter: str) -> bool:
    return arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]
