"""`bdp metrics`: the queue in Prometheus text format, for monitoring systems to scrape.

Counters come from the broker (incremented as outcomes are recorded and as the janitor acts),
so every consumer and every machine adds to the same totals. A scrape reads them straight
from the broker through the names in `bdp.broker.keys`, as `bdp status` does: no Huey, no
tasks, one round trip; and it writes the text format itself (version 0.0.4, a few lines per
family), where the Prometheus client library alone took longer to import than click.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bdp.broker.client import reading_client
from bdp.broker.keys import (
    DURATION_BUCKETS,
    JANITOR_ACTIONS,
    SPENT_COUNTER,
    namespace_name,
    redis_counter_key,
    redis_namespace_key,
    redis_queue_key,
    redis_schedule_key,
)
from bdp.broker.queue_file import read_queue_file
from bdp.config import Settings
from bdp.models import Outcome

if TYPE_CHECKING:
    import sqlite3

#: Every counter a scrape reads, in one round of reads.
COUNTERS = (
    *(f"outcomes:{outcome.value}" for outcome in Outcome),
    SPENT_COUNTER,
    "input_tokens",
    "output_tokens",
    "duration_count",
    "duration_ms_sum",
    *(f"duration_le:{bound}" for bound in DURATION_BUCKETS),
    *(f"janitor:{action}" for action in JANITOR_ACTIONS),
    "lock_waits",
    "lock_wait_ms",
    "lock_timeouts",
    "landed",
)


@dataclass(frozen=True)
class Figures:
    """What one scrape read from the broker."""

    pending: int
    scheduled: int
    running: int
    counts: dict[str, int]


def render_metrics(settings: Settings) -> str:
    """The current metrics of the configured queue in Prometheus text exposition format."""
    return render(read_figures(settings))


def read_figures(settings: Settings) -> Figures:
    """Queue depth, scheduled tasks, registered runs and every counter, from the broker."""
    if settings.redis_url:
        return _from_redis(settings.redis_url, settings.queue)
    return _from_sqlite(settings)


def _from_redis(url: str, queue: str) -> Figures:
    with reading_client(url) as client:
        pipe = client.pipeline(transaction=False)
        pipe.llen(redis_queue_key(queue))
        pipe.zcard(redis_schedule_key(queue))
        pipe.hlen(redis_namespace_key(queue, "runs"))
        pipe.hmget(redis_counter_key(queue, "counters"), COUNTERS)
        pending, scheduled, running, values = pipe.execute()
    counts = {key: int(value or 0) for key, value in zip(COUNTERS, values, strict=True)}
    return Figures(int(pending), int(scheduled), int(running), counts)


_SIZE = {
    "task": "select count(*) from task where queue = ?",
    "schedule": "select count(*) from schedule where queue = ?",
    "kv": "select count(*) from kv where queue = ?",
}
_COUNTERS = "select key, value from counter where queue = ?"


def _from_sqlite(settings: Settings) -> Figures:
    queue = settings.queue

    def read(db: sqlite3.Connection) -> Figures:
        pending, scheduled = (
            int(db.execute(_SIZE[table], (queue,)).fetchone()[0]) for table in ("task", "schedule")
        )
        running = int(db.execute(_SIZE["kv"], (namespace_name(queue, "runs"),)).fetchone()[0])
        stored = dict(db.execute(_COUNTERS, (namespace_name(queue, "counters"),)).fetchall())
        counts = {key: int(stored.get(key) or 0) for key in COUNTERS}
        return Figures(pending, scheduled, running, counts)

    return read_queue_file(settings.home, read, Figures(0, 0, 0, dict.fromkeys(COUNTERS, 0)))


def render(figures: Figures) -> str:
    """The text exposition of ``figures``: gauges, then counters and the duration histogram."""
    counts = figures.counts
    lines = [
        *_family("bdp_queue_depth", "gauge", "Tasks waiting.", [("", figures.pending)]),
        *_family(
            "bdp_scheduled",
            "gauge",
            "Tasks scheduled (retries, delays).",
            [("", figures.scheduled)],
        ),
        *_family("bdp_running", "gauge", "Agent sessions running.", [("", figures.running)]),
        *_spending(counts),
        *_durations(counts),
        *_lock_waits(counts),
        *_counter(
            "bdp_janitor_actions",
            "Janitor actions.",
            [(_labels(action=action), counts[f"janitor:{action}"]) for action in JANITOR_ACTIONS],
        ),
    ]
    return "".join(f"{line}\n" for line in lines)


def _spending(counts: dict[str, int]) -> Iterator[str]:
    outcomes = [(_labels(outcome=o.value), counts[f"outcomes:{o.value}"]) for o in Outcome]
    yield from _counter("bdp_outcomes", "Runs ended, by outcome.", outcomes)
    usd = counts[SPENT_COUNTER] / 1_000_000
    yield from _counter("bdp_cost_usd", "USD spent by sessions.", [("", usd)])
    tokens = [
        (_labels(kind="input"), counts["input_tokens"]),
        (_labels(kind="output"), counts["output_tokens"]),
    ]
    yield from _counter("bdp_tokens", "Tokens used by sessions.", tokens)
    landed = "Runs whose commit the lander put on the target branch (worktree isolation)."
    yield from _counter("bdp_landed", landed, [("", counts["landed"])])


def _lock_waits(counts: dict[str, int]) -> Iterator[str]:
    yield from _counter(
        "bdp_lock_waits", "File lock acquires that had to wait.", [("", counts["lock_waits"])]
    )
    seconds = counts["lock_wait_ms"] / 1000
    yield from _counter(
        "bdp_lock_wait_seconds", "Time spent waiting for file locks.", [("", seconds)]
    )
    yield from _counter(
        "bdp_lock_timeouts",
        "Lock waits that ran out (edit denied).",
        [("", counts["lock_timeouts"])],
    )


def _durations(counts: dict[str, int]) -> Iterator[str]:
    name = "bdp_session_duration_seconds"
    yield f"# HELP {name} How long runs took."
    yield f"# TYPE {name} histogram"
    for bound in DURATION_BUCKETS:
        yield f"{name}_bucket{_labels(le=f'{bound:g}')} {_number(counts[f'duration_le:{bound}'])}"
    total = counts["duration_count"]
    yield f'{name}_bucket{{le="+Inf"}} {_number(total)}'
    yield f"{name}_count {_number(total)}"
    yield f"{name}_sum {_number(counts['duration_ms_sum'] / 1000)}"


def _counter(name: str, text: str, samples: Iterable[tuple[str, float]]) -> Iterator[str]:
    """A counter family: the exposition names it, and each sample, with ``_total``."""
    yield from _family(f"{name}_total", "counter", text, samples)


def _family(name: str, kind: str, text: str, samples: Iterable[tuple[str, float]]) -> Iterator[str]:
    yield f"# HELP {name} {text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        yield f"{name}{labels} {_number(value)}"


def _labels(**labels: Any) -> str:
    """``{name="value",...}``, each value escaped as the text format asks."""
    body = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return f"{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """A sample value as a float literal (``2.0``, ``0.75``): what scrapers parse."""
    return repr(float(value))
