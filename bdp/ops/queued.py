"""What is queued, as `bdp status` shows it: how many issues wait, and the next ones to run.

Only `run_issue` messages count (a janitor task or a message bdp cannot read is no queued
issue), and the broker does the counting: a Lua script on Redis, ``instr`` on SQLite, each
looking for the task's name as the message's JSON spells it. Only the next `LISTED`
messages leave the broker to be read (`bdp.broker.peek`), so a queue of 10,000 costs status
a scan inside the broker rather than 10,000 messages decoded in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bdp.broker.keys import redis_queue_key
from bdp.broker.peek import ISSUE_NEEDLE, QueuedTask, peek

if TYPE_CHECKING:
    import sqlite3

#: Queued issues status reads and lists (the next to run); the count covers them all.
LISTED = 100

#: Counts the list's issue messages and returns the first ``ARGV[2]`` of them, next to run
#: first (Huey pushes on the left and takes from the right).
_REDIS_SCRIPT = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local count, first, limit = 0, {}, tonumber(ARGV[2])
for i = #items, 1, -1 do
  if string.find(items[i], ARGV[1], 1, true) then
    count = count + 1
    if #first < limit then first[#first + 1] = items[i] end
  end
end
return {count, first}
"""
#: The same on SQLite, in the order Huey's SQLite storage dequeues.
_SQLITE_COUNT = "select count(*) from task where queue = ? and instr(data, ?) > 0"
_SQLITE_FIRST = (
    "select data from task where queue = ? and instr(data, ?) > 0 "
    "order by priority desc, id limit ?"
)


def ask_redis(pipe: Any, queue: str) -> None:
    """Add the count and the first messages to a redis-py pipeline (read by `from_redis`)."""
    pipe.eval(_REDIS_SCRIPT, 1, redis_queue_key(queue), ISSUE_NEEDLE, LISTED)


def from_redis(reply: list[Any]) -> tuple[int, list[QueuedTask]]:
    """The issues queued and the next ones, from the pipeline's reply to `ask_redis`."""
    count, first = reply
    return int(count), [peek(message) for message in first]


def from_sqlite(db: sqlite3.Connection, queue: str) -> tuple[int, list[QueuedTask]]:
    """The issues queued and the next ones, from Huey's SQLite ``task`` table."""
    (count,) = db.execute(_SQLITE_COUNT, (queue, ISSUE_NEEDLE)).fetchone()
    rows = db.execute(_SQLITE_FIRST, (queue, ISSUE_NEEDLE, LISTED))
    return int(count), [peek(data) for (data,) in rows]
