"""The runs registered now, read without Huey: the same runs the run registry holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.models import Run
from bdp.ops.live_runs import live_runs
from bdp.queue.app import App
from tests.support.secrets import SECRET


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = App.create(Settings(home=tmp_path / "home", redis_url=url, secret=SECRET, queue="lr-q"))
    yield app
    if url:
        app.huey.storage.pool.disconnect()


def test_live_runs_are_the_registered_runs_oldest_first(app: App) -> None:
    now = time.time()
    for n, started in ((1, now - 5), (2, now - 50), (3, now - 20)):
        run = Run(f"r{n}", f"t-{n}", "/repo", "x", "box", 1, "w", 1, started, now + 60, now)
        app.state.register(run)
    app.state.unregister("r3")

    assert [run.run_id for run in live_runs(app.settings)] == ["r2", "r1"]
    assert live_runs(app.settings) == [r for r in app.state.runs() if r.run_id != "r3"]


def test_a_queue_never_used_has_no_runs_and_looking_creates_nothing(tmp_path: Path) -> None:
    assert live_runs(Settings(home=tmp_path / "fresh")) == []
    assert not (tmp_path / "fresh" / "queue.db").exists()
