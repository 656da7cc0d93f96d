"""Names of everything bdp keeps in the broker, derived from the queue name in one place.

With Redis, Huey stores a namespace as the hash ``huey.results.<name>``; with SQLite, as the
rows of its ``kv`` table whose ``queue`` column is ``<name>``. Light on purpose: `bdp status`
reads the broker through these names without importing Huey (a test checks they match what
Huey itself writes).
"""

from __future__ import annotations

import re

#: bdp's namespaces: enqueue markers, the run registry, heartbeats, live progress, outcomes,
#: known repos, misc, counters, the runs' inboxes (`bdp say`, `bdp stop`), and the consumers
#: serving the queue.
NAMESPACES = (
    "markers",
    "runs",
    "beats",
    "progress",
    "outcomes",
    "repos",
    "meta",
    "counters",
    "inbox",
    "consumers",
)
#: Keys of the counters namespace that status reads directly.
SPENT_COUNTER = "cost_microusd"
#: The meta key of the queue-wide usage-limit pause.
PAUSE_KEY = "pause"
#: The meta key where workers say they hold tasks for a spent budget (status shows it).
BUDGET_HOLD_KEY = "budget_hold"
#: The meta key of the janitor's last sweep report (status shows it).
LAST_SWEEP_KEY = "last_sweep"
#: Upper bounds (seconds) of the run-duration histogram, each counted as ``duration_le:<b>``.
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200)
#: What a janitor sweep can do, each counted as ``janitor:<action>`` for `bdp metrics`.
JANITOR_ACTIONS = (
    "freed_locks",
    "killed",
    "reset",
    "requeued",
    "needs_human",
    "cleared_markers",
    "removed_worktrees",
    "deleted_branches",
    "closed_landed",
    "closed_epics",
)


def namespace_name(queue: str, namespace: str) -> str:
    """The storage name of one namespace of one queue."""
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown namespace {namespace!r}")
    return f"{queue}_{namespace}"


def redis_name(name: str) -> str:
    """The name as Huey's RedisStorage writes it into keys (it drops other characters)."""
    return re.sub("[^A-Za-z0-9_]", "", name)


def redis_bdp_prefix(queue: str) -> str:
    """The start of the names of bdp's own Redis keys (leases, tombstones, shared locks)."""
    return f"bdp.{redis_name(queue)}"


def redis_queue_key(queue: str) -> str:
    """Huey's Redis list of pending tasks."""
    return f"huey.redis.{redis_name(queue)}"


def redis_schedule_key(queue: str) -> str:
    """Huey's Redis sorted set of scheduled (delayed or retried) tasks."""
    return f"huey.schedule.{redis_name(queue)}"


def redis_namespace_key(queue: str, namespace: str) -> str:
    """The Redis hash holding one of bdp's namespaces."""
    return f"huey.results.{redis_name(namespace_name(queue, namespace))}"


def redis_counter_key(queue: str, namespace: str) -> str:
    """The Redis hash holding the atomic counters of one of bdp's namespaces."""
    return f"huey.counters.{redis_name(namespace_name(queue, namespace))}"


def issue_cost_key(repo: str, issue_id: str) -> str:
    """The counter of what one issue has cost so far, over all its attempts (micro-USD)."""
    return f"issue_cost:{marker_key(repo, issue_id)}"


def marker_key(repo: str, issue_id: str) -> str:
    """The key of one (repo, issue) enqueue marker."""
    return f"{repo}::{issue_id}"


def inbox_key(run_id: str, slot: int) -> str:
    """The key of one numbered slot of a run's inbox."""
    return f"{run_id}:{slot}"


def outcome_key(finished: float, run_id: str) -> str:
    """Outcome keys sort by finishing time."""
    return f"{finished:017.6f}:{run_id}"
