"""One run inside a worker: claim the issue, start the run, watch it, finish it.

`work` is the task body (`work_on`); `job` registers a claimed issue's run; `tree` says
where it works (the repo, or its own worktree); `landing` lands a worktree's commit; `watchdog`
keeps its heartbeat and bd lease and stops the session when the run is taken away, the
worker shuts down (`shutdown`) or a person asks (`steering`: `bdp say`, `bdp stop`); `finish`
commits and closes, or resets, continues or pauses, then frees what the run held;
`bookkeeping` keeps finishing when the broker is away; `deps` is what a run needs from its
process. May import `agent`, `ops`, `broker`, `repo` and the foundation; the queue calls
it, never the other way round.
"""
