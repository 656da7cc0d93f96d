"""The Huey tasks: thin wrappers that check their arguments and call `bdp.run.work`.

The agent runner is created inside the worker process on first use, so enqueueing a task
never imports the Claude SDK.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from huey import Huey
from huey.api import Task, TaskWrapper
from huey.exceptions import RetryTask

from bdp.agent.session import AgentRunner
from bdp.broker.hold import HoldGate
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import TaskError
from bdp.models import TaskArgs
from bdp.ops.notify import Notifier
from bdp.queue.app import AgentFactory
from bdp.run.work import WorkerDeps, work_on

log = logging.getLogger("bdp.queue.tasks")


def claude_agent(settings: Settings) -> AgentRunner:
    """The real runner; imported here, lazily, to keep the SDK off the fast paths."""
    from bdp.agent.claude import ClaudeAgentRunner

    return ClaudeAgentRunner(settings)


@dataclass
class Tasks:
    """The tasks registered on one Huey instance."""

    run_issue: TaskWrapper
    janitor: TaskWrapper
    huey: Huey
    state: State

    def requeue(self, repo: str, issue_id: str, attempt: int, **more: Any) -> str:
        """Queue the issue again (a recovery or a continuation), re-pointing its marker."""
        task = self.run_issue.s(repo, issue_id, attempt, **more)
        self.state.remark_queued(repo, issue_id, task.id)
        self.huey.enqueue(task)
        return str(task.id)


def task_args(repo: Any, issue_id: Any, attempt: Any) -> TaskArgs:
    """Validated task arguments; TaskError names what is malformed."""
    if not isinstance(repo, str) or not os.path.isabs(repo):
        raise TaskError(f"malformed task: repo must be an absolute path, got {repo!r}")
    if not isinstance(issue_id, str) or not issue_id.strip():
        raise TaskError(f"malformed task: issue id must be a non-empty string, got {issue_id!r}")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise TaskError(f"malformed task: attempt must be a positive integer, got {attempt!r}")
    return TaskArgs(repo, issue_id, attempt)


def continued(args: TaskArgs, continuation: Any, resume: Any, prior: Any, files: Any,
              max_cost: Any = None) -> TaskArgs:  # fmt: skip
    """``args`` with a continuation's and a budget's parts, checked like the rest."""
    if not isinstance(continuation, int) or isinstance(continuation, bool) or continuation < 0:
        raise TaskError(f"malformed task: continuation must be >= 0, got {continuation!r}")
    if not isinstance(resume, str) or not isinstance(prior, str):
        raise TaskError("malformed task: resume and prior must be strings")
    if not isinstance(files, list | tuple) or not all(isinstance(f, str) for f in files):
        raise TaskError(f"malformed task: files must be a list of paths, got {files!r}")
    number = isinstance(max_cost, int | float) and not isinstance(max_cost, bool)
    budget_ok = number and max_cost > 0
    if max_cost is not None and not budget_ok:
        raise TaskError(f"malformed task: max_cost must be a positive number, got {max_cost!r}")
    return replace(args, continuation=continuation, resume=resume, prior=prior, files=tuple(files),
                   max_cost=None if max_cost is None else float(max_cost))  # fmt: skip


def register_tasks(huey: Huey, settings: Settings, agent: AgentFactory = claude_agent) -> Tasks:
    """Define bdp's tasks on ``huey``; worker dependencies are built once per process."""
    deps_by_pid: dict[int, WorkerDeps] = {}
    gates_by_pid: dict[int, HoldGate] = {}

    def deps() -> WorkerDeps:
        pid = os.getpid()
        if pid not in deps_by_pid:
            deps_by_pid[pid] = WorkerDeps(
                settings,
                State(huey),
                agent(settings),
                requeue=lambda *a, **k: tasks.requeue(*a, **k),
                notifier=Notifier.from_settings(settings),
            )
        return deps_by_pid[pid]

    def run_issue(repo: str, issue_id: str, attempt: int = 1, continuation: int = 0,
                  resume: str = "", prior: str = "", files: Any = (), max_cost: Any = None,
                  task: Task | None = None) -> str:  # fmt: skip
        try:
            args = task_args(repo, issue_id, attempt)
            args = continued(args, continuation, resume, prior, files, max_cost)
        except TaskError as error:  # nothing to retry: say what is wrong and drop it
            log.error("dropping task %s: %s", task.id if task else "?", error)
            return "FAILED"
        _hold_back(gate(), settings.hold_recheck)
        record = work_on(args, task.id if task else "", deps())
        return record.outcome.value

    def gate() -> HoldGate:
        pid = os.getpid()
        if pid not in gates_by_pid:
            gates_by_pid[pid] = HoldGate(deps().state, settings)
        return gates_by_pid[pid]

    def warm_up() -> None:
        """Build the worker's dependencies (and import the SDK) before the first task."""
        deps()

    def janitor() -> None:
        from bdp.queue.janitor import Janitor

        Janitor(settings, huey, deps().state, tasks.requeue).sweep()

    huey.on_startup()(warm_up)
    tasks = Tasks(
        run_issue=huey.task(context=True)(run_issue),
        janitor=huey.periodic_task(_every_check, name="janitor")(janitor),
        huey=huey,
        state=State(huey),
    )
    return tasks


def _hold_back(gate: HoldGate, recheck: float) -> None:
    """While the queue is held, send the task back to the schedule, unchanged: nothing is
    claimed or dropped. (Consumers take no task while held; this catches one taken just
    before the hold began, and runs without a BdpConsumer.)"""
    hold, looked = gate.check()
    if hold is None:
        return
    if looked:  # once per look at the broker, not once per held task
        log.info("holding tasks: %s", hold.describe())
    raise RetryTask(delay=hold.retry_in(recheck))


def _every_check(_when: object) -> bool:
    """Run at every periodic check; the consumer spaces checks by BDP_JANITOR_INTERVAL."""
    return True
