"""One claimed issue inside a worker: its Run registered, its transcript open, its locks.

Starting a job is where a claimed issue becomes visible to everyone sharing the broker: the
run registry (with its heartbeat) and the enqueue marker, now "running".
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from bdp.agent.session import LiveProgress, Steering, StopSignal
from bdp.agent.transcript import Transcript, log_path
from bdp.broker.claims import Fence
from bdp.host import host_name
from bdp.models import Issue, Run, TaskArgs
from bdp.redact import Redactor
from bdp.repo import known_repos
from bdp.repo.beads import Beads
from bdp.repo.epic_work import EpicBrief
from bdp.repo.lock_table import Locks
from bdp.repo.repo_config import RepoConfig
from bdp.repo.tree_state import TreeState
from bdp.repo.worktree import WorkTree
from bdp.run.deps import RunDeps, worker_name


@dataclass(frozen=True)
class RunTree:
    """The run's tree, the configuration that applies to it, and what setup made there."""

    path: Path
    config: RepoConfig
    worktree: WorkTree | None = None  # None: shared isolation, the repo itself
    target: str = ""  # the branch the run lands on (worktree isolation)
    setup_made: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # a landing round: paths its replayed work conflicts in
    remote: str | None = None  # land by pushing to this remote

    @property
    def target_ref(self) -> str:
        """The ref holding the target branch's newest known commit."""
        if self.remote:
            return f"refs/remotes/{self.remote}/{self.target}"
        return f"refs/heads/{self.target}"


@dataclass
class Job:
    """Everything one run of one issue holds while it works."""

    args: TaskArgs
    task_id: str
    deps: RunDeps
    beads: Beads
    actor: str
    run: Run
    issue: Issue
    transcript: Transcript
    locks: Locks
    stop: StopSignal = field(default_factory=StopSignal)
    progress: LiveProgress = field(default_factory=LiveProgress)
    steering: Steering = field(default_factory=Steering)  # `bdp say` messages for the session
    tree: RunTree | None = None  # where the session works, once prepared
    landed: bool = False  # its commit is on the target branch
    kept_branch: str = ""  # the branch holding work that did not land
    land_again: bool = False  # its work did not land, for a reason the agent can fix
    before: TreeState | None = None  # shared isolation: the tree before the session
    before_at: float = 0.0  # when that was noted
    epic: EpicBrief | None = None  # an epic's task: what its reviewer is given
    claim_in_doubt: bool = False  # registered so late the janitor may have reset the claim
    fence: Fence | None = None  # its lease on the issue (machines sharing a Redis)

    @property
    def repo(self) -> Path:
        """This machine's clone of the run's repo."""
        return self.deps.clone(self.args.repo)


@dataclass(frozen=True)
class Claimed:
    """A claim just won: by whom, on which issue, for which task."""

    args: TaskArgs
    task_id: str
    actor: str
    issue: Issue
    epic: EpicBrief | None = None  # a finished epic to review, with its children's work
    asked_at: float = field(default_factory=time.monotonic)  # when the claim was asked for


def start_job(claimed: Claimed, deps: RunDeps, beads: Beads, fence: Fence | None = None) -> Job:
    """Open the run's transcript and register it, its repo and its running marker.

    A claim is the run's own until the run finishes, unless the janitor takes it: from a
    registered run only by unregistering it first, and from an unregistered one only once the
    claim is `stale_after` old. A run that registers within half of that keeps its claim
    without asking bd again; a later one is in doubt, and asks bd before it finishes.
    """
    args, issue = claimed.args, _with_parent(claimed.issue, claimed.args)
    run = _new_run(args, issue, deps)
    transcript = Transcript(Path(run.log_path), Redactor.from_env(os.environ, deps.settings))
    transcript.line(
        f"bdp: run {run.run_id} of {issue.id} ({issue.title}) by {claimed.actor}, "
        f"attempt {args.attempt}"
    )
    deps.state.register(run)
    in_doubt = time.monotonic() - claimed.asked_at >= deps.settings.stale_after / 2
    deps.state.remember_repo(args.repo)
    known_repos.remember(deps.settings.home, str(deps.clone(args.repo)))
    marker = deps.state.marker(args.repo, args.issue_id)  # keyed as the task names the issue
    if marker is None or marker.task_id == claimed.task_id:  # never take over another's marker
        deps.state.mark_running(args.repo, args.issue_id, claimed.task_id)
    locks = deps.lock_table(args.repo, None, fence)
    job = Job(args, claimed.task_id, deps, beads, claimed.actor, run, issue, transcript, locks)
    job.fence = fence
    job.epic, job.claim_in_doubt = claimed.epic, in_doubt
    return job


def _with_parent(issue: Issue, args: TaskArgs) -> Issue:
    """The claimed issue with the parent enqueue saw (a claim's answer names none)."""
    return issue if issue.parent or not args.parent else replace(issue, parent=args.parent)


def _new_run(args: TaskArgs, issue: Issue, deps: RunDeps) -> Run:
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    return Run(
        run_id=run_id,
        issue_id=issue.id,
        repo=args.repo,
        title=issue.title,
        host=host_name(),
        pid=os.getpid(),
        worker=worker_name(),
        attempt=args.attempt,
        started=now,
        deadline=now + deps.settings.timeout,
        heartbeat=now,
        log_path=str(log_path(deps.settings, issue.id, run_id)),
        max_cost=args.max_cost or deps.settings.max_cost_per_issue,
    )
