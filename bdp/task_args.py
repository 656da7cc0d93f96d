"""What a queued task carries: one issue of one repo, and how to go on with it.

The payload travels as JSON on the queue and may come from an older or a newer bdp, or be
forged: `TaskArgs.from_task` checks every field in one place and names what is malformed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bdp.errors import TaskError
from bdp.repo_names import is_repo_name


@dataclass(frozen=True)
class TaskArgs:
    """What a queued task carries: simple, JSON-safe data only."""

    repo: str
    issue_id: str
    attempt: int = 1
    continuation: int = 0  # how many sessions before this one left the issue unfinished
    resume: str = ""  # the SDK session to resume, when this task continues one
    prior: str = ""  # what the unfinished session did, for a fresh session to build on
    files: tuple[str, ...] = ()  # files the unfinished sessions changed, still uncommitted
    max_cost: float | None = None  # USD this issue may cost over all its attempts
    isolation: str | None = None  # "worktree" or "shared" (`--isolation`); None: the default
    branch: str = ""  # worktree isolation: the branch an earlier session left its work on
    land_round: int = 0  # times this issue's finished work failed to land and came back
    resume_cost: float = 0.0  # what the session to resume has cost (its runs counted that)
    parent: str | None = None  # the issue's epic as enqueue saw it ("": none); None: unknown
    host: str = ""  # the machine holding the session to resume and its branch ("": any)

    def to_task(self) -> dict[str, Any]:
        """The task's payload: JSON-simple values only (what Huey stores on the queue)."""
        payload = asdict(self)
        payload["files"] = list(self.files)
        for name, unset in (("parent", None), ("host", "")):  # what an older consumer reads
            if payload[name] == unset:
                del payload[name]
        return payload

    @classmethod
    def from_task(cls, payload: object) -> TaskArgs:
        """The arguments a queued task carries, checked; TaskError names what is malformed."""
        if not isinstance(payload, dict):
            raise TaskError(f"malformed task: expected a mapping of arguments, got {payload!r}")
        unknown = sorted(set(payload) - {f.name for f in fields(cls)})
        if unknown:
            raise TaskError(f"malformed task: unknown arguments {unknown} (from a newer bdp?)")
        get = payload.get
        args = cls(_repo(get("repo")), _issue_id(get("issue_id")), _attempt(get("attempt", 1)))
        resume, prior = get("resume", ""), get("prior", "")
        if not isinstance(resume, str) or not isinstance(prior, str):
            raise TaskError("malformed task: resume and prior must be strings")
        return replace(
            args,
            continuation=_count("continuation", get("continuation", 0)),
            resume=resume,
            resume_cost=_resume_cost(get("resume_cost", 0.0)),
            prior=prior,
            files=_files(get("files", ())),
            max_cost=_max_cost(get("max_cost")),
            isolation=_isolation(get("isolation")),
            branch=_branch(get("branch", "")),
            land_round=_count("land_round", get("land_round", 0)),
            parent=_parent(get("parent")),
            host=_host(get("host", "")),
        )


def _repo(repo: object) -> str:
    if not isinstance(repo, str) or not (os.path.isabs(repo) or is_repo_name(repo)):
        raise TaskError(
            f"malformed task: repo must be an absolute path or a repo name, got {repo!r}"
        )
    return repo


def _issue_id(issue_id: object) -> str:
    if not isinstance(issue_id, str) or not issue_id.strip():
        raise TaskError(f"malformed task: issue id must be a non-empty string, got {issue_id!r}")
    return issue_id


def _attempt(attempt: object) -> int:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise TaskError(f"malformed task: attempt must be a positive integer, got {attempt!r}")
    return attempt


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TaskError(f"malformed task: {name} must be a whole number >= 0, got {value!r}")
    return value


def _files(files: object) -> tuple[str, ...]:
    if not isinstance(files, list | tuple) or not all(isinstance(f, str) for f in files):
        raise TaskError(f"malformed task: files must be a list of paths, got {files!r}")
    return tuple(files)


def _branch(branch: object) -> str:
    if not isinstance(branch, str) or (branch and not branch.startswith("bdp/")):
        raise TaskError(f"malformed task: branch must be one of bdp's (bdp/...), got {branch!r}")
    return branch


def _parent(parent: object) -> str | None:
    if parent is not None and not isinstance(parent, str):
        raise TaskError(f"malformed task: parent must be an issue id or empty, got {parent!r}")
    return parent


def _host(host: object) -> str:
    if not isinstance(host, str):
        raise TaskError(f"malformed task: host must be a host name, got {host!r}")
    return host


def _isolation(isolation: object) -> str | None:
    if isolation is not None and isolation not in ("worktree", "shared"):
        raise TaskError(f"malformed task: isolation must be worktree or shared, got {isolation!r}")
    return isolation


def _resume_cost(cost: object) -> float:
    if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
        raise TaskError(f"malformed task: resume_cost must be a number >= 0, got {cost!r}")
    return float(cost)


def _max_cost(max_cost: object) -> float | None:
    if max_cost is None:
        return None
    if isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost <= 0:
        raise TaskError(f"malformed task: max_cost must be a positive number, got {max_cost!r}")
    return float(max_cost)
