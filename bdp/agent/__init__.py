"""The agent: one Claude Agent SDK session per run, and what it is told and allowed.

`session` is the seam a worker sees (request, result, the runner protocol, a stub);
`claude` is the real runner with its timeout and retry, `conversation` its message loop,
`hooks` the guard rails and lock tools, `review` the optional reviewer, `verdict` how a
finished session's tally becomes its result, `prompt`, `tally`, `transcript`, `api_errors`
what they say. Only this package imports ``claude_agent_sdk``, and a worker loads it only
when it starts. May import `repo`, `redact`, `config`, `models`, `errors`; never the queue,
the broker or a run.
"""
