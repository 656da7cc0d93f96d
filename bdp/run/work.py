"""One task inside a worker: claim the issue, register the run, run the agent, finish.

Safe to run twice: the bd claim is a compare-and-set, so a duplicate task finds the issue
taken (or closed) and ends as SKIPPED without touching anything. Every finishing step is
fenced: a run that the janitor has reset in the meantime (it stalled, then woke up) ends as
SUPERSEDED without committing, closing, commenting or touching locks.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

from bdp.agent.session import AgentRunner, LiveProgress, SessionRequest, SessionResult, StopSignal
from bdp.agent.transcript import Redactor, Transcript, log_path
from bdp.broker.hold import pause_queue
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import BdpError, ConfigError
from bdp.models import Issue, Outcome, Run, RunRecord, TaskArgs
from bdp.ops.notify import Event, Notifier, notify_outcome
from bdp.repo.beads import BdCli, Beads, Claim
from bdp.repo.git import changed_paths, commit_paths
from bdp.repo.locks import Holder, LockTable
from bdp.repo.quality_gate import load_repo_config, run_gate
from bdp.run.watchdog import LEASE_RENEWAL, Watch, watching

log = logging.getLogger("bdp.run.work")
T = TypeVar("T")


@dataclass
class WorkerDeps:
    """What a worker process needs, built once per process."""

    settings: Settings
    state: State
    agent: AgentRunner
    beads: Callable[[Path], Beads] = field(default=BdCli)
    requeue: Callable[..., str] | None = None  # queues a continuation task
    notifier: Notifier | None = None  # BDP_NOTIFY: told of every outcome

    def beads_for(self, repo: Path) -> Beads:
        if self.beads is BdCli:
            return BdCli(repo, self.settings.bd)
        return self.beads(repo)


def worker_name() -> str:
    """This worker's name: pid plus thread, unique on the host."""
    return f"{os.getpid()}-{threading.current_thread().name}"


def actor_name(worker: str) -> str:
    """The bd actor a worker claims as: names bdp, the host and the worker."""
    return f"bdp/{socket.gethostname()}/{worker}"


@dataclass
class _Job:
    args: TaskArgs
    task_id: str
    deps: WorkerDeps
    beads: Beads
    actor: str
    run: Run
    issue: Issue
    transcript: Transcript
    locks: LockTable
    stop: StopSignal = field(default_factory=StopSignal)
    progress: LiveProgress = field(default_factory=LiveProgress)


def work_on(args: TaskArgs, task_id: str, deps: WorkerDeps) -> RunRecord:
    """Run one issue end to end and return how it ended (also recorded in the state)."""
    repo = Path(args.repo)
    beads = deps.beads_for(repo)
    actor = actor_name(worker_name())
    try:
        claim = beads.claim(args.issue_id, actor)
    except BdpError as error:  # unknown issue, bd missing, no workspace: nothing was claimed
        log.error("cannot claim %s in %s: %s", args.issue_id, args.repo, error)
        claim, outcome = Claim(False, str(error)), Outcome.FAILED
    else:
        outcome = Outcome.SKIPPED
    if claim.won:
        record = _run_claimed(args, task_id, deps, beads, actor, claim)
    else:
        log.info("not running %s: %s", args.issue_id, claim.reason)
        _unmark_if_ours(deps.state, args.repo, args.issue_id, task_id)
        record = _unclaimed(args, outcome, claim.reason)
    _despite_broker(f"record the outcome of {args.issue_id}", deps.state.record, record)
    if record.outcome is not Outcome.SKIPPED:  # a duplicate task finding the issue taken
        notify_outcome(deps.notifier, record)
    return record


def _run_claimed(
    args: TaskArgs, task_id: str, deps: WorkerDeps, beads: Beads, actor: str, claim: Claim
) -> RunRecord:
    issue = claim.issue if claim.issue and claim.issue.id else beads.show(args.issue_id)
    job = _start(args, task_id, deps, beads, actor, issue)
    settings = deps.settings
    lease_every = min(LEASE_RENEWAL, settings.stale_after / 2)
    watch = Watch(deps.state, beads, job.run.run_id, issue.id, actor, job.stop,
                  settings.heartbeat, settings.wrapup, lease_every, job.progress)  # fmt: skip
    try:
        with watching(watch):
            result = _run_agent(job)
            return _finish(job, result)
    finally:
        job.transcript.close()


def _start(
    args: TaskArgs, task_id: str, deps: WorkerDeps, beads: Beads, actor: str, issue: Issue
) -> _Job:
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    path = log_path(deps.settings, issue.id, run_id)
    transcript = Transcript(path, Redactor.from_env(os.environ, deps.settings))
    transcript.line(
        f"bdp: run {run_id} of {issue.id} ({issue.title}) by {actor}, attempt {args.attempt}"
    )
    run = Run(
        run_id=run_id, issue_id=issue.id, repo=args.repo, title=issue.title,
        host=socket.gethostname(), pid=os.getpid(), worker=worker_name(), attempt=args.attempt,
        started=now, deadline=now + deps.settings.timeout, heartbeat=now, log_path=str(path),
        max_cost=args.max_cost or deps.settings.max_cost_per_issue,
    )  # fmt: skip
    deps.state.register(run)
    deps.state.remember_repo(args.repo)
    marker = deps.state.marker(args.repo, args.issue_id)  # keyed as the task names the issue
    if marker is None or marker.task_id == task_id:  # never take over another task's marker
        deps.state.mark_running(args.repo, args.issue_id, task_id)
    locks = LockTable(deps.settings.home, Path(args.repo))
    return _Job(args, task_id, deps, beads, actor, run, issue, transcript, locks)


def _run_agent(job: _Job) -> SessionResult:
    repo = Path(job.args.repo)
    try:
        config = load_repo_config(repo)
    except ConfigError as error:
        return SessionResult(Outcome.FAILED, str(error))
    budget_left = _budget_left(job)
    if budget_left is not None and budget_left <= 0:
        spent = job.deps.state.issue_cost(job.args.repo, job.args.issue_id)
        return SessionResult(Outcome.OVER_BUDGET, f"its attempts have cost ${spent:.2f}, "
                             f"its budget is ${job.run.max_cost:.2f}")  # fmt: skip
    gate = partial(run_gate, repo, config.gate, job.run.run_id) if config.gate else None
    request = SessionRequest(
        run_id=job.run.run_id, issue=job.issue, repo=Path(job.args.repo),
        deadline=job.run.deadline, transcript=job.transcript, locks=job.locks,
        holder=Holder.here(job.run.run_id, job.issue.id, job.run.started), stop=job.stop,
        attempt=job.args.attempt, gate=gate, fix_rounds=config.fix_rounds,
        resume=job.args.resume, prior=job.args.prior, max_cost=budget_left,
        review_rounds=config.review_rounds if config.review else None, progress=job.progress,
    )  # fmt: skip
    try:
        _take_over(job, request)
        result = job.deps.agent.run(request)
        result.changed_files = sorted({*job.args.files, *result.changed_files})
        return result
    except KeyboardInterrupt:  # a process worker told to stop now: clean up, then exit
        _ignore_further_interrupts()
        return SessionResult(Outcome.INTERRUPTED, "the worker was stopped")
    except Exception as error:  # a bug or an environment failure must still release the issue
        log.exception("agent run of %s crashed", job.issue.id)
        return SessionResult(Outcome.FAILED, f"bdp error: {error}")


def _budget_left(job: _Job) -> float | None:
    """USD the issue may still cost (its budget less its earlier attempts), or None."""
    if job.run.max_cost is None:
        return None
    return job.run.max_cost - job.deps.state.issue_cost(job.args.repo, job.args.issue_id)


def _take_over(job: _Job, request: SessionRequest) -> None:
    """A continuation locks the files earlier sessions left uncommitted, so it can commit them."""
    if not job.args.files:
        return
    try:
        job.locks.acquire(job.args.files, request.holder, wait=job.deps.settings.lock_wait)
    except BdpError as error:  # they stay in the tree; the session can still lock them itself
        job.transcript.line(f"bdp: could not take over earlier files: {error}")


def _ignore_further_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _finish(job: _Job, result: SessionResult) -> RunRecord:
    """Commit and close, or reset; fenced so a superseded run changes nothing."""
    if not _still_owner(job):
        result.outcome = Outcome.SUPERSEDED
        result.summary = "the janitor gave this issue to another run; nothing was changed"
        job.transcript.line(f"bdp: {result.summary}")
        return _record(job, result, "")
    commit = ""
    try:
        if result.outcome is Outcome.DONE and not _held_changes(job, result):
            result.outcome = Outcome.NO_CHANGE
            result.summary = f"said DONE ({result.summary}) but changed no file"
        if result.outcome is Outcome.DONE:
            commit = _commit_and_close(job, result)
    except BdpError as error:
        result.outcome, result.summary = Outcome.FAILED, f"could not finish: {error}"
    try:
        if result.outcome is Outcome.UNFINISHED:
            _continue(job, result)
        elif result.outcome is Outcome.PAUSED:
            _pause(job, result)
        elif result.outcome is not Outcome.DONE:
            _reset(job, result)
    finally:
        _release(job)
    job.transcript.line(f"bdp: {result.outcome.value}: {result.summary}")
    return _record(job, result, commit)


def _still_owner(job: _Job) -> bool:
    """The fencing check: our run is still registered and bd still has us as the assignee.

    With the broker unreachable, bd's assignee alone decides: the issue must not stay claimed.
    """
    registered = _despite_broker("check the run registry", job.deps.state.has_run, job.run.run_id)
    if registered is False:
        return False
    try:
        issue = job.beads.show(job.issue.id)
    except BdpError:
        return True  # bd unreachable: the registry says we own it; finishing will report errors
    return issue.assignee == job.actor and issue.status == "in_progress"


def _held_changes(job: _Job, result: SessionResult) -> list[str]:
    """The run's changed files that it holds locks on and that differ from HEAD."""
    held = {lock.path for lock in job.locks.locks() if lock.holder.run_id == job.run.run_id}
    result.changed_files = [path for path in result.changed_files if path in held]
    return changed_paths(Path(job.args.repo), result.changed_files)


def _commit_and_close(job: _Job, result: SessionResult) -> str:
    """Commit the changed files this run holds locks on, then close the issue."""
    message = f"{job.issue.id}: {job.issue.title}"
    lock_dir = job.deps.settings.home / "locks"
    commit = commit_paths(Path(job.args.repo), result.changed_files, message, lock_dir) or ""
    job.beads.close(job.issue.id, result.summary, job.actor)
    return commit


def _reset(job: _Job, result: SessionResult) -> None:
    note = (
        f"bdp: {result.outcome.value} on attempt {job.args.attempt}: {result.summary}. "
        f"Cost ${result.cost_usd:.4f}, {result.turns} turns. Log: {job.run.log_path}"
    )
    if result.details:
        note += f"\n\n```\n{result.details}\n```"
    try:
        job.beads.reset(job.issue.id, job.actor)
        job.beads.comment(job.issue.id, note, job.actor)
    except BdpError as error:
        log.error("could not reset %s: %s", job.issue.id, error)


def _continue(job: _Job, result: SessionResult) -> None:
    """Queue a continuation that resumes the session (its work stays in the tree), or give up."""
    number = job.args.continuation + 1
    limit = job.deps.settings.max_continuations
    if number > limit or job.deps.requeue is None:
        result.summary += f"; still unfinished after {limit} continuations: needs a human"
        _reset(job, result)
        return
    result.summary += f"; continuing ({number} of {limit})"
    details, result.details = result.details, ""
    _reset(job, result)
    files = sorted({*job.args.files, *result.changed_files})
    job.deps.requeue(job.args.repo, job.args.issue_id, job.args.attempt, continuation=number,
                     resume=result.session_id, prior=details, files=files,
                     max_cost=job.args.max_cost)  # fmt: skip


def _pause(job: _Job, result: SessionResult) -> None:
    """Pause the whole queue and put this issue back to resume after the pause.

    It keeps its attempt and continuation numbers: a usage limit is nobody's failure.
    """
    hold = pause_queue(job.deps.state, job.deps.settings, result.summary, result.resets_at)
    result.summary = f"{result.summary}; the queue is {hold.describe()}"
    if job.deps.notifier is not None:
        reason = f"the queue is {hold.describe()}"
        job.deps.notifier.send(Event.attention(job.issue.id, job.args.repo, reason))
    try:
        job.beads.reset(job.issue.id, job.actor)
    except BdpError as error:
        log.error("could not reset %s: %s", job.issue.id, error)
    if job.deps.requeue is None:
        return
    files = sorted({*job.args.files, *result.changed_files})
    job.deps.requeue(job.args.repo, job.args.issue_id, job.args.attempt,
                     continuation=job.args.continuation, resume=result.session_id,
                     prior=result.details, files=files, max_cost=job.args.max_cost)  # fmt: skip


def _release(job: _Job) -> None:
    """Free the run's locks, its registry entry and its marker."""
    released = job.locks.release_all(job.run.run_id)
    if released:
        job.transcript.line(f"bdp: released locks {', '.join(released)}")
    _despite_broker("unregister the run", job.deps.state.pop_run, job.run.run_id)
    _despite_broker("drop the enqueue marker", _unmark_if_ours, job.deps.state, job.args.repo,
                    job.args.issue_id, job.task_id)  # fmt: skip


def _despite_broker(step: str, action: Callable[..., T], *args: object) -> T | None:
    """Run a bookkeeping step; if the broker is down, log it and go on finishing the run.

    What is left behind (a registered run, a marker) is recovered by the janitor later, while
    the bd reset and the lock release, which other agents wait for, still happen now.
    """
    try:
        return action(*args)
    except Exception as error:  # redis-py and sqlite3 errors share no base class
        log.warning("could not %s (broker unreachable?): %s", step, error)
        return None


def _record(job: _Job, result: SessionResult, commit: str) -> RunRecord:
    return RunRecord(
        run_id=job.run.run_id, issue_id=job.issue.id, repo=job.args.repo, title=job.issue.title,
        outcome=result.outcome, summary=result.summary, attempt=job.args.attempt,
        started=job.run.started, finished=time.time(), turns=result.turns,
        cost_usd=result.cost_usd, input_tokens=result.input_tokens,
        output_tokens=result.output_tokens, commit=commit, log_path=job.run.log_path,
        files=result.changed_files, review=result.review, review_cost_usd=result.review_cost_usd,
        lock_waits=job.locks.waited.waits, lock_wait_seconds=round(job.locks.waited.seconds, 3),
        lock_timeouts=job.locks.waited.timeouts,
    )  # fmt: skip


def _unclaimed(args: TaskArgs, outcome: Outcome, reason: str) -> RunRecord:
    now = time.time()
    return RunRecord(
        run_id=uuid.uuid4().hex[:12], issue_id=args.issue_id, repo=args.repo, title="",
        outcome=outcome, summary=reason, attempt=args.attempt, started=now, finished=now,
    )  # fmt: skip


def _unmark_if_ours(state: State, repo: str, issue_id: str, task_id: str) -> None:
    marker = state.marker(repo, issue_id)
    if marker is not None and marker.task_id == task_id:
        state.unmark(repo, issue_id)
