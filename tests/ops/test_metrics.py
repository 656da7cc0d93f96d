"""`bdp metrics`: Prometheus text built from counters kept in the broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from bdp.agent.session import StubAgentRunner
from bdp.cli import main
from bdp.config import Settings
from bdp.models import Outcome, RunRecord, TaskArgs
from bdp.ops.metrics import render_metrics
from bdp.queue.app import App
from tests.support.secrets import SECRET


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = App.create(
        Settings(home=tmp_path / "home", redis_url=url, secret=SECRET),
        agent=lambda s: StubAgentRunner(),
    )
    yield app
    if url:
        app.huey.storage.pool.disconnect()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def record(n: int, outcome: Outcome, seconds: float, cost: float) -> RunRecord:
    return RunRecord(
        f"r{n}",
        f"t-{n}",
        "/repo",
        "x",
        outcome,
        "s",
        started=1000.0,
        finished=1000.0 + seconds,
        cost_usd=cost,
        input_tokens=100,
        output_tokens=10,
    )


def test_metrics_count_outcomes_cost_tokens_durations_and_queue(app: App) -> None:
    # Given three finished runs, a lost claim, two queued tasks and a janitor action
    app.state.record(replace(record(1, Outcome.DONE, 30, 0.25), landed=True))
    app.state.record(record(2, Outcome.DONE, 400, 0.5))
    waited = replace(
        record(3, Outcome.FAILED, 5000, 0.0), lock_waits=3, lock_wait_seconds=61.5, lock_timeouts=1
    )
    app.state.record(waited)
    app.state.record(record(4, Outcome.SKIPPED, 0, 0.0))
    app.tasks.run_issue(TaskArgs("/repo", "t-9").to_task())
    app.tasks.run_issue(TaskArgs("/repo", "t-10").to_task())
    app.state.count("janitor:requeued", 2)

    # When they are scraped
    got = samples(render_metrics(app.settings))

    # Then every number matches what happened
    assert got[("bdp_queue_depth", ())] == 2
    assert got[("bdp_outcomes_total", (("outcome", "DONE"),))] == 2
    assert got[("bdp_outcomes_total", (("outcome", "FAILED"),))] == 1
    assert got[("bdp_outcomes_total", (("outcome", "SKIPPED"),))] == 1
    assert got[("bdp_cost_usd_total", ())] == pytest.approx(0.75)
    assert got[("bdp_tokens_total", (("kind", "input"),))] == 400
    assert got[("bdp_session_duration_seconds_count", ())] == 3  # a lost claim is no session
    assert got[("bdp_session_duration_seconds_bucket", (("le", "60"),))] == 1
    assert got[("bdp_session_duration_seconds_bucket", (("le", "900"),))] == 2
    assert got[("bdp_session_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert got[("bdp_session_duration_seconds_sum", ())] == pytest.approx(5430)
    assert got[("bdp_janitor_actions_total", (("action", "requeued"),))] == 2
    assert got[("bdp_lock_waits_total", ())] == 3
    assert got[("bdp_lock_wait_seconds_total", ())] == pytest.approx(61.5)
    assert got[("bdp_lock_timeouts_total", ())] == 1
    assert got[("bdp_landed_total", ())] == 1


def test_bdp_metrics_prints_the_text_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["metrics"], env={"BDP_HOME": str(tmp_path / "h")}, catch_exceptions=False
    )

    assert result.exit_code == 0
    assert "# TYPE bdp_queue_depth gauge" in result.output
    assert samples(result.output)[("bdp_running", ())] == 0
