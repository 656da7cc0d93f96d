"""`bdp metrics`: the queue in Prometheus text format, for monitoring systems to scrape.

Counters come from the broker (incremented as outcomes are recorded and as the janitor acts),
so every consumer and every machine adds to the same totals.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bdp.broker.state import DURATION_BUCKETS
from bdp.models import Outcome
from bdp.queue.app import App
from bdp.queue.janitor import JANITOR_ACTIONS


class _QueueCollector:
    """Reads the broker at scrape time."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        keys = [f"outcomes:{o.value}" for o in Outcome] + [
            "cost_microusd", "input_tokens", "output_tokens", "duration_count", "duration_ms_sum",
            *(f"duration_le:{b}" for b in DURATION_BUCKETS),
            *(f"janitor:{a}" for a in JANITOR_ACTIONS),
            "lock_waits", "lock_wait_ms", "lock_timeouts",
        ]  # fmt: skip
        counts = self.app.state.counters(keys)
        outcomes = CounterMetricFamily(
            "bdp_outcomes", "Runs ended, by outcome.", labels=["outcome"]
        )
        for outcome in Outcome:
            outcomes.add_metric([outcome.value], counts[f"outcomes:{outcome.value}"])
        yield outcomes
        yield CounterMetricFamily("bdp_cost_usd", "USD spent by sessions.",
                                  value=counts["cost_microusd"] / 1_000_000)  # fmt: skip
        tokens = CounterMetricFamily("bdp_tokens", "Tokens used by sessions.", labels=["kind"])
        tokens.add_metric(["input"], counts["input_tokens"])
        tokens.add_metric(["output"], counts["output_tokens"])
        yield tokens
        yield self._durations(counts)
        yield from self._lock_waits(counts)
        janitor = CounterMetricFamily("bdp_janitor_actions", "Janitor actions.", labels=["action"])
        for action in JANITOR_ACTIONS:
            janitor.add_metric([action], counts[f"janitor:{action}"])
        yield janitor

    def _lock_waits(self, counts: dict[str, int]) -> Iterator[Metric]:
        yield CounterMetricFamily("bdp_lock_waits", "File lock acquires that had to wait.",
                                  value=counts["lock_waits"])  # fmt: skip
        yield CounterMetricFamily("bdp_lock_wait_seconds", "Time spent waiting for file locks.",
                                  value=counts["lock_wait_ms"] / 1000)  # fmt: skip
        yield CounterMetricFamily("bdp_lock_timeouts", "Lock waits that ran out (edit denied).",
                                  value=counts["lock_timeouts"])  # fmt: skip

    def _gauges(self) -> Iterator[Metric]:
        huey = self.app.huey
        yield GaugeMetricFamily("bdp_queue_depth", "Tasks waiting.", value=huey.pending_count())
        yield GaugeMetricFamily("bdp_scheduled", "Tasks scheduled (retries, delays).",
                                value=huey.scheduled_count())  # fmt: skip
        yield GaugeMetricFamily("bdp_running", "Agent sessions running.",
                                value=len(self.app.state.runs()))  # fmt: skip

    def _durations(self, counts: dict[str, int]) -> Metric:
        buckets = [(f"{b:g}", counts[f"duration_le:{b}"]) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", counts["duration_count"]))
        return HistogramMetricFamily(
            "bdp_session_duration_seconds", "How long runs took.", buckets=buckets,
            sum_value=counts["duration_ms_sum"] / 1000,
        )  # fmt: skip


def render_metrics(app: App) -> str:
    """The current metrics in Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueCollector(app))
    return generate_latest(registry).decode()
