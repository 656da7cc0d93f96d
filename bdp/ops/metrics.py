"""`bdp metrics`: the queue in Prometheus text format, for monitoring systems to scrape.

Counters come from the broker (incremented as outcomes are recorded and as the janitor acts),
so every consumer and every machine adds to the same totals.
"""

from __future__ import annotations

from collections.abc import Iterator

from huey import Huey
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bdp.broker.keys import JANITOR_ACTIONS, SPENT_COUNTER
from bdp.broker.state import DURATION_BUCKETS, State
from bdp.models import Outcome

#: Every counter a scrape reads, in one round of atomic reads.
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


class _QueueCollector:
    """Reads the broker at scrape time."""

    def __init__(self, huey: Huey, state: State) -> None:
        self.huey = huey
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        counts = self.state.counters(COUNTERS)
        yield from _spending(counts)
        yield _durations(counts)
        yield from _lock_waits(counts)
        janitor = CounterMetricFamily("bdp_janitor_actions", "Janitor actions.", labels=["action"])
        for action in JANITOR_ACTIONS:
            janitor.add_metric([action], counts[f"janitor:{action}"])
        yield janitor

    def _gauges(self) -> Iterator[Metric]:
        pending, scheduled = self.huey.pending_count(), self.huey.scheduled_count()
        yield GaugeMetricFamily("bdp_queue_depth", "Tasks waiting.", value=pending)
        yield GaugeMetricFamily("bdp_scheduled", "Tasks scheduled (retries, delays).", scheduled)
        running = len(self.state.runs())
        yield GaugeMetricFamily("bdp_running", "Agent sessions running.", value=running)


def _spending(counts: dict[str, int]) -> Iterator[Metric]:
    outcomes = CounterMetricFamily("bdp_outcomes", "Runs ended, by outcome.", labels=["outcome"])
    for outcome in Outcome:
        outcomes.add_metric([outcome.value], counts[f"outcomes:{outcome.value}"])
    yield outcomes
    usd = counts[SPENT_COUNTER] / 1_000_000
    yield CounterMetricFamily("bdp_cost_usd", "USD spent by sessions.", value=usd)
    tokens = CounterMetricFamily("bdp_tokens", "Tokens used by sessions.", labels=["kind"])
    tokens.add_metric(["input"], counts["input_tokens"])
    tokens.add_metric(["output"], counts["output_tokens"])
    yield tokens
    landed = "Runs whose commit the lander put on the target branch (worktree isolation)."
    yield CounterMetricFamily("bdp_landed", landed, value=counts["landed"])


def _lock_waits(counts: dict[str, int]) -> Iterator[Metric]:
    waits, seconds = counts["lock_waits"], counts["lock_wait_ms"] / 1000
    yield CounterMetricFamily("bdp_lock_waits", "File lock acquires that had to wait.", waits)
    yield CounterMetricFamily(
        "bdp_lock_wait_seconds", "Time spent waiting for file locks.", seconds
    )
    timeouts = counts["lock_timeouts"]
    yield CounterMetricFamily(
        "bdp_lock_timeouts", "Lock waits that ran out (edit denied).", timeouts
    )


def _durations(counts: dict[str, int]) -> Metric:
    buckets = [(f"{b:g}", counts[f"duration_le:{b}"]) for b in DURATION_BUCKETS]
    buckets.append(("+Inf", counts["duration_count"]))
    return HistogramMetricFamily(
        "bdp_session_duration_seconds",
        "How long runs took.",
        buckets=buckets,
        sum_value=counts["duration_ms_sum"] / 1000,
    )


def render_metrics(huey: Huey, state: State) -> str:
    """The current metrics of ``huey``'s queue in Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueCollector(huey, state))
    return generate_latest(registry).decode()
