"""The domain nouns: Issue, Run, Outcome and the record of how a run ended."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """How one run of one issue ended."""

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


#: Outcomes a person should look at: the issue is back in the backlog with a reason.
NEEDS_ATTENTION = frozenset(
    {Outcome.FAILED, Outcome.TIMED_OUT, Outcome.BLOCKED, Outcome.ABANDONED, Outcome.NO_CHANGE,
     Outcome.OVER_BUDGET}
)  # fmt: skip


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
        )


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
