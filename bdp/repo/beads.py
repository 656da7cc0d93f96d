"""The `bd` command line, driven as a subprocess and parsed into typed values.

Tolerant of the shapes different bd versions print (raw arrays, ``{"data": ...}`` envelopes,
``{"items": ...}`` lists, JSON errors on stdout or stderr), strict about exit codes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from bdp.config import user_umask
from bdp.errors import BeadsError, RepoError, UnknownIssue
from bdp.models import Issue
from bdp.redact import scrub
from bdp.repo.epics import EpicProgress
from bdp.repo.selection import ReadyFilters as ReadyFilters  # where bdp has always found it

#: How to install beads where `bd` is missing (its npm package fetches the release binary).
INSTALL_BD = (
    "install beads: `npm install -g @beads/bd`, or `go install "
    "github.com/steveyegge/beads/cmd/bd@latest`; or set BDP_BD to the full path of bd"
)
#: Seconds one bd call may take; embedded Dolt serialises concurrent writers, so allow queueing.
BD_CALL_TIMEOUT = 120.0
_NO_WORKSPACE = "no beads database found"
_NOT_FOUND = "no issue found"


#: bd calls whose failure would lose a finished run's result are tried again: a locked
#: database or a slow disk is usually gone a moment later. Unknown issues and a missing
#: workspace are not retried.
_RETRIED = retry(
    retry=retry_if_exception(
        lambda error: isinstance(error, BeadsError) and not isinstance(error, UnknownIssue)
    ),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)


#: Characters of a close reason and of a comment bdp passes to bd (as arguments, which the
#: kernel caps at 128 KiB each): longer text is cut, and the run's log has all of it.
MAX_REASON = 2_000
MAX_COMMENT = 16_000


def bounded(text: str, limit: int) -> str:
    """``text``, or its start and a note that the rest was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 60].rstrip() + " … (cut; the run's log has the whole text)"


#: How bd says a claim's compare-and-set lost (someone holds the issue, or it is not open).
_CLAIM_LOST = ("already claimed", "not claimable")


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: won, or lost with bd's reason."""

    won: bool
    reason: str = ""
    issue: Issue | None = None  # the claimed issue as bd re-read it, saving a `bd show`


class Beads(Protocol):
    """What bdp needs from an issue tracker; `BdCli` is the real one."""

    def ready(self, filters: ReadyFilters) -> list[Issue]: ...
    def show(self, issue_id: str) -> Issue: ...
    def claim(self, issue_id: str, actor: str) -> Claim: ...
    def close(self, issue_id: str, reason: str, actor: str) -> None: ...
    def reset(self, issue_id: str, actor: str) -> None: ...
    def comment(self, issue_id: str, text: str, actor: str) -> None: ...
    def renew_lease(self, issue_id: str, actor: str) -> None: ...
    def in_progress(self) -> list[Issue]: ...
    def file(self, follow_up: FollowUp, actor: str) -> str: ...
    def discovered(self, issue_id: str) -> dict[str, str]: ...
    def comment_texts(self, issue_id: str) -> list[str]: ...
    def add_dependency(self, issue_id: str, depends_on: str, actor: str) -> None: ...
    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]: ...


@dataclass(frozen=True)
class FollowUp:
    """New work an agent found while on ``found_in``, filed as an issue discovered from it."""

    found_in: str
    title: str
    description: str = ""
    issue_type: str = "task"
    priority: int = 2
    parent: str = ""  # file it as a child of this epic instead (what an epic's review found)


def _origin(follow_up: FollowUp) -> tuple[str, ...]:
    """How a follow-up is linked to where it was found: discovered from it, or a child of it.
    bd keeps one edge per pair of issues, so a child of an epic cannot also be discovered
    from it."""
    if follow_up.parent:
        return ("--parent", follow_up.parent)
    return ("--deps", f"discovered-from:{follow_up.found_in}")


@dataclass(frozen=True)
class _Reply:
    code: int
    stdout: str
    stderr: str

    def error_text(self) -> str:
        payload = _parse(self.stdout) if self.stdout.strip() else None
        if isinstance(payload, dict) and payload.get("error"):
            return str(payload["error"])
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return lines[0].removeprefix("Error: ") if lines else f"bd exited with status {self.code}"


class BdCli:
    """Runs `bd` in a repository's work tree, so bd finds that repo's workspace."""

    def __init__(self, repo: Path, bd: str = "bd") -> None:
        self.repo = repo
        self.bd = bd
        self._leases = True  # bd 1.3+ has `bd heartbeat`; older ones say "unknown command"

    def ready(self, filters: ReadyFilters) -> list[Issue]:
        reply = self._run("ready", *filters.args())
        self._check(reply, "list ready issues")
        return [Issue.from_json(item) for item in _as_list(_parse(reply.stdout))]

    def show(self, issue_id: str) -> Issue:
        reply = self._run("show", issue_id)
        self._check(reply, f"show {issue_id}", issue_id)
        items = _as_list(_parse(reply.stdout))
        if not items:
            raise UnknownIssue(f"bd knows no issue {issue_id!r}", "check the id with `bd list`")
        return Issue.from_json(items[0])

    def claim(self, issue_id: str, actor: str) -> Claim:
        """Compare-and-set claim: only an open issue, unassigned or already ours, is won."""
        reply = self._run("update", issue_id, "--claim", "--actor", actor)
        claimed = _as_list(_parse(reply.stdout) if reply.stdout.strip() else [])
        if reply.code == 0 and claimed:
            first = claimed[0]
            return Claim(True, issue=Issue.from_json(first) if isinstance(first, dict) else None)
        reason = reply.error_text()
        if _NOT_FOUND in reason or _NO_WORKSPACE in reason:
            self._check(reply, f"claim {issue_id}", issue_id)
        if not any(lost in reason for lost in _CLAIM_LOST):  # bd failed, nobody won: say so
            raise BeadsError(f"bd could not claim {issue_id}: {reason}")
        return Claim(False, reason.removeprefix(f"Error claiming {issue_id}: "))

    @_RETRIED
    def close(self, issue_id: str, reason: str, actor: str) -> None:
        reason = bounded(scrub(reason), MAX_REASON)
        reply = self._run("close", issue_id, "--reason", reason, "--actor", actor)
        self._check(reply, f"close {issue_id}", issue_id)

    def reset(self, issue_id: str, actor: str) -> None:
        """Back to open and unassigned, so `bd ready` offers it again."""
        reply = self._run(
            "update", issue_id, "--status", "open", "--assignee", "", "--actor", actor
        )
        self._check(reply, f"reset {issue_id}", issue_id)

    def file(self, follow_up: FollowUp, actor: str) -> str:
        """Create the follow-up issue; its id."""
        reply = self._run(
            "create",
            "--title",
            scrub(follow_up.title),
            "--description",
            scrub(follow_up.description),
            "--type",
            follow_up.issue_type,
            "--priority",
            str(follow_up.priority),
            *_origin(follow_up),
            "--actor",
            actor,
        )
        self._check(reply, f"file a follow-up of {follow_up.found_in}", follow_up.found_in)
        return str(_as_list(_parse(reply.stdout))[0]["id"])

    def discovered(self, issue_id: str) -> dict[str, str]:
        """The issues filed as discovered from ``issue_id``: title to id."""
        reply = self._run("show", issue_id, "--include-dependents")
        self._check(reply, f"show {issue_id}", issue_id)
        items = _as_list(_parse(reply.stdout))
        dependents = items[0].get("dependents") or [] if items else []
        return {
            str(d.get("title", "")): str(d["id"])
            for d in dependents
            if isinstance(d, dict) and d.get("dependency_type") == "discovered-from"
        }

    def comment_texts(self, issue_id: str) -> list[str]:
        """The texts of ``issue_id``'s comments, oldest first."""
        reply = self._run("comments", issue_id)
        self._check(reply, f"read the comments of {issue_id}", issue_id)
        payload = _parse(reply.stdout) if reply.stdout.strip() else []
        items = payload if isinstance(payload, list) else _as_list(payload)
        return [str(item.get("text", "")) for item in items if isinstance(item, dict)]

    @_RETRIED
    def add_dependency(self, issue_id: str, depends_on: str, actor: str) -> None:
        """``issue_id`` waits for ``depends_on``: bd ready offers it once that one closes."""
        reply = self._run("dep", "add", issue_id, depends_on, "--type", "blocks", "--actor", actor)
        self._check(reply, f"make {issue_id} wait for {depends_on}", issue_id)

    @_RETRIED
    def comment(self, issue_id: str, text: str, actor: str) -> None:
        text = bounded(scrub(text), MAX_COMMENT)
        reply = self._run("comment", issue_id, "--actor", actor, "--", text)
        self._check(reply, f"comment on {issue_id}", issue_id)

    def renew_lease(self, issue_id: str, actor: str) -> None:
        """Keep bd's own work lease alive, so `bd reclaim` never takes a live issue."""
        if not self._leases:
            return
        reply = self._run("heartbeat", issue_id, "--actor", actor)
        if reply.code != 0 and "unknown command" in reply.error_text():
            self._leases = False

    def in_progress(self) -> list[Issue]:
        """Issues someone has claimed and not finished."""
        reply = self._run("list", "--status", "in_progress", "--limit", "0")
        self._check(reply, "list in-progress issues")
        return [Issue.from_json(item) for item in _as_list(_parse(reply.stdout))]

    def show_many(self, issue_ids: Sequence[str]) -> list[Issue]:
        """Each of ``issue_ids`` as bd resolves it, in order; UnknownIssue names any it lacks."""
        return [Issue.from_json(item) for item in self._details(issue_ids)]

    def epics(self, epic_ids: Sequence[str] = ()) -> list[EpicProgress]:
        """These issues (else every open epic) with their children: one `bd show`, after one
        `bd list --type epic` when no ids are given."""
        listed = () if epic_ids else self._items("list", "--type", "epic", "--limit", "0")
        ids = list(epic_ids) or [str(item["id"]) for item in listed]
        details = self._details(ids, "--include-dependents") if ids else []
        return [EpicProgress.from_json(item) for item in details]

    def everything(self) -> list[Issue]:
        """Every issue, closed ones too, in one `bd list` (each with its parent)."""
        return [Issue.from_json(item) for item in self._items("list", "--all", "--limit", "0")]

    def _items(self, *args: str) -> list[dict[str, Any]]:
        reply = self._run(*args)
        self._check(reply, " ".join(args[:3]))
        return _as_list(_parse(reply.stdout))

    def _details(self, issue_ids: Sequence[str], *flags: str) -> list[dict[str, Any]]:
        reply = self._run("show", *flags, "--", *issue_ids)
        missing = [token for token in issue_ids if f"Error fetching {token}:" in reply.stderr]
        if missing or (reply.code and "no issues found" in reply.error_text()):
            named = ", ".join(repr(token) for token in missing or issue_ids)
            raise UnknownIssue(f"bd knows no issue {named}", "check the ids with `bd list`")
        self._check(reply, f"show {' '.join(issue_ids)}")
        return _as_list(_parse(reply.stdout))

    def _run(self, *args: str) -> _Reply:
        argv = [self.bd, args[0], "--json", *args[1:]]  # before any `--`, after which all is text
        try:
            done = subprocess.run(
                argv,
                cwd=self.repo,
                capture_output=True,
                text=True,
                timeout=BD_CALL_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                umask=user_umask(),
            )
        except FileNotFoundError:
            raise BeadsError(
                f"`{self.bd}` was not found",
                INSTALL_BD,
            ) from None
        except subprocess.TimeoutExpired:
            raise BeadsError(f"`bd {args[0]}` took longer than {BD_CALL_TIMEOUT:.0f}s") from None
        return _Reply(done.returncode, done.stdout, done.stderr)

    def _check(self, reply: _Reply, action: str, issue_id: str = "") -> None:
        error = reply.error_text()
        if reply.code == 0 and not (_looks_like_error(reply.stdout)):
            return
        if _NO_WORKSPACE in reply.stderr or _NO_WORKSPACE in error:
            raise RepoError(
                f"no beads workspace found in {self.repo}",
                "run `bd init` there, or set BEADS_DIR to the .beads directory",
            )
        if issue_id and (_NOT_FOUND in error or _NOT_FOUND in reply.stderr):
            raise UnknownIssue(f"bd knows no issue {issue_id!r}", "check the id with `bd list`")
        raise BeadsError(f"bd could not {action}: {error}")


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise BeadsError(
            "bd printed something that is not JSON", f"got: {text.strip()[:120]!r}"
        ) from None


def _looks_like_error(stdout: str) -> bool:
    if not stdout.strip().startswith("{"):
        return False
    payload = _parse(stdout)
    return isinstance(payload, dict) and "error" in payload


def _as_list(payload: Any) -> list[dict[str, Any]]:
    """Unwrap the list shapes bd versions print: raw array, envelope, items object."""
    if isinstance(payload, dict):
        payload = payload.get("data", payload.get("items", payload))
        if isinstance(payload, dict) and "id" in payload:
            payload = [payload]
    if not isinstance(payload, list):
        raise BeadsError("bd printed JSON of an unexpected shape", "is this bd 0.5x or newer?")
    return [item for item in payload if isinstance(item, dict)]
