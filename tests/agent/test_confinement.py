"""What an agent's shell can reach, with the real CLI, real bubblewrap and the fake API.

The sandbox lets commands write to the session's tree only; a write anywhere else fails, and
so does a connection. The "elsewhere" these tests write to is a folder of their own in the
user's cache (or the project, git-ignored), removed after each test.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bdp.agent.claude import ClaudeAgentRunner
from bdp.agent.confinement import (
    session_env,
)
from bdp.agent.mount_points import absent_placeholders, remove_placeholders
from bdp.agent.session import SessionRequest, SessionResult
from bdp.agent.transcript import Transcript
from bdp.config import Settings
from bdp.errors import ConfigError
from bdp.models import Issue, Outcome
from bdp.redact import Redactor
from bdp.repo.locks import Holder, LockTable
from bdp.repo.procs import RUN_ENV
from tests.support.fake_api import FakeApi, Text, ToolUse, cli_env

ROOT = Path(__file__).resolve().parents[2]
ISSUE = Issue(id="t-sbx", title="Confined")
REDIS_PASSWORD = "redis-pw-sandbox-42"
TOKEN = "ghp_sandboxtoken0123456789"


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    """A folder outside the temp dirs and outside the session's tree."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)  # the user's, whatever HOME says now
    path = home / ".cache" / "bdp-sandbox-tests" / uuid.uuid4().hex
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    with FakeApi() as fake:
        for name, value in cli_env(fake.url, tmp_path / "claude-home").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BDP_REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0")
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        yield fake


def request_in(tree: Path, tmp_path: Path) -> SessionRequest:
    transcript = Transcript(tmp_path / "run.log", Redactor([]))
    locks, holder = LockTable(tmp_path / "home", tree), Holder.here("run-sbx", ISSUE.id)
    return SessionRequest("run-sbx", ISSUE, tree, time.time() + 60, transcript, locks, holder)


def session(tree: Path, tmp_path: Path, command: str, api: FakeApi, **settings: object) -> str:
    """Run one session whose only tool call is ``command`` in Bash; the tool's output."""
    api.script([ToolUse("Bash", {"command": command}), Text("DONE: ran it")])
    request = request_in(tree, tmp_path)
    transcript = request.transcript
    config = Settings(home=tmp_path / "home", retry_wait=0.05, **settings)  # type: ignore[arg-type]
    try:
        result: SessionResult = ClaudeAgentRunner(config).run(request)
    finally:
        transcript.close()
    assert result.outcome is Outcome.DONE, result.summary
    return (tmp_path / "run.log").read_text()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = tmp_path / "tree"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_sandboxed_shell_writes_in_its_tree_but_nowhere_else(
    tree: Path, tmp_path: Path, api: FakeApi, elsewhere: Path
) -> None:
    # Given the sandbox on (the default)
    command = (
        f"echo inside > inside.txt; echo out > {elsewhere}/escaped.txt; "
        f"cp inside.txt {elsewhere}/copied.txt; python3 -c \"open('{elsewhere}/py.txt','w')\"; "
        f"cd .. && echo up > {elsewhere}/up.txt; echo t > {tmp_path}/beside-the-tree.txt; true"
    )

    # When the agent's shell tries to write outside its tree, in several spellings
    session(tree, tmp_path, command, api)

    # Then only the write inside the tree happened
    assert (tree / "inside.txt").read_text() == "inside\n"
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "beside-the-tree.txt").exists()
    # And the empty mount points the sandbox made in the tree are gone again
    assert sorted(p.name for p in tree.iterdir()) == [".git", "inside.txt"]


def test_placeholders_are_removed_only_when_new_and_still_empty(tmp_path: Path) -> None:
    # Given a tree that has its own package.json, before a session
    (tmp_path / "package.json").write_text("{}\n")
    absent = absent_placeholders(tmp_path)
    # When the sandbox leaves its mount points, and the session writes a real .npmrc
    (tmp_path / ".env").write_text("")
    (tmp_path / ".claude" / "agents").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / ".npmrc").write_text("registry=x\n")

    removed = remove_placeholders(tmp_path, absent)

    # Then only the new, empty ones are gone
    assert removed == [".claude", ".env"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".npmrc", "node_modules", "package.json"]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_with_the_sandbox_off_the_same_write_goes_through(
    tree: Path, tmp_path: Path, api: FakeApi, elsewhere: Path
) -> None:
    session(tree, tmp_path, f"echo out > {elsewhere}/escaped.txt", api, sandbox=False)

    assert (elsewhere / "escaped.txt").read_text() == "out\n"


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_bdps_secrets_never_reach_the_agents_shell(
    tree: Path, tmp_path: Path, api: FakeApi, sandbox: bool
) -> None:
    # When the agent dumps its environment and its parents'
    command = "env > env.txt; cat /proc/$PPID/environ > parent.txt 2>/dev/null; true"
    session(tree, tmp_path, command, api, sandbox=sandbox)

    # Then neither the Redis password nor a token is in either
    seen = (tree / "env.txt").read_text() + (tree / "parent.txt").read_text(errors="replace")
    for secret in (REDIS_PASSWORD, TOKEN):
        assert secret not in seen
    assert f"{RUN_ENV}=run-sbx" in seen  # the run's own marker stays, for its clean-up


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_sandboxed_shell_cannot_open_a_connection(
    tree: Path, tmp_path: Path, api: FakeApi
) -> None:
    # Given a server the worker itself reaches (the fake API on 127.0.0.1)
    port = urlsplit(api.url).port
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 3); print('open')"

    # When the agent's shell tries to connect to it
    session(tree, tmp_path, f'python3 -c "{probe}" > net.txt 2>&1; true', api)

    # Then the connection fails inside the sandbox
    assert "open" not in (tree / "net.txt").read_text()


def test_without_bubblewrap_a_session_is_refused_with_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    request = request_in(tmp_path, tmp_path)
    transcript = request.transcript

    result = ClaudeAgentRunner(Settings(home=tmp_path / "home")).run(request)
    transcript.close()

    assert result.outcome is Outcome.FAILED
    assert "bubblewrap" in result.summary
    assert "BDP_SANDBOX=off" in result.summary


def test_the_clis_environment_blanks_bdps_settings_and_secrets_but_keeps_what_it_needs() -> None:
    environ = {
        "BDP_REDIS_URL": "redis://:pw@host/0",
        "BDP_HOME": "/state",
        "GITHUB_TOKEN": "ghp_x",
        "MY_DB_PASSWORD": "pw",
        "ANTHROPIC_API_KEY": "sk-ant",
        "PATH": "/usr/bin",
        RUN_ENV: "stale",
    }

    env = session_env("run-1", environ)

    assert env == {
        RUN_ENV: "run-1",
        "BDP_REDIS_URL": "",
        "BDP_HOME": "",
        "GITHUB_TOKEN": "",
        "MY_DB_PASSWORD": "",
    }


@pytest.mark.parametrize("value", ["yes", "1", "disabled"])
def test_bdp_sandbox_takes_on_or_off_and_names_them(value: str) -> None:
    with pytest.raises(ConfigError, match="BDP_SANDBOX=on or BDP_SANDBOX=off"):
        Settings.from_env({"BDP_SANDBOX": value})


def test_bdp_sandbox_off_turns_it_off() -> None:
    assert Settings.from_env({"BDP_SANDBOX": "off"}).sandbox is False
    assert Settings.from_env({}).sandbox is True


def _sleepers(marker: str) -> list[int]:
    """Live processes whose command line carries ``marker``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "unsandboxed"])
def test_a_process_the_agent_detaches_does_not_outlive_its_session(
    tree: Path, tmp_path: Path, api: FakeApi, sandbox: bool
) -> None:
    # Given an agent that starts a detached background process, dropping bdp's run marker
    seconds = f"4242.{int(sandbox)}"  # a sleep no other process on this machine runs

    # When its Bash command returns and the session ends
    session(
        tree,
        tmp_path,
        f"(env -u BDP_RUN_ID setsid sleep {seconds} >/dev/null 2>&1 &); sleep 1; echo started",
        api,
        sandbox=sandbox,
    )

    # Then no such process is left: the sandbox's PID namespace ended with the command, and
    # without a sandbox the CLI's supervisor adopted the orphan and ended it with the session
    left = _sleepers(f"sleep\0{seconds}")
    for pid in left:  # never leave it behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert left == []
