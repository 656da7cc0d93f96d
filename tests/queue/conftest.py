"""Fixtures of the queue's unit tests: settings and in-process apps (`memory_apps`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.queue.app import App
from tests.queue.memory_apps import make_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60)


@pytest.fixture
def immediate_app(settings: Settings) -> App:
    return make_app(settings, immediate=True)


@pytest.fixture
def queued_app(settings: Settings) -> App:
    return make_app(settings, immediate=False)
