"""What a run needs from the worker process it runs in, built once per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bdp.agent.session import AgentRunner
from bdp.broker.claims import Claims, Fence, LocalClaims, RedisClaims
from bdp.broker.session_store import RedisSessionStore
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import RepoError
from bdp.host import host_name
from bdp.models import TaskArgs
from bdp.ops.notify import Notifier
from bdp.repo.beads import BdCli, Beads
from bdp.repo.lock_table import Locks
from bdp.repo.locks import LockTable
from bdp.repo.shared_locks import SharedLockTable


class Requeue(Protocol):
    """Queues a task again (a continuation, a recovery); returns the new task's id."""

    def __call__(self, args: TaskArgs, /) -> str: ...


@dataclass
class RunDeps:
    """The worker process's settings, state, agent and the ways out of a run."""

    settings: Settings
    state: State
    agent: AgentRunner
    beads: Callable[[Path], Beads] | None = None  # None: the real `bd` (BdCli)
    requeue: Requeue | None = None  # queues a continuation task
    notifier: Notifier | None = None  # BDP_NOTIFY: told of every outcome
    claims: Claims = field(default_factory=LocalClaims)  # who works an issue, across machines
    sessions: RedisSessionStore | None = None  # transcripts every machine can resume from

    def clone(self, repo: str) -> Path:
        """This machine's clone of the repo a task names (`Settings.clone_of`)."""
        path = self.settings.clone_of(repo)
        if path is None:
            raise RepoError(
                f"no clone of the repo {repo!r} on this machine",
                f"map it in BDP_REPOS ({repo}=/path/to/its/clone)",
            )
        return path

    def lock_table(self, repo: str, tree: Path | None, fence: Fence | None) -> Locks:
        """The locks of ``repo``, paths resolved in ``tree`` (or the clone): in Redis when the
        queue is there, so machines sharing it share them (each backed by the run's lease),
        else in this machine's state directory."""
        clone = self.clone(repo)
        claims = self.claims
        if not isinstance(claims, RedisClaims):
            return LockTable(self.settings.home, clone, tree)
        lease = ("", "") if fence is None else (claims.lease_key(fence.lease), fence.lease.value)
        return SharedLockTable(claims.client, claims.prefix, repo, tree or clone, lease)

    def beads_for(self, repo: Path) -> Beads:
        if self.beads is None:
            return BdCli(repo, self.settings.bd)
        return self.beads(repo)


def worker_name() -> str:
    """This worker's name: pid plus thread, unique on the host."""
    return f"{os.getpid()}-{threading.current_thread().name}"


def actor_name(worker: str) -> str:
    """The bd actor a worker claims as: names bdp, the host and the worker."""
    return f"bdp/{host_name()}/{worker}"
