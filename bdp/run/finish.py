"""How a run ends: commit and close, or reset (continue, pause), then free what it held.

Every finishing step is fenced: a run that the janitor has reset in the meantime (it
stalled, then woke up) ends as SUPERSEDED without committing, closing or commenting; it still
frees what is its own (its locks, its registry entry, its marker), never another run's.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bdp.agent.session import SessionResult
from bdp.broker.hold import pause_queue
from bdp.errors import BdpError
from bdp.host import host_name
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.ops.notify import Event
from bdp.run.bookkeeping import despite_broker, unmark_if_ours
from bdp.run.closing import close_reviewed_epic
from bdp.run.follow_ups import file_follow_ups
from bdp.run.job import Job
from bdp.run.landing import land_worktree, put_away
from bdp.run.no_code import settle_claim
from bdp.run.shared import commit_shared

log = logging.getLogger(__name__)


def finish(job: Job, result: SessionResult) -> RunRecord:
    """Commit and close, or reset; fenced so a superseded run changes nothing in bd.

    Whatever happens on the way (an error of bdp's own included), the run's locks, its
    registry entry and its marker are freed, and it ends with a record.
    """
    commit = ""
    try:
        if not _still_owner(job):
            result.outcome = Outcome.SUPERSEDED
            result.summary = "the janitor gave this issue to another run; nothing was changed"
            job.transcript.line(f"bdp: {result.summary}")
            put_away(job, share=False)  # the run that has the issue now goes on from its own
            return _record(job, result, "")
        despite_broker("file follow-ups", lambda: file_follow_ups(job, result))
        commit = _land_safely(job, result)
        put_away(job)
        _hand_back(job, result)
    finally:
        _release(job)
    job.transcript.line(f"bdp: {result.outcome.value}: {result.summary}")
    return _record(job, result, commit)


def _hand_back(job: Job, result: SessionResult) -> None:
    """What an issue that did not close needs: another round, a continuation, or a reset."""
    if job.land_again:
        _land_again(job, result)
    elif result.outcome is Outcome.UNFINISHED:
        _continue(job, result)
    elif result.outcome is Outcome.PAUSED:
        _pause(job, result)
    elif result.outcome is Outcome.INTERRUPTED and job.stop.requeue:
        _requeue_stopped(job, result)
    elif result.outcome.resets_issue:
        _reset(job, result)


def _land_safely(job: Job, result: SessionResult) -> str:
    """`_land`, with a bug or an OS error of bdp's own ending the run FAILED (and reset),
    unless the work had landed already: that run is DONE, never reset."""
    try:
        return _land(job, result)
    except Exception as error:
        log.exception("finishing %s failed", job.issue.id)
        if not job.landed:
            result.outcome, result.summary = Outcome.FAILED, f"bdp error while finishing: {error}"
        return ""


def _land(job: Job, result: SessionResult) -> str:
    """Commit a DONE run's work and close its issue; the commit, or "" (outcome adjusted).
    A claim that no code is needed closes the issue without one, when it holds; so does an
    epic's approving review."""
    if job.epic is not None:
        close_reviewed_epic(job, result)
        return ""
    if result.outcome.needs_no_code:
        settle_claim(job, result)
        if result.outcome is not Outcome.DONE:
            return ""
    if job.tree is not None and job.tree.worktree is not None:
        return land_worktree(job, result) if result.outcome is Outcome.DONE else ""
    return commit_shared(job, result)


def _still_owner(job: Job) -> bool:
    """The fencing check: our run is still registered, and the claim it won still stands.

    The janitor takes an issue from a registered run only by unregistering the run first, so
    the registry answers without bd; bd's assignee decides only when the claim is in doubt
    (the run registered late, `bdp.run.job.start_job`) or the broker is unreachable. A change
    made in bd by hand meanwhile is not seen: `bdp stop` is how a person takes a run back.
    """
    state, run_id, fence = job.deps.state, job.run.run_id, job.fence
    registered = despite_broker("check the run registry", lambda: state.has_run(run_id))
    if registered is False:
        return False
    if fence is not None and despite_broker("check the run's lease", fence.holds) is False:
        return False  # another machine's run took the issue once the lease lapsed
    if registered and not job.claim_in_doubt:
        return True
    try:
        issue = job.beads.show(job.issue.id)
    except BdpError:
        return True  # bd unreachable: the registry says we own it; finishing will report errors
    return issue.assignee == job.actor and issue.status == "in_progress"


def _reset(job: Job, result: SessionResult) -> None:
    """Put the issue back to open, with a comment saying what happened and where the log is."""
    note = (
        f"bdp: {result.outcome.value} on attempt {job.args.attempt}: {result.summary}. "
        f"Cost ${result.cost_usd:.4f}, {result.turns} turns. Log: {job.run.log_path}"
    )
    if job.kept_branch:
        note += f" The work is kept on branch {job.kept_branch}."
    note += _wait_for_blocker(job, result)
    if result.details:
        note += f"\n\n```\n{result.details}\n```"
    try:
        job.beads.reset(job.issue.id, job.actor)
        job.beads.comment(job.issue.id, note, job.actor)
    except BdpError as error:
        log.error("could not reset %s: %s", job.issue.id, error)


def _wait_for_blocker(job: Job, result: SessionResult) -> str:
    """A deadlock victim waits for the issue holding its lock: a bd dependency, made before
    the reset, so `bd ready` offers it again only once that one has closed. The note's end."""
    blocker = result.waits_for
    if not blocker or blocker == job.issue.id:
        return ""
    try:
        job.beads.add_dependency(job.issue.id, blocker, job.actor)
    except BdpError as error:
        log.warning("could not make %s wait for %s: %s", job.issue.id, blocker, error)
        return f" It should wait for {blocker}, but bd refused the dependency: {error}."
    return f" It now depends on {blocker}: bd ready offers it again once {blocker} is closed."


def _requeue_stopped(job: Job, result: SessionResult) -> None:
    """`bdp stop --requeue`: reset the issue, then queue its next attempt afresh, as the
    janitor does for a dead run (the stopped session is not resumed: a person stopped it)."""
    if job.deps.requeue is None:
        _reset(job, result)
        return
    args = job.args
    again = TaskArgs(
        args.repo, args.issue_id, args.attempt + 1, max_cost=args.max_cost, isolation=args.isolation
    )
    result.summary += f"; queued again as attempt {again.attempt}"
    _reset(job, result)
    job.deps.requeue(again)


def _continue(job: Job, result: SessionResult) -> None:
    """Queue a continuation that resumes the session (its work stays in the tree, or on its
    branch), or give up."""
    number = job.args.continuation + 1
    limit = job.deps.settings.max_continuations
    requeue = job.deps.requeue
    if number > limit or requeue is None:
        result.summary += f"; still unfinished after {limit} continuations: needs a human"
        _reset(job, result)
        return
    result.summary += f"; continuing ({number} of {limit})"
    details, result.details = result.details, ""
    _reset(job, result)
    files = _left_uncommitted(job, result)
    again = replace(job.args, continuation=number, prior=details, files=files)
    requeue(_resuming(replace(again, branch=job.kept_branch), result))


def _land_again(job: Job, result: SessionResult) -> None:
    """Send work that did not land back to its session, at the target's new tip, or give up.

    The next round replays the kept branch onto the tip (conflicts marked in the files) and
    resumes the session with why it did not land; the continuation count is not touched.
    """
    number = job.args.land_round + 1
    limit = job.tree.config.land.rounds if job.tree is not None else 0
    if number > limit or job.deps.requeue is None or not job.kept_branch:
        result.outcome = Outcome.FAILED
        result.summary += f"; not landed after {limit} landing rounds: needs a human"
        _reset(job, result)
        return
    feedback = "\n\n".join(part for part in (result.summary, result.details) if part)
    result.summary += f"; sent back to the agent at the new tip (round {number} of {limit})"
    result.details = ""
    _reset(job, result)
    job.deps.requeue(
        replace(
            _resuming(job.args, result),
            land_round=number,
            prior=feedback,
            files=(),
            branch=job.kept_branch,
        )
    )


def _pause(job: Job, result: SessionResult) -> None:
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
    files = _left_uncommitted(job, result)
    again = replace(
        _resuming(job.args, result),
        prior=result.details,
        files=files,
        branch=job.kept_branch,
    )
    job.deps.requeue(again)


def _resuming(args: TaskArgs, result: SessionResult) -> TaskArgs:
    """``args`` for a task that resumes the result's session: its id, and what it has cost so
    far, which the CLI counts in again (and which this run's record already holds). The
    session's transcript and the run's branch are on this machine: the task prefers it."""
    cost = result.session_cost_usd
    return replace(args, resume=result.session_id, resume_cost=cost, host=host_name())


def _left_uncommitted(job: Job, result: SessionResult) -> tuple[str, ...]:
    """Shared isolation: the files earlier sessions left in the tree (a worktree's are on its
    branch instead)."""
    if job.kept_branch:
        return ()
    return tuple(sorted({*job.args.files, *result.changed_files}))


def _release(job: Job) -> None:
    """Free the run's locks, its registry entry and its marker."""
    released = job.locks.release_all(job.run.run_id)
    if released:
        job.transcript.line(f"bdp: released locks {', '.join(released)}")
    state, args = job.deps.state, job.args
    despite_broker("unregister the run", lambda: state.unregister(job.run.run_id))
    despite_broker(
        "drop the enqueue marker",
        lambda: unmark_if_ours(state, args.repo, args.issue_id, job.task_id),
    )


def _record(job: Job, result: SessionResult, commit: str) -> RunRecord:
    """How the run ended, with what its sessions used: the one place a run's record is made."""
    waited = job.locks.waited
    return replace(
        RunRecord.ended(job.run, result.outcome, result.summary),
        turns=result.turns,
        cost_usd=result.cost_usd,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        commit=commit,
        files=result.changed_files,
        review=result.review,
        review_cost_usd=result.review_cost_usd,
        lock_waits=waited.waits,
        lock_wait_seconds=round(waited.seconds, 3),
        lock_timeouts=waited.timeouts,
        landed=job.landed,
        verdict=result.verdict,
    )
