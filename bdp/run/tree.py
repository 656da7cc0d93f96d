"""Where a run works: its own git worktree, or the repo's shared work tree.

In worktree isolation the run gets a new worktree on ``bdp/<issue>/<run>`` from the target
branch's tip, or, continuing earlier work, on the branch that work was left on; the repo's
setup commands run there first. The gate's configuration is read from the target branch as
committed, never from a file an agent can edit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bdp.config import DEFAULT_ISOLATION
from bdp.errors import BdpError, ConfigError
from bdp.repo.git import GitError, git, head_of
from bdp.repo.landing import fetch_tip
from bdp.repo.quality_gate import GateResult, run_gate
from bdp.repo.repo_config import RepoConfig, committed_config, load_repo_config
from bdp.repo.shared_branches import bring
from bdp.repo.worktree import (
    WorkTree,
    attach,
    branch_name,
    changes,
    create,
    next_round,
    remove,
    replay,
)
from bdp.run.job import Job, RunTree


class SetupFailed(BdpError):
    """A setup command of the repo failed in the run's new worktree."""

    def __init__(self, gate: GateResult) -> None:
        super().__init__(f"setup command failed: {gate.command}", "fix the repo's setup")
        self.output = gate.output


def isolation_of(job: Job, config: RepoConfig) -> str:
    """The task's choice, else BDP_ISOLATION, else the repo's, else `DEFAULT_ISOLATION`."""
    settings = job.deps.settings
    return job.args.isolation or settings.isolation or config.isolation or DEFAULT_ISOLATION


def prepare(job: Job) -> RunTree:
    """The tree the run works in; ConfigError, SetupFailed or GitError when there is none.

    The config read at HEAD says where the run works; in a worktree, the one committed at
    the target's tip applies (read again only when that is another commit).
    """
    config, head = committed_config(job.repo)
    if isolation_of(job, config) == "shared":
        return RunTree(job.repo, config)
    target, target_tip, remote = _target(job, config)
    if target_tip != head:
        config = load_repo_config(job.repo, target_tip)
    if job.args.branch and not bring(job.repo, remote, job.args.branch, _lock_dir(job)):
        _start_afresh(job)
    worktree = _worktree_for(job, target_tip)
    job.transcript.line(f"bdp: working in {worktree.path} on {worktree.branch} (lands on {target})")
    try:
        made = _set_up(worktree, config, job.run.run_id)
        conflicts = replay(worktree, job.args.branch) if job.args.land_round else ()
    except BaseException:
        keep = worktree.branch == job.args.branch
        remove(worktree, keep_branch=keep, lock_dir=_lock_dir(job))
        raise
    return RunTree(worktree.path, config, worktree, target, made, conflicts, remote)


def _start_afresh(job: Job) -> None:
    """The earlier sessions' branch is on neither this clone nor the remote: their work stays
    on the machine that kept it. Work from the target's tip, in a new session told what they
    did (resuming one whose files are missing would mislead it)."""
    job.transcript.line(
        f"bdp: the earlier work on {job.args.branch} is not on this machine or the remote; "
        "starting afresh from the target branch"
    )
    job.args = replace(job.args, branch="", resume="", resume_cost=0.0, land_round=0)


def _lock_dir(job: Job) -> Path:
    return job.deps.settings.home / "locks"


def _set_up(worktree: WorkTree, config: RepoConfig, run_id: str) -> tuple[str, ...]:
    """Run the repo's setup in the new worktree; the paths it made (left out of commits)."""
    if not config.setup:
        return ()
    done = run_gate(worktree.path, config.setup, run_id)
    if not done.passed:
        raise SetupFailed(done)
    return tuple(changes(worktree))


def _target(job: Job, config: RepoConfig) -> tuple[str, str, str | None]:
    """The branch the run lands on, its tip, and the remote it lands through (if any).

    The checked-out branch and its tip come from one git call; another target (or a remote
    one) is looked up on its own.
    """
    remote = job.deps.settings.remote or config.land.remote
    head = head_of(job.repo)
    target = config.land.branch or head.branch
    if target is None:
        raise ConfigError(
            f"{job.repo} has no branch checked out, so bdp does not know where to land work",
            'check out the target branch, or set land = { branch = "main" } in .bdp.toml',
        )
    if remote is None and target == head.branch:
        return target, head.commit, None
    return target, _target_tip(job, remote, target), remote


def _target_tip(job: Job, remote: str | None, target: str) -> str:
    repo = job.repo
    try:
        return fetch_tip(repo, remote, target, _lock_dir(job))
    except GitError as error:
        if remote is not None:
            raise
        raise ConfigError(
            f"the target branch {target!r} does not exist in {repo}",
            "create it, or set land.branch in .bdp.toml",
        ) from error


def _worktree_for(job: Job, target_tip: str) -> WorkTree:
    """A new worktree from the target's tip, or on the branch earlier work was left on."""
    home, repo = job.deps.settings.home, job.repo
    if job.args.land_round:  # the work goes on a new branch at the tip, replayed after setup
        return create(repo, home, next_round(job.args.branch, job.args.land_round), target_tip)
    if job.args.branch:
        return _resume_on(job, target_tip)
    return create(repo, home, branch_name(job.issue.id, job.run.run_id), target_tip)


def _resume_on(job: Job, target_tip: str) -> WorkTree:
    """A worktree on the branch an earlier session of this issue left its work on."""
    repo, branch = job.repo, job.args.branch
    base = git(repo, "merge-base", target_tip, f"refs/heads/{branch}").strip()
    return attach(repo, job.deps.settings.home, branch, base)
