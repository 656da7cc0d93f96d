"""bdp's own state, kept in the broker beside Huey's queue (Redis hashes, or SQLite rows).

`keys` names every key from the queue name (light: `bdp status` reads them without Huey);
`storage` opens a namespace of the queue's own storage kind; `state` is the typed access
(enqueue markers, the run registry and heartbeats, live progress, outcome records,
counters); `hold` says whether the queue is held (a usage-limit pause, a spent budget);
`inbox` holds what `bdp say` and `bdp stop` send running runs; `consumers` the consumers'
heartbeat records; `peek` reads a queued message without Huey or the key (for status);
`client` and `queue_file` are how a command that only looks reads Redis or the SQLite file.
May import `config`, `models`, `errors` and Huey's storage; nothing above.
"""
