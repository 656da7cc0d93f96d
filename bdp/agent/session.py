"""The seam between a worker and an agent: request, result, and the runner protocol.

`bdp.agent.claude.ClaudeAgentRunner` is the real runner (loaded only when a worker starts);
`StubAgentRunner` is the in-memory double for fast unit tests of the worker pipeline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bdp.agent.transcript import Transcript
from bdp.config import Settings
from bdp.models import Activity, Issue, Outcome
from bdp.repo.beads import FollowUp
from bdp.repo.epic_work import EpicBrief
from bdp.repo.lock_records import Holder
from bdp.repo.lock_table import Locks
from bdp.repo.quality_gate import GateResult


class TransientSessionError(Exception):
    """A failure worth retrying: API overloaded or rate-limited, the CLI crashed."""


class PermanentSessionError(Exception):
    """A failure retrying cannot fix: bad credentials, billing, broken configuration."""


class UsageLimitError(Exception):
    """The account is rate- or usage-limited: the queue pauses instead of retrying."""

    def __init__(self, message: str, resets_at: float | None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class LiveProgress:
    """The latest Activity of a session, handed from the agent to the watchdog thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._activity: Activity | None = None

    def publish(self, activity: Activity) -> None:
        with self._lock:
            self._activity = activity

    def take(self) -> Activity | None:
        """The activity published since the last take, if any."""
        with self._lock:
            activity, self._activity = self._activity, None
        return activity


#: What follows the messages people send a session, so it goes on working to its verdict.
STEER_FOOTER = "Take this into account and carry on; finish as your instructions say."


class Steering:
    """Messages people send a running session (`bdp say`), handed from the watchdog thread
    to the session, which passes them on after the agent's next tool call or turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[str] = []

    def post(self, sender: str, text: str) -> None:
        with self._lock:
            self._waiting.append(f"A message from {sender}, sent with `bdp say` while you work:")
            self._waiting.append(text)

    def take(self) -> str:
        """Every message waiting, as one note for the agent ("" when there is none)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        return "\n\n".join([*waiting, STEER_FOOTER]) if waiting else ""


class StopSignal:
    """Asks a running session to end early, saying which outcome that counts as."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.outcome = Outcome.INTERRUPTED
        self.reason = ""
        self.requeue = False  # a person's stop (`bdp stop --requeue`) queues the issue again
        self.waits_for = ""  # a deadlock victim's stop: the issue it must wait for

    def stop(
        self, outcome: Outcome, reason: str, requeue: bool = False, waits_for: str = ""
    ) -> None:
        """The first reason wins; later ones are ignored."""
        if not self._event.is_set():
            self.outcome, self.reason, self.requeue = outcome, reason, requeue
            self.waits_for = waits_for
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, ending early when stopped; True if stopped."""
        return self._event.wait(seconds)


@dataclass(frozen=True)
class SessionRequest:
    """One session to run: which issue, where, until when, and who holds its locks."""

    run_id: str
    issue: Issue
    repo: Path
    deadline: float
    transcript: Transcript
    locks: Locks
    holder: Holder
    stop: StopSignal = field(default_factory=StopSignal)
    attempt: int = 1
    gate: Callable[[], GateResult] | None = None  # the repo's checks, run after each DONE
    fix_rounds: int = 0
    review_rounds: int | None = None  # None: no review; else rounds of reviewer findings
    resume: str = ""  # SDK session id to continue (a continuation task)
    resume_cost: float = 0.0  # what that session cost before (the CLI counts it in again)
    prior: str = ""  # what an unfinished earlier session did
    landing: str = ""  # why its finished work came back from the lander (a landing round)
    max_cost: float | None = None  # USD this run may still spend before it is stopped
    progress: LiveProgress = field(default_factory=LiveProgress)
    steering: Steering = field(default_factory=Steering)  # messages from `bdp say`
    shared_tree: bool = True  # other agents work in the same tree: only read-only git
    file_issue: Callable[[FollowUp], str] | None = None  # files a follow-up; its new id
    freshen: Callable[[list[str]], list[str]] | None = None  # newly locked files brought up
    # to date with the target branch (a worktree): the ones that changed there
    epic: EpicBrief | None = None  # set: the session reviews this finished epic, read-only
    session_store: Any = None  # the SDK's SessionStore the transcript is mirrored to, if any


@dataclass
class SessionResult:
    """What a session did, whatever its outcome."""

    outcome: Outcome
    summary: str
    changed_files: list[str] = field(default_factory=list)
    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    session_id: str = ""
    session_cost_usd: float = 0.0  # all that session has cost, earlier runs' part included
    attempts: int = 0
    details: str = ""  # longer text for the bd comment (e.g. the failing gate's output)
    review: str = ""
    review_cost_usd: float = 0.0
    resets_at: float | None = None  # PAUSED: when the usage limit resets, if the API said
    verdict: str = ""  # where the agent's verdict was read: "structured", "text" or ""
    cited_commit: str = ""  # ALREADY_DONE: the commit the agent says made the change
    follow_ups: tuple[FollowUp, ...] = ()  # work the agent's report asks bdp to file
    waits_for: str = ""  # a deadlock victim: the issue whose run holds what it waited for


class AgentRunner(Protocol):
    """Runs one agent session to completion, within ``request.deadline``."""

    def run(self, request: SessionRequest) -> SessionResult: ...


#: Builds a worker process's agent runner from its settings (tests pass a stub's).
AgentFactory = Callable[[Settings], AgentRunner]


@dataclass
class StubAgentRunner:
    """In-memory double: locks and writes the given files, then returns the given result."""

    outcome: Outcome = Outcome.DONE
    summary: str = "stub change"
    files: dict[str, str] = field(default_factory=dict)
    on_run: Callable[[SessionRequest], None] | None = None
    requests: list[SessionRequest] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # more SessionResult fields to return

    def run(self, request: SessionRequest) -> SessionResult:
        self.requests.append(request)
        if self.on_run:
            self.on_run(request)
        if self.files:
            request.locks.acquire(self.files, request.holder, wait=0)
        for name, text in self.files.items():
            (request.repo / name).parent.mkdir(parents=True, exist_ok=True)
            (request.repo / name).write_text(text)
        result = SessionResult(self.outcome, self.summary, sorted(self.files), turns=1, attempts=1)
        return replace(result, **self.report)
