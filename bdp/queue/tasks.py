"""bdp's Huey tasks: plain functions of a `TaskContext`, registered on a Huey instance.

`run_issue` works one issue (`bdp.run.work`); `sweep` is the periodic janitor. Both are
importable and callable without Huey: `register_tasks` only binds them to one instance and
one context. The agent runner is built inside the worker process on first use, so queueing
a task never imports the Claude SDK.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial, update_wrapper
from typing import Any

from huey import Huey
from huey.api import Task, TaskWrapper
from huey.exceptions import RetryTask

from bdp.agent.session import AgentFactory, AgentRunner
from bdp.broker.claims import claims_for
from bdp.broker.consumers import Consumers, live_consumers
from bdp.broker.session_store import session_store_for
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import TaskError
from bdp.host import host_name
from bdp.models import RunRecord, TaskArgs
from bdp.ops.notify import Notifier
from bdp.queue.hold_check import HoldCheck
from bdp.redact import scrub, scrub_tree
from bdp.run.deps import RunDeps
from bdp.run.work import work_on

log = logging.getLogger(__name__)


def claude_agent(settings: Settings) -> AgentRunner:
    """The real runner; imported here, lazily, to keep the SDK off the fast paths."""
    from bdp.agent.claude import ClaudeAgentRunner

    return ClaudeAgentRunner(settings)


@dataclass
class TaskContext:
    """What bdp's tasks need in one consumer process, built there on first use.

    A forked process worker gets its own (its parent's agent and connections are not its).
    """

    settings: Settings
    huey: Huey
    agent: AgentFactory = claude_agent
    run_issue_task: TaskWrapper | None = None  # `run_issue` as registered on ``huey``
    _deps: dict[int, RunDeps] = field(default_factory=dict, repr=False)
    _holds: dict[int, HoldCheck] = field(default_factory=dict, repr=False)

    def deps(self) -> RunDeps:
        pid = os.getpid()
        if pid not in self._deps:
            self._deps[pid] = RunDeps(
                self.settings,
                State(self.huey),
                self.agent(self.settings),
                requeue=self.requeue,
                notifier=Notifier.from_settings(self.settings),
                claims=claims_for(self.huey.storage, self.huey.name, self.settings.stale_after),
                sessions=session_store_for(self.huey.storage, self.huey.name, scrub_tree),
            )
        return self._deps[pid]

    def hold(self) -> HoldCheck:
        pid = os.getpid()
        if pid not in self._holds:
            self._holds[pid] = HoldCheck(self.deps().state, self.settings)
        return self._holds[pid]

    def requeue(self, args: TaskArgs) -> str:
        """Queue the issue again (a recovery or a continuation), re-pointing its marker."""
        if self.run_issue_task is None:
            raise RuntimeError("requeue before register_tasks bound run_issue")
        task = self.run_issue_task.s(args.to_task())
        State(self.huey).remark_queued(args.repo, args.issue_id, task.id, args.to_task())
        self.huey.enqueue(task)
        return str(task.id)


def run_issue(context: TaskContext, payload: object, task: Task | None = None) -> str:
    """Work one issue: the task's payload is a `TaskArgs`; the outcome's name is returned."""
    task_id = task.id if task else ""
    try:
        args = TaskArgs.from_task(payload)
    except TaskError as error:  # nothing to retry: say what is wrong and drop it
        log.error("dropping task %s: %s", task_id or "?", error)
        return "FAILED"
    _hold_back(context.hold(), context.settings.hold_recheck)
    _leave_unless_here(context.settings, args)
    args = _on_this_host(context, args)
    record = work_on(args, task_id, context.deps())
    log.info("%s", finished_line(record))
    return record.outcome.value


#: Characters of a run's summary its finished line keeps.
SUMMARY_CLIP = 200


def finished_line(record: RunRecord) -> str:
    """How a run ended, in the consumer's log: ``t-1 DONE 12.4s 2 turns $0.0008: summary``.

    Huey's own lines name only the task's id; this one is what a person reading the log
    wants: which issue, how it ended, what it took. The summary is the agent's words, so it
    is redacted, and kept to one line.
    """
    summary = " ".join(scrub(record.summary).split())
    if len(summary) > SUMMARY_CLIP:
        summary = summary[:SUMMARY_CLIP] + "…"
    took = f"{record.duration:.1f}s {record.turns} turns ${record.cost_usd:.4f}"
    return f"{record.issue_id} {record.outcome.value} {took}: {summary}"


def sweep(context: TaskContext) -> None:
    """The periodic janitor: one sweep over runs, locks, claims and markers."""
    from bdp.queue.janitor import Janitor

    deps = context.deps()
    Janitor(context.settings, context.huey, deps.state, context.requeue).sweep()


def warm_up(context: TaskContext) -> None:
    """Build the worker's dependencies (and import the SDK) before the first task."""
    context.deps()


@dataclass
class Tasks:
    """The tasks registered on one Huey instance."""

    run_issue: TaskWrapper
    janitor: TaskWrapper
    context: TaskContext

    def queue(self, args: TaskArgs) -> Task:
        """A `run_issue` task for ``args``, not yet on the queue."""
        return self.run_issue.s(args.to_task())

    def requeue(self, args: TaskArgs) -> str:
        return self.context.requeue(args)


def register_tasks(context: TaskContext) -> Tasks:
    """Bind bdp's tasks to the context's Huey (named ``bdp.tasks.*`` on a BdpHuey)."""
    huey = context.huey
    work = huey.task(context=True, name="run_issue")(_bound(run_issue, context))
    periodic = huey.periodic_task(_every_check, name="janitor")(_bound(sweep, context))
    huey.on_startup(name="warm_up")(_bound(warm_up, context))
    context.run_issue_task = work
    return Tasks(run_issue=work, janitor=periodic, context=context)


def _bound(func: Callable[..., Any], context: TaskContext) -> Callable[..., Any]:
    """``func`` with its context bound, keeping its name and module for Huey's registry."""
    return update_wrapper(partial(func, context), func)


def _hold_back(hold: HoldCheck, recheck: float) -> None:
    """While the queue is held, send the task back to the schedule, unchanged: nothing is
    claimed or dropped. (Consumers take no task while held; this catches one taken just
    before the hold began, and runs without a BdpConsumer.)"""
    held, looked = hold.check()
    if held is None:
        return
    if looked:  # once per look at the broker, not once per held task
        log.info("holding tasks: %s", held.describe())
    raise RetryTask(delay=held.retry_in(recheck))


#: Seconds a task for a repo this machine has no clone of waits before any consumer takes it
#: again (one that has the clone, most likely, when several serve the queue).
ELSEWHERE_DELAY = 2.0


def _leave_unless_here(settings: Settings, args: TaskArgs) -> None:
    """A task naming a repo BDP_REPOS does not map here goes back to the schedule unchanged,
    for a machine that has a clone; nothing is claimed, its marker stays as it is."""
    if settings.clone_of(args.repo) is None:
        log.info(
            "no clone of %s here: leaving %s to a machine that has one", args.repo, args.issue_id
        )
        raise RetryTask(delay=ELSEWHERE_DELAY)


def _on_this_host(context: TaskContext, args: TaskArgs) -> TaskArgs:
    """A continuation prefers the machine that has its session and branch: while that one's
    consumers beat, it goes back to the schedule for them. Once they stopped, it goes on
    here: resuming the session from the broker's copy, on the branch fetched from the shared
    remote (`bdp.run.tree`); what is not to be had (files a shared tree left uncommitted, a
    session never mirrored) is started afresh, told what the earlier sessions did."""
    if not args.host or args.host == host_name():
        return args
    now, expiry = time.time(), context.settings.stale_after
    if any(c.host == args.host for c in live_consumers(Consumers(context.huey).all(), now, expiry)):
        raise RetryTask(delay=ELSEWHERE_DELAY)
    sessions = context.deps().sessions
    if args.resume and (args.files or sessions is None or not sessions.has(args.resume)):
        args = replace(args, resume="", resume_cost=0.0)
    log.info("%s left %s; continuing it here", args.host, args.issue_id)
    return replace(args, host="", files=())


def _every_check(_when: object) -> bool:
    """Run at every periodic check; the consumer spaces checks by BDP_JANITOR_INTERVAL."""
    return True
