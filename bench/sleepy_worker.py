"""A consumer module for bench/parallel.py: bdp's real tasks, with an agent that only sleeps.

    huey_consumer bench.sleepy_worker.huey -w 8 -k thread      # with PYTHONPATH at the repo

Built like bdp/consumer.py, except that the agent factory returns `SleepyAgent`: each
session sleeps ``BENCH_SESSION_SECONDS`` (default 2) and then locks and writes one file, so the
rest of bdp's pipeline (claim through bd, run registry, heartbeats, locks, worktree, git commit,
landing, bd close, outcome record) runs for real around a session of known length. Issues
named in ``BENCH_COMMON`` also add a line at the end of one common file (so their landings
conflict in worktree isolation); a landing round takes a quarter of the session time and
resolves the conflict by keeping every line.

With ``BENCH_TIMELINE`` set to a file, every task start and end (from Huey's signals), every
session start and end, every process the consumer starts, and the duration of every bd and git
call and of each whole commit step are appended there as JSON lines, so the benchmark can say
where the time between sessions goes.
The calls are timed by wrapping bdp's functions in this process only; bdp itself is unchanged.

Diagnostic mode, ``BENCH_BEADS=memory`` with ``BENCH_ISSUES=id,id,...``: the workers talk to one
in-process `MemoryBeads` (the double bench/overhead.py uses) instead of running `bd`, to show
what bdp's own orchestration costs without bd's process start-ups. bd's store is not updated.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_EXECUTING

from bdp.agent.session import AgentRunner, SessionRequest, SessionResult
from bdp.config import Settings
from bdp.models import Issue, Outcome
from bdp.queue.app import App
from bdp.repo import beads
from bdp.repo import git as gitops
from bdp.repo.locks import LOCK_WAIT
from bdp.repo.memory_beads import MemoryBeads
from bdp.run import deps as worker_deps
from bdp.run import shared as run_shared


class Timeline:
    """Appends one JSON line per event to a file; does nothing without a path."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def event(self, kind: str, issue_id: str, **more: Any) -> None:
        if not self.path:
            return
        line = {
            "t": time.time(),
            "ev": kind,
            "issue": issue_id,
            "thread": threading.current_thread().name,
            **more,
        }
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


TIMELINE = Timeline(os.environ.get("BENCH_TIMELINE"))


#: The file every issue in BENCH_COMMON (comma-separated ids) also edits, at its end.
COMMON = "bench/common.txt"
COMMON_ISSUES = frozenset(filter(None, os.environ.get("BENCH_COMMON", "").split(",")))
#: Session seconds of an issue's later attempts (BENCH_RETRY_SECONDS), when set.
RETRY_SECONDS = (
    float(os.environ["BENCH_RETRY_SECONDS"]) if "BENCH_RETRY_SECONDS" in os.environ else None
)


class SleepyAgent:
    """A session that takes ``seconds`` and edits one file named after its issue."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, request: SessionRequest) -> SessionResult:
        issue_id = request.issue.id
        TIMELINE.event("session_start", issue_id)
        seconds = self.seconds / 4 if request.landing else self.seconds  # a conflict to resolve
        if request.attempt > 1 and RETRY_SECONDS is not None:  # bench/recovery.py's redo
            seconds = RETRY_SECONDS
        deadline = time.monotonic() + seconds
        while not request.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.05))
        if request.stop.is_set():
            return SessionResult(request.stop.outcome, request.stop.reason, attempts=1)
        name = f"bench/{issue_id}.txt"
        names = [name, COMMON] if issue_id in COMMON_ISSUES else [name]
        request.locks.acquire(names, request.holder, wait=LOCK_WAIT)
        if request.freshen is not None:  # as the edit hook does
            request.freshen(names)
        path: Path = request.repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"work for {issue_id}\n")
        if COMMON in names:
            _append_or_resolve(request.repo / COMMON, issue_id)
        TIMELINE.event("session_end", issue_id)
        return SessionResult(Outcome.DONE, f"wrote {name}", names, turns=1, attempts=1)


def _append_or_resolve(path: Path, issue_id: str) -> None:
    """Add the issue's line to the common file; conflict markers resolved by keeping both."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    mine = f"{issue_id} was here"
    path.write_text("\n".join([*kept, *([] if mine in kept else [mine])]) + "\n")


def sleepy_agent(settings: Settings) -> AgentRunner:
    return SleepyAgent(float(os.environ.get("BENCH_SESSION_SECONDS", "2")))


def _memory_beads(issue_ids: str) -> None:
    """Every worker of this process shares one in-memory tracker holding ``issue_ids``."""
    shared = MemoryBeads([Issue(id=i, title=f"Bench issue {i}") for i in issue_ids.split(",")])

    def beads_for(self: worker_deps.RunDeps, repo: Path) -> beads.Beads:
        return shared

    worker_deps.RunDeps.beads_for = beads_for  # type: ignore[method-assign]


if os.environ.get("BENCH_BEADS") == "memory":
    _memory_beads(os.environ["BENCH_ISSUES"])

app = App.create(Settings.from_env(), agent=sleepy_agent)
huey = app.huey
tasks = app.tasks


def _timed(owner: Any, attribute: str, label: Callable[..., str]) -> None:
    """Wrap ``owner.attribute`` so each call logs a "call" event with its duration."""
    original = getattr(owner, attribute, None)
    if original is None or not TIMELINE.path:
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            TIMELINE.event("call", "", name=label(*args), seconds=time.time() - start)

    setattr(owner, attribute, wrapper)


def _bd_label(_self: object, *args: str) -> str:
    return f"bd {args[0]}"


def _git_label(_repo: object, *args: str) -> str:
    while len(args) > 2 and args[0] == "-c":  # settings given before the command
        args = args[2:]
    return f"git {args[0]}"


def _commit_label(*_args: object) -> str:
    return "commit_paths (git lock + git calls)"


_timed(beads.BdCli, "_run", _bd_label)
_timed(gitops, "git", _git_label)
_timed(run_shared, "commit_changed", _commit_label)  # an older bdp's: commit_paths
_timed(run_shared, "commit_paths", _commit_label)


def _note_spawns() -> None:
    """Log every process this consumer starts (bd, git, from any thread) as a "spawn"."""
    real_init = subprocess.Popen.__init__

    def init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [os.path.basename(str(args[0])), *(str(a) for a in args[1:])]
        while len(argv) > 2 and argv[1] == "-c":  # git's settings come before its command
            del argv[1:3]
        TIMELINE.event("spawn", "", name=" ".join(argv[:2]))
        real_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]


if TIMELINE.path:
    _note_spawns()


def _issue_of(task: Any) -> str:
    """The issue a run_issue task carries (its payload is `TaskArgs.to_task()`)."""
    args: tuple[Any, ...] = tuple(getattr(task, "args", None) or ())
    payload = args[0] if args and isinstance(args[0], dict) else {}
    return str(payload.get("issue_id", ""))


@huey.signal(SIGNAL_EXECUTING)  # type: ignore[untyped-decorator]
def _executing(signal: str, task: Any, *args: Any) -> None:
    TIMELINE.event("task_start", _issue_of(task), task=task.name)


@huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR)  # type: ignore[untyped-decorator]
def _finished(signal: str, task: Any, *args: Any) -> None:
    TIMELINE.event("task_end", _issue_of(task), task=task.name)
