"""One task inside a worker: claim the issue, start the run, run the agent, finish.

Safe to run twice: the bd claim is a compare-and-set, so a duplicate task finds the issue
taken (or closed) and ends as SKIPPED without touching anything. How the run ends (commit
and close, or reset) is `bdp.run.finish`; what watches it meanwhile, `bdp.run.watchdog`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from bdp.agent.prompt import landing_message
from bdp.agent.session import SessionRequest, SessionResult
from bdp.broker.claims import Fence, Refused
from bdp.broker.state import taker
from bdp.errors import BdpError, BeadsError, RepoError, UnknownIssue, is_broker_error
from bdp.host import host_name
from bdp.models import Outcome, RunRecord, TaskArgs, remaining_budget
from bdp.ops.notify import notify_outcome
from bdp.repo.beads import Beads, Claim, FollowUp
from bdp.repo.epics import is_epic
from bdp.repo.gate_sandbox import GateSandbox
from bdp.repo.lock_records import Holder
from bdp.repo.quality_gate import run_gate
from bdp.repo.worktree import refresh
from bdp.run.bookkeeping import despite_broker, unmark_if_ours
from bdp.run.deps import RunDeps, actor_name, worker_name
from bdp.run.epic_task import epic_review_brief
from bdp.run.finish import finish
from bdp.run.job import Claimed, Job, RunTree, start_job
from bdp.run.shared import snapshot
from bdp.run.steering import InboxReader
from bdp.run.tree import SetupFailed, prepare
from bdp.run.watchdog import Pace, Watchdog

log = logging.getLogger(__name__)


def work_on(args: TaskArgs, task_id: str, deps: RunDeps) -> RunRecord:
    """Run one issue end to end and return how it ended (also recorded in the state)."""
    beads = deps.beads_for(deps.clone(args.repo))
    actor = actor_name(worker_name())
    take = (args.repo, args.issue_id, task_id)
    despite_broker("note the task as taken", lambda: deps.state.mark_taken(*take, _me()))
    asked_at = time.monotonic()
    fence, claim, outcome, retry_later = _claim(deps, beads, args, f"{_me()}/{task_id}", actor)
    try:
        if claim.won:
            issue = claim.issue if claim.issue and claim.issue.id else beads.show(args.issue_id)
            claimed = Claimed(args, task_id, actor, issue, asked_at=asked_at)
            if is_epic(issue):  # its review, or nothing: it has no work of its own
                claimed, claim = _epic_task(claimed, beads, deps.clone(args.repo))
            if claim.won:
                record = _run_claimed(claimed, deps, beads, fence)
    finally:
        if fence is not None:
            despite_broker(f"release the lease on {args.issue_id}", fence.release)
    if not claim.won:
        log.info("not running %s: %s", args.issue_id, claim.reason)
        if retry_later:  # the marker stays, and the janitor queues the issue again
            despite_broker("give the task back", lambda: deps.state.release_taken(*take))
        else:
            unmark_if_ours(deps.state, args.repo, args.issue_id, task_id)
        record = RunRecord.unclaimed(args, outcome, claim.reason)
    despite_broker(f"record the outcome of {args.issue_id}", lambda: deps.state.record(record))
    notify_outcome(deps.notifier, record)
    return record


def _claim(
    deps: RunDeps, beads: Beads, args: TaskArgs, owner: str, actor: str
) -> tuple[Fence | None, Claim, Outcome, bool]:
    """The issue's lease (across machines), then its bd claim: the fence, the claim, the
    outcome if it was not won, and whether to give the task back for a later try."""
    try:
        lease = deps.claims.take(args.repo, args.issue_id, owner)
    except Exception as error:  # the broker is away: nobody can say who works the issue
        if not is_broker_error(error):
            raise
        return None, Claim(False, f"cannot take its lease: {error}"), Outcome.SKIPPED, True
    if isinstance(lease, Refused):  # landed already, or another machine's run has it
        return None, Claim(False, lease.reason), Outcome.SKIPPED, not lease.landed
    fence = Fence(deps.claims, lease)
    try:
        return fence, beads.claim(args.issue_id, actor), Outcome.SKIPPED, False
    except BdpError as error:  # unknown issue, bd missing, no workspace: nothing was claimed
        log.error("cannot claim %s in %s: %s", args.issue_id, args.repo, error)
        return fence, Claim(False, str(error)), Outcome.FAILED, _transient(error)


def _me() -> str:
    return taker(host_name(), os.getpid())


def _epic_task(claimed: Claimed, beads: Beads, repo: Path) -> tuple[Claimed, Claim]:
    """A claimed epic: reviewed when finished and the repo asks for reviews; else given back
    (it has no work for an agent: its children do, and bdp closes it after them)."""
    issue = claimed.issue
    try:
        brief, why_not = epic_review_brief(repo, beads, issue)
    except BdpError as error:
        brief, why_not = None, f"an epic, not reviewed: {error}"
    if brief is not None:
        return replace(claimed, epic=brief), Claim(True, issue=issue)
    try:
        beads.reset(issue.id, claimed.actor)
    except BdpError as error:  # left claimed: the janitor resets claims no run holds
        log.error("could not give back epic %s: %s", issue.id, error)
    return claimed, Claim(False, why_not)


def _transient(error: BdpError) -> bool:
    """bd failed in a way that may pass (a timeout, a locked database), not for want of the
    issue, of bd or of a workspace."""
    return isinstance(error, BeadsError) and not isinstance(error, UnknownIssue | RepoError)


def _run_claimed(claimed: Claimed, deps: RunDeps, beads: Beads, fence: Fence | None) -> RunRecord:
    job = start_job(claimed, deps, beads, fence)
    pace = Pace.from_settings(deps.settings)
    inbox = InboxReader(deps.state, job.run.run_id, job.stop, job.steering, job.transcript)
    watchdog = Watchdog(deps.state, beads, job.run, job.actor, job.stop, pace, job.progress, inbox)
    watchdog.fence = fence
    try:
        with watchdog.running():
            return finish(job, _run_agent(job))
    finally:
        job.transcript.close()


def _run_agent(job: Job) -> SessionResult:
    """The session's result, whatever happens: a crash or a stop still ends with an outcome."""
    budget_left = _budget_left(job)
    if budget_left is not None and budget_left <= 0:
        spent = job.deps.state.issue_cost(job.args.repo, job.args.issue_id)
        budget = f"its budget is ${job.run.max_cost:.2f}"
        return SessionResult(Outcome.OVER_BUDGET, f"its attempts have cost ${spent:.2f}, {budget}")
    try:
        job.tree = prepare(job)
    except SetupFailed as error:
        return SessionResult(Outcome.FAILED, str(error), details=error.output)
    except BdpError as error:  # the repo's configuration, or git refusing the worktree
        return SessionResult(Outcome.FAILED, str(error))
    job.locks = job.deps.lock_table(job.args.repo, job.tree.path, job.fence)
    if job.tree.worktree is None:
        snapshot(job)
    request = _session_request(job, job.tree, budget_left)
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


def _budget_left(job: Job) -> float | None:
    """USD the issue may still cost (its budget less its earlier attempts), or None."""
    if job.run.max_cost is None:
        return None  # no budget, no look at the broker
    spent = job.deps.state.issue_cost(job.args.repo, job.args.issue_id)
    return remaining_budget(job.run.max_cost, spent)


def _session_request(job: Job, tree: RunTree, budget_left: float | None) -> SessionRequest:
    """What the agent is asked to do: the issue, where, until when, and the repo's checks."""
    run, config, args = job.run, tree.config, job.args
    sandbox = GateSandbox.for_run(job.deps.settings, job.repo)
    checked = config.gate and job.epic is None  # an epic's reviewer changes nothing to check
    gate = partial(run_gate, tree.path, config.gate, run.run_id, sandbox) if checked else None
    landing = landing_message(args.prior, tree.conflicts) if args.land_round else ""
    return SessionRequest(
        run_id=run.run_id,
        issue=job.issue,
        repo=tree.path,
        deadline=run.deadline,
        transcript=job.transcript,
        locks=job.locks,
        holder=Holder.here(run.run_id, job.issue.id, run.started),
        stop=job.stop,
        attempt=args.attempt,
        gate=gate,
        fix_rounds=config.fix_rounds,
        resume=args.resume,
        resume_cost=args.resume_cost,
        prior="" if landing else args.prior,
        landing=landing,
        max_cost=budget_left,
        review_rounds=config.review_rounds if config.review else None,
        progress=job.progress,
        steering=job.steering,
        shared_tree=tree.worktree is None,
        file_issue=partial(_file_follow_up, job),
        freshen=partial(_freshen, job) if tree.worktree else None,
        epic=job.epic,
        session_store=job.deps.sessions,
    )


def _freshen(job: Job, paths: list[str]) -> list[str]:
    """Move the run onto the target's newest commit when newly locked files changed there."""
    tree = job.tree
    if tree is None or tree.worktree is None:
        return []
    worktree, fresh = refresh(tree.worktree, tree.target_ref, paths)
    if fresh:
        job.tree = replace(tree, worktree=worktree)
        job.transcript.line(
            f"bdp: {', '.join(fresh)} changed on {tree.target}; "
            f"moved the run onto its newest commit {worktree.base[:12]}"
        )
    return fresh


def _file_follow_up(job: Job, follow_up: FollowUp) -> str:
    new_id = job.beads.file(follow_up, job.actor)
    job.transcript.line(f"bdp: filed {new_id} ({follow_up.title}), found in {job.issue.id}")
    return new_id


def _take_over(job: Job, request: SessionRequest) -> None:
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
