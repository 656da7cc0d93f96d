"""The queue: Huey and what runs on it.

`instance` builds the Huey for the configured broker (stable task names); `tasks` holds
`run_issue` and the janitor's `sweep` as plain functions of a `TaskContext`; `consumer`
teaches Huey's consumer bdp's holds, periodic interval and shutdown, with its heartbeat
(`consumer_beat`); `serve` runs it for `bdp worker`; `hold_check` caches
the hold per worker process; `enqueue` turns ready issues into tasks, once each; `janitor`
recovers what dead workers leave; `app` wires settings, Huey and state for a command.
May import everything below it: `run`, `agent`, `ops`, `broker`, `repo`, the foundation.
"""
