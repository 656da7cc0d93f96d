"""`bdp logs -f` as a real process: it follows every running run, picks up new ones, and ends
once they all have; first over runs a test registers, then over a real consumer's sessions."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.models import Run
from bdp.queue.app import App
from tests.integration.helpers import BDP, bdp, bdp_json, marker
from tests.support.beads import create_issue
from tests.support.fake_api import Delay, FakeApi, Report, ToolUse
from tests.support.processes import HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Follow:
    """`bdp logs -f ARGS...` running, its output in a file."""

    def __init__(self, env: dict[str, str], out: Path, *args: str) -> None:
        self.out = out
        with out.open("w") as sink:
            self.process = subprocess.Popen(
                [BDP, "logs", "-f", *args],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        return self.out.read_text()

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.kill()
        self.process.wait(timeout=10)


def start_run(app: App, run_id: str, issue_id: str) -> Run:
    """Register a run of this machine, as a worker does, with its log under BDP_HOME/logs."""
    logs = app.settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    now = time.time()
    log = logs / f"20261202-120000-{issue_id}-{run_id}.log"
    run = Run(
        run_id,
        issue_id,
        "/repo",
        "x",
        socket.gethostname(),
        1,
        "1-Worker-1",
        1,
        now,
        now + 600,
        now,
        log_path=str(log),
    )
    app.state.register(run)
    return run


def say(run: Run, line: str) -> None:
    with Path(run.log_path).open("a") as out:
        out.write(line + "\n")


def test_logs_follow_takes_every_run_picks_up_new_ones_and_ends_when_all_have(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    # Given two runs going, each with a line in its log
    app = App.create(Settings.from_env(broker_env))
    first, second = start_run(app, "r1", "acc-kfe"), start_run(app, "r2", "acc-7")
    say(first, "12:00:00 first started")
    say(second, "12:00:01 second started")

    # When `bdp logs -f` follows them
    follow = Follow(broker_env, tmp_path / "follow.out")
    try:
        wait_for(lambda: "second started" in follow.text(), timeout=30)
        # And a third run starts, the first writes its last line and ends
        third = start_run(app, "r3", "acc-xyz9")
        say(third, "12:00:02 third started")
        wait_for(lambda: "third started" in follow.text(), timeout=30)
        say(first, "12:00:03 first done")
        app.state.unregister("r1")
        wait_for(lambda: "first done" in follow.text(), timeout=30)
        assert follow.running()  # two runs still go

        # Then it ends by itself once the other two have ended too
        say(second, "12:00:04 second done")
        app.state.unregister("r2")
        say(third, "12:00:05 third done")
        app.state.unregister("r3")
        wait_for(lambda: not follow.running(), timeout=30)
    finally:
        follow.stop()
    assert follow.process.returncode == 0
    lines = follow.text().splitlines()
    for issue_id, words in [
        ("acc-kfe", "first started"),
        ("acc-7", "second started"),
        ("acc-xyz9", "third started"),
        ("acc-kfe", "first done"),
        ("acc-7", "second done"),
        ("acc-xyz9", "third done"),
    ]:
        assert any(line.startswith(issue_id) and line.endswith(words) for line in lines), words
    assert all(" | " in line for line in lines)


def test_logs_follow_for_one_agent_ends_when_its_run_does(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given two runs going
    app = App.create(Settings.from_env(env))
    mine, other = start_run(app, "r1", "t-1"), start_run(app, "r2", "t-2")
    say(mine, "mine says hello")
    say(other, "other says hello")

    # When one issue's run is followed and ends
    follow = Follow(env, tmp_path / "follow.out", "--agent", "t-1")
    try:
        wait_for(lambda: "mine says hello" in follow.text(), timeout=30)
        app.state.unregister("r1")
        wait_for(lambda: not follow.running(), timeout=30)
    finally:
        follow.stop()

    # Then it showed that run only, and ended though the other still runs
    assert follow.process.returncode == 0
    assert "other says" not in follow.text()
    assert app.state.has_run("r2")


def test_logs_follow_with_nothing_running_shows_the_latest_log_and_ends(
    env: dict[str, str], tmp_path: Path
) -> None:
    logs = Path(env["BDP_HOME"]) / "logs"
    logs.mkdir(parents=True)
    (logs / "20261202-120000-t-9-abc.log").write_text("12:00:00 it ended long ago\n")

    done = bdp(env, "logs", "-f", timeout=30)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "12:00:00 it ended long ago\n"
    assert "no run is running here" in done.stderr


def test_logs_follow_follows_a_real_consumers_two_sessions_until_both_end(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given two issues whose sessions write a file, then wait a few seconds before reporting
    ids = [create_issue(repo, f"Slow {n}") for n in range(2)]
    for issue_id in ids:
        fake_api.script(
            [
                ToolUse("Write", {"file_path": f"{issue_id}.txt", "content": "x\n"}),
                Delay(6, Report("DONE", f"wrote {issue_id}.txt")),
            ],
            match=marker(issue_id),
        )
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    consumer = HueyConsumer(env, tmp_path / "consumer.log", workers=2).start()
    wait_for(lambda: len(bdp_json(env, "status")["running"]) == 2, timeout=60)

    # When `bdp logs -f` follows while both sessions run
    follow = Follow(env, tmp_path / "follow.out")
    try:
        # Then it ends by itself once both runs have ended
        wait_for(lambda: not follow.running(), timeout=120)
    finally:
        follow.stop()
        consumer.stop()
    assert follow.process.returncode == 0
    assert bdp_json(env, "status")["running"] == []
    lines = follow.text().splitlines()
    for issue_id in ids:
        assert any(line.startswith(f"{issue_id} | ") for line in lines), issue_id
