"""The domain nouns: Issue, Run, Outcome, the arguments a task carries and how a run ended.

Everything here is plain data, JSON-safe, and imports nothing of bdp but its errors: every
other layer may use it.
"""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from bdp.task_args import TaskArgs as TaskArgs  # where most code imports it from


class Outcome(enum.StrEnum):
    """How one run of one issue ended; the policy for each lives on the member."""

    DONE = "DONE"  # closed with a commit
    BLOCKED = "BLOCKED"  # the agent said it cannot proceed; issue reset
    FAILED = "FAILED"  # permanent error or no verdict; issue reset
    TIMED_OUT = "TIMED_OUT"  # hit the hard timeout; issue reset
    SKIPPED = "SKIPPED"  # the claim failed: someone else has it, or it is not open
    INTERRUPTED = "INTERRUPTED"  # the worker shut down mid-session; issue reset
    SUPERSEDED = "SUPERSEDED"  # the janitor gave the issue to another run; this one did nothing
    UNFINISHED = "UNFINISHED"  # out of turns, hung, or said so; continued by a new task
    NO_CHANGE = "NO_CHANGE"  # the agent said DONE but changed no file; issue reset
    ABANDONED = "ABANDONED"  # the janitor found the run dead (worker killed) and reset the issue
    OVER_BUDGET = "OVER_BUDGET"  # the issue's cost crossed its budget; stopped and reset
    PAUSED = "PAUSED"  # the account hit a usage limit; the queue pauses and the issue waits
    ALREADY_DONE = "ALREADY_DONE"  # the change exists (a cited commit); closed without a commit
    OBSOLETE = "OBSOLETE"  # the issue no longer applies (the agent's reason); closed, no commit
    FOLLOW_UPS = "FOLLOW_UPS"  # an epic's review filed what is missing; open until those close

    @property
    def attention_reason(self) -> str:
        """Why a person should look at the issue (it is back in the backlog), or ""."""
        return _ATTENTION.get(self, "")

    @property
    def needs_attention(self) -> bool:
        return self in _ATTENTION

    @property
    def counts_as_failed(self) -> bool:
        """Counted as "failed" in `bdp status` totals."""
        return self in _STATUS_FAILED

    @property
    def fails_run_command(self) -> bool:
        """Counted as "failed" by `bdp run`: its summary, and its exit status 1."""
        return self in (Outcome.FAILED, Outcome.TIMED_OUT)

    @property
    def closes_issue(self) -> bool:
        """The run closed its issue: with a commit (DONE), or with a claim that none is needed."""
        return self in (Outcome.DONE, Outcome.ALREADY_DONE, Outcome.OBSOLETE)

    @property
    def adds_ready_work(self) -> bool:
        """Issues may have become ready: ones it unblocked by closing, or follow-ups it filed."""
        return self.closes_issue or self is Outcome.FOLLOW_UPS

    @property
    def needs_no_code(self) -> bool:
        """The agent's claim that the issue is closed as it is; checked by the gate first."""
        return self in (Outcome.ALREADY_DONE, Outcome.OBSOLETE)

    @property
    def resets_issue(self) -> bool:
        """The worker (or janitor) puts the issue back to open, with a comment saying why."""
        return not self.closes_issue and self not in (Outcome.SKIPPED, Outcome.SUPERSEDED)

    @property
    def is_notified(self) -> bool:
        """Sent to BDP_NOTIFY (a duplicate task finding its issue taken is not news)."""
        return self is not Outcome.SKIPPED

    @property
    def ran_session(self) -> bool:
        """A session ran (counted in the duration histogram); a lost claim or a dead run did not."""
        return self not in (Outcome.SKIPPED, Outcome.ABANDONED)


_ATTENTION = {
    Outcome.FAILED: "the run failed and the issue was reset",
    Outcome.TIMED_OUT: "the run hit its time limit and the issue was reset",
    Outcome.BLOCKED: "the agent is blocked and needs a decision",
    Outcome.ABANDONED: "the run's worker died and the janitor reset the issue",
    Outcome.NO_CHANGE: "the agent said DONE but changed no file",
    Outcome.OVER_BUDGET: "the run went over its cost limit and was stopped",
}
_STATUS_FAILED = frozenset(
    {Outcome.FAILED, Outcome.TIMED_OUT, Outcome.OVER_BUDGET, Outcome.ABANDONED, Outcome.NO_CHANGE}
)


def remaining_budget(budget: float | None, spent: float) -> float | None:
    """USD left of ``budget`` after ``spent`` (negative once crossed), or None without one."""
    return None if budget is None else budget - spent


@dataclass(frozen=True)
class Issue:
    """The parts of a bd issue an agent needs."""

    id: str
    title: str
    description: str = ""
    acceptance_criteria: str = ""
    notes: str = ""
    design: str = ""
    status: str = "open"
    priority: int = 2
    issue_type: str = "task"
    assignee: str = ""
    labels: tuple[str, ...] = ()
    updated_at: str = field(default="", compare=False)  # bookkeeping, not content
    parent: str = ""  # the issue (an epic, usually) this one is a child of; "" if none or unknown

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Issue:
        """Build from one element of `bd ... --json`; unknown keys are ignored."""
        return cls(
            id=str(data["id"]),
            title=str(data.get("title", "")),
            description=str(data.get("description") or ""),
            acceptance_criteria=str(data.get("acceptance_criteria") or ""),
            notes=str(data.get("notes") or ""),
            design=str(data.get("design") or ""),
            status=str(data.get("status") or "open"),
            priority=int(data.get("priority", 2)),
            issue_type=str(data.get("issue_type") or "task"),
            assignee=str(data.get("assignee") or ""),
            labels=tuple(data.get("labels") or ()),
            updated_at=str(data.get("updated_at") or ""),
            parent=_parent_of(data),
        )


def _parent_of(data: dict[str, Any]) -> str:
    """bd's ``parent`` field, else the target of a parent-child dependency (older bd versions
    print only those: edge records in list and ready, issue objects in show)."""
    if data.get("parent"):
        return str(data["parent"])
    for dep in data.get("dependencies") or ():
        kind = dep.get("type") or dep.get("dependency_type") if isinstance(dep, dict) else None
        if kind == "parent-child":
            return str(dep.get("depends_on_id") or dep.get("id") or "")
    return ""


@dataclass
class Activity:
    """What a running session is doing now, recorded while it runs for `bdp status`."""

    tool: str = ""  # the tool call in flight, e.g. ``Edit src/app.py``; empty between calls
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # settled at the end of each exchange with the model
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Activity:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Run:
    """One agent session working on one issue, as the registry records it."""

    run_id: str
    issue_id: str
    repo: str
    title: str
    host: str
    pid: int
    worker: str
    attempt: int
    started: float
    deadline: float
    heartbeat: float
    log_path: str = ""
    max_cost: float | None = None  # the issue's budget in USD, carried over to a requeue

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(**data)


@dataclass
class RunRecord:
    """How a run ended: kept for `bdp status` and the summary of `bdp run`."""

    run_id: str
    issue_id: str
    repo: str
    title: str
    outcome: Outcome
    summary: str
    attempt: int = 1
    started: float = 0.0
    finished: float = 0.0
    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    commit: str = ""
    log_path: str = ""
    files: list[str] = field(default_factory=list)
    review: str = ""  # the reviewer's verdict (APPROVE or its findings), when review is on
    review_cost_usd: float = 0.0
    lock_waits: int = 0  # acquires that had to wait for another run's lock
    lock_wait_seconds: float = 0.0
    lock_timeouts: int = 0  # waits that ran out (the edit was denied)
    landed: bool = False  # DONE and its commit is on the target branch (worktree isolation)
    verdict: str = ""  # where the agent's verdict came from: "structured", "text" or ""
    worker: str = ""  # "host/worker" that ran it; "" when no worker claimed it (or recorded)

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{**data, "outcome": Outcome(data["outcome"])})

    @classmethod
    def ended(cls, run: Run, outcome: Outcome, summary: str) -> RunRecord:
        """The record of ``run`` ending now; the caller adds what its session used."""
        return cls(
            run_id=run.run_id,
            issue_id=run.issue_id,
            repo=run.repo,
            title=run.title,
            outcome=outcome,
            summary=summary,
            attempt=run.attempt,
            started=run.started,
            finished=time.time(),
            log_path=run.log_path,
            worker=f"{run.host}/{run.worker}",
        )

    @classmethod
    def unclaimed(cls, args: TaskArgs, outcome: Outcome, reason: str) -> RunRecord:
        """The record of a task that never got its issue (a lost claim, or bd failing)."""
        now = time.time()
        return cls(
            run_id=uuid.uuid4().hex[:12],
            issue_id=args.issue_id,
            repo=args.repo,
            title="",
            outcome=outcome,
            summary=reason,
            attempt=args.attempt,
            started=now,
            finished=now,
        )
