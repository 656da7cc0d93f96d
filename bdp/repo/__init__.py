"""What the agents on one machine share about a repository, and the tools bdp drives there.

`beads` is the `bd` client (and an in-memory double), `git` validates a work tree and
commits exactly a run's files, `repo_config` reads a repo's ``.bdp.toml``, `quality_gate`
runs its checks, `locks` are the mkdir file locks, `guards` the rules for edits and shell
commands, `procs` finds and ends a run's processes, `worktree` makes a run's own checkout
and `landing` puts its commit on the target branch. Knows nothing of the queue or the SDK;
may import only `config`, `models` and `errors`.
"""
