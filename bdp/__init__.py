"""bdp: a beads backlog worked through by many Claude agents, as a durable Huey task queue.

The packages, top to bottom; each imports only from those below it (import-linter checks):

- `cli`: the `bdp` command (parse, call, render) and `bdp run`'s in-process consumer.
- `consumer`: the module operators point ``huey_consumer`` at.
- `queue`: the Huey instance, bdp's tasks, the consumer subclass, enqueue, the janitor.
- `run`: one run inside a worker: claim, watchdog, finish (commit and close, or reset).
- `agent`: the Claude Agent SDK session: prompt, hooks, tally, verdict, transcript.
- `ops`: what people see: status, metrics, notifications.
- `broker`: bdp's own state in the broker beside the queue: keys, markers, runs, holds.
- `repo`: what agents share on one machine: bd, git, the quality gate, file locks, guards.
- `redact`, `config`, `models`, `task_args`, `errors`, `host`, `repo_names`: the foundation every
  layer uses.

docs/architecture.md follows one issue from `bdp enqueue` to its close.
"""

from bdp.deferred import defer_unused

defer_unused()  # before anything imports redis-py (Huey does): its asyncio half waits for a user
