"""Fixtures of the agent tests that run the real Claude CLI: the fake API, a work tree."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_api import FakeApi, cli_env


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    with FakeApi() as fake:
        for name, value in cli_env(fake.url, tmp_path / "claude-home").items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", path], check=True)
    return path
