"""Closing an issue that needs no code: the agent says the change exists (ALREADY_DONE, citing
the commit) or that the issue no longer applies (OBSOLETE, with the reason).

Such a claim closes the issue only once it holds up: the quality gate passed on the tree as
it is (checked with the verdict), the session changed no file (else it is a DONE and its work
lands as usual), and a cited commit is on the target branch. Anything else resets the issue
with the reason, so a wrong claim costs a retry, never a silently closed issue.
"""

from __future__ import annotations

import re

from bdp.agent.session import SessionResult
from bdp.errors import BdpError
from bdp.models import Outcome
from bdp.repo.git import git
from bdp.run.closing import close_epics_above
from bdp.run.job import Job

#: What an agent may cite as a commit: an abbreviated or full object id.
_HEX = re.compile(r"[0-9a-fA-F]{4,40}")


def settle_claim(job: Job, result: SessionResult) -> None:
    """Close the issue of an ALREADY_DONE or OBSOLETE claim that holds; else adjust the
    outcome: DONE when the session changed files after all, FAILED when the claim fails."""
    if result.changed_files:
        said = result.outcome.value
        result.outcome = Outcome.DONE
        result.summary = f"{result.summary} (said {said}, but changed files: landing them)"
        return
    problem = _unproven(job, result)
    if problem:
        result.outcome, result.summary = Outcome.FAILED, problem
        return
    try:
        job.beads.close(job.issue.id, close_reason(result), job.actor)
    except BdpError as error:
        said = result.outcome.value
        result.outcome, result.summary = Outcome.FAILED, f"said {said} but could not close: {error}"
        return
    close_epics_above(job)


def close_reason(result: SessionResult) -> str:
    """What bd keeps as the close reason: the claim, and the commit it cites."""
    reason = f"{result.outcome.value}: {result.summary}"
    if result.outcome is Outcome.ALREADY_DONE:
        reason += f" (commit {result.cited_commit[:12]})"
    return reason


def _unproven(job: Job, result: SessionResult) -> str:
    """Why an ALREADY_DONE claim does not hold (its commit is not on the target), or ""."""
    if result.outcome is not Outcome.ALREADY_DONE:
        return ""
    commit, target = result.cited_commit, _target(job)
    if not commit:
        return f"said ALREADY_DONE ({result.summary}) but cited no commit"
    if not _HEX.fullmatch(commit):  # never handed to git as an option or a revision range
        return f"said ALREADY_DONE, citing {commit[:60]!r}, which is not a commit id"
    try:
        full = git(job.repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").strip()
        git(job.repo, "merge-base", "--is-ancestor", full, target)
    except BdpError:
        return f"said ALREADY_DONE, citing {commit}, which is not a commit on {target}"
    result.cited_commit = full
    return ""


def _target(job: Job) -> str:
    """The branch the claim is checked against: the run's target, or the shared tree's HEAD."""
    tree = job.tree
    if tree is not None and tree.worktree is not None:
        return tree.target_ref
    return "HEAD"
