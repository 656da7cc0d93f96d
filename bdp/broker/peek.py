"""Reading a queued task message without Huey or the key: which task, for which issue.

`bdp status` lists what is queued without importing Huey (most of its start-up time) and
without the signing key: it only shows what it reads, and a worker checks the signature
(`bdp.broker.messages`) before it runs anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: What every signed message starts with (the format's version).
PREFIX = b"bdp1."
#: The name a `run_issue` task carries on the queue: the one task that works an issue.
ISSUE_TASK = "bdp.tasks.run_issue"
#: The bytes that say a message is a `run_issue` task: its name as the message's JSON spells
#: it (compact, so no space; a string holding them would have its quotes escaped).
ISSUE_NEEDLE = b'"name":"' + ISSUE_TASK.encode() + b'"'


@dataclass(frozen=True)
class QueuedTask:
    """A task message on the queue, as far as status cares."""

    name: str
    repo: str = ""
    issue_id: str = ""
    attempt: int = 1

    @property
    def works_an_issue(self) -> bool:
        """True for `run_issue` (not the janitor, not a message bdp cannot read)."""
        return self.name == ISSUE_TASK and bool(self.issue_id)

    def to_json(self) -> dict[str, Any]:
        return {"issue_id": self.issue_id, "repo": self.repo, "attempt": self.attempt}


def peek(data: bytes | str) -> QueuedTask:
    """The task a message carries; name "" when it is not a message bdp wrote."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.startswith(PREFIX):
        return QueuedTask("")
    body = raw[len(PREFIX) :].partition(b".")[2]
    try:
        message = json.loads(body)["$message"]
        args = message.get("args") or [{}]
        payload = args[0] if isinstance(args[0], dict) else {}
        return QueuedTask(
            str(message["name"]),
            str(payload.get("repo", "")),
            str(payload.get("issue_id", "")),
            int(payload.get("attempt", 1)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return QueuedTask("")
