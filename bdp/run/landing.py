"""Worktree isolation's end of a run: commit the tree, land it, close the issue; then put the
worktree away, keeping the branch of work that did not land.

"Closed" means landed: bd close runs only once the run's commit is on the target branch.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path

from bdp.agent.session import SessionResult
from bdp.broker.claims import RedisClaims
from bdp.errors import BdpError
from bdp.host import host_name
from bdp.models import Activity, Outcome
from bdp.repo.gate_sandbox import GateSandbox
from bdp.repo.git import CommitMessage, GitError, git
from bdp.repo.landing import LEASE_LOST, Lander, Landing
from bdp.repo.quality_gate import GateResult, run_gate
from bdp.repo.shared_branches import share, unshare
from bdp.repo.worktree import Squashed, WorkTree, commit_all, delete_branch, marked, remove
from bdp.run.closing import close_landed, note_landing
from bdp.run.job import Job, RunTree
from bdp.run.land_turn import landing_turn

log = logging.getLogger(__name__)

#: Seconds between landing attempts while a person's edit in the main tree is in the way.
LAND_RECHECK = 2.0


def land_worktree(job: Job, result: SessionResult) -> str:
    """Commit, land and close a DONE run; the landed commit, or "" (the outcome adjusted)."""
    tree = _tree(job)
    worktree = _worktree(tree)
    message = CommitMessage.for_run(job.issue.id, job.issue.title, job.run.run_id)
    pending = note_landing(job, tree.target_ref)
    try:
        landing = _commit_and_land(job, result, worktree, message)
    except BdpError as error:
        result.outcome, result.summary = Outcome.FAILED, f"could not finish: {error}"
        landing = None
    if landing is None or not landing.landed:
        pending.drop(job.deps.settings.home)
        return ""
    job.landed = True
    job.transcript.line(f"bdp: landed {landing.commit[:12]} on {tree.target}")
    close_landed(job, result, landing.commit, pending)
    return landing.commit


def _commit_and_land(
    job: Job, result: SessionResult, worktree: WorkTree, message: CommitMessage
) -> Landing | None:
    """The landing of the tree's work as one commit; None when there is nothing to land."""
    tree = _tree(job)
    if _conflicts_left(job, result, worktree):
        return None
    squashed = commit_all(worktree, message, tree.setup_made)
    if squashed is None:
        result.outcome = Outcome.NO_CHANGE
        result.summary = f"said DONE ({result.summary}) but changed no file"
        return None
    result.changed_files = list(squashed.files)
    landing = _land_when_the_tree_allows(job, result, _lander(job, tree), squashed)
    if not landing.landed:
        _not_landed(job, result, landing)
    return landing


def _land_when_the_tree_allows(
    job: Job, result: SessionResult, lander: Lander, squashed: Squashed
) -> Landing:
    """Land; while a person's uncommitted edit in the main tree is in the way, wait (saying so
    in `bdp status`) and try again, up to BDP_LAND_WAIT seconds."""
    deadline = time.monotonic() + job.deps.settings.land_wait
    worktree = _worktree(_tree(job))
    landing = lander.land(worktree, passed_on=worktree.base, squashed=squashed)
    if landing.tree_busy and job.deps.settings.land_wait > 0:
        _say_waiting(job, result, lander.branch)
    while landing.tree_busy and time.monotonic() < deadline:
        if job.stop.wait(LAND_RECHECK):
            break
        landing = lander.land(worktree, passed_on=landing.onto)
    return landing


def _say_waiting(job: Job, result: SessionResult, branch: str) -> None:
    waiting = f"landing: waiting for uncommitted changes in {job.repo} ({branch}) to be committed"
    if job.progress is not None:
        activity = Activity(waiting, result.turns, result.input_tokens, result.output_tokens)
        activity.cost_usd, activity.updated = result.cost_usd, time.time()
        job.progress.publish(activity)
    job.transcript.line(f"bdp: {waiting}")


def _lander(job: Job, tree: RunTree) -> Lander:
    gate_commands, run_id = tree.config.gate, job.run.run_id
    sandbox = GateSandbox.for_run(job.deps.settings, job.repo)

    def gate(path: Path) -> GateResult:
        return run_gate(path, gate_commands, run_id, sandbox)

    lock_dir = job.deps.settings.home / "locks"
    gate_or_none = gate if gate_commands else None
    still_ours = job.fence.holds if job.fence is not None else None
    lander = Lander(
        job.repo, tree.target, lock_dir, gate_or_none, remote=tree.remote, still_ours=still_ours
    )
    claims = job.deps.claims
    if tree.remote and isinstance(claims, RedisClaims):  # landers on other machines push too
        owner = f"{host_name()}:{os.getpid()}/{job.run.run_id}"
        lander.turn = partial(landing_turn, claims, job.args.repo, tree.target, owner)
    return lander


def _conflicts_left(job: Job, result: SessionResult, worktree: WorkTree) -> bool:
    """A landing round said DONE with conflict markers still in its files: back it goes."""
    left = marked(worktree, _tree(job).conflicts)
    if left:
        result.outcome, job.land_again = Outcome.UNFINISHED, True
        result.summary = f"said DONE with conflict markers left in {', '.join(left)}"
        job.transcript.line(f"bdp: {result.summary}")
    return bool(left)


def _not_landed(job: Job, result: SessionResult, landing: Landing) -> None:
    """A conflict or a gate failing on the new tip goes back to the agent; anything else fails."""
    fixable = bool(landing.conflicts) or landing.gate is not None
    result.outcome = Outcome.UNFINISHED if fixable else Outcome.FAILED
    if landing.reason == LEASE_LOST:  # another run has the issue now: leave bd to it
        result.outcome = Outcome.SUPERSEDED
    job.land_again = fixable
    result.summary = f"could not land on {_tree(job).target}: {landing.reason}"
    if landing.conflicts:
        result.summary += f" ({', '.join(landing.conflicts)})"
    result.details = landing.details
    job.transcript.line(f"bdp: {result.summary}")


def put_away(job: Job, share: bool = True) -> None:
    """Remove the run's worktree; keep its branch when it holds work that did not land (and,
    with ``share``, push it to the shared remote for whichever machine goes on with it)."""
    tree = job.tree
    if tree is None or tree.worktree is None:
        return
    worktree = tree.worktree
    keep = not job.landed and _has_work(job, worktree)
    lock_dir = job.deps.settings.home / "locks"
    try:
        remove(worktree, keep_branch=keep, lock_dir=lock_dir)
        if job.landed and job.args.branch not in ("", worktree.branch):
            delete_branch(job.repo, job.args.branch, lock_dir)  # what this round landed
    except GitError as error:  # the janitor prunes what is left
        log.warning("could not remove the worktree %s: %s", worktree.path, error)
    job.kept_branch = worktree.branch if keep else ""
    if share:
        _share_or_unshare(job, tree)


def _share_or_unshare(job: Job, tree: RunTree) -> None:
    """Landing through a remote: push a kept branch there (a continuation may go on on any
    machine); once the work landed, drop the copy an earlier session pushed."""
    remote, lock_dir = tree.remote, job.deps.settings.home / "locks"
    if remote is None:
        return
    if job.kept_branch:
        try:
            share(job.repo, remote, job.kept_branch, lock_dir)
        except GitError as error:  # the continuation goes on here, or afresh elsewhere
            log.warning("could not push %s to %s: %s", job.kept_branch, remote, error)
        return
    if job.landed and job.args.branch:
        unshare(job.repo, remote, job.args.branch, lock_dir)


def _has_work(job: Job, worktree: WorkTree) -> bool:
    """Commit what the run left uncommitted onto its branch; True when the branch has work."""
    message = CommitMessage(f"{job.issue.id}: work in progress (run {job.run.run_id})")
    try:
        _commit_left_over(worktree, message, _tree(job).setup_made)
        ahead = git(worktree.path, "rev-list", "--count", f"{worktree.base}..HEAD").strip()
    except (GitError, OSError) as error:  # OSError: the janitor retired the tree meanwhile
        log.warning("could not save the work of %s: %s", worktree.branch, error)
        return True  # keep the branch rather than lose what may be on it
    return int(ahead or 0) > 0


def _commit_left_over(worktree: WorkTree, message: CommitMessage, skip: tuple[str, ...]) -> None:
    status = git(worktree.path, "status", "--porcelain", "--untracked-files=all")
    if status.strip():
        commit_all(worktree, message, skip)


def _tree(job: Job) -> RunTree:
    if job.tree is None:
        raise RuntimeError("a worktree landing without a prepared tree")
    return job.tree


def _worktree(tree: RunTree) -> WorkTree:
    if tree.worktree is None:
        raise RuntimeError("a worktree landing in shared isolation")
    return tree.worktree
