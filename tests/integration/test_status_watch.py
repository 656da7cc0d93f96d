"""`bdp status --watch` in a real terminal: tmux runs it, the test reads the screen and
presses Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.models import Activity, Run, TaskArgs
from bdp.queue.app import App
from tests.integration.helpers import BDP
from tests.support.processes import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Terminal:
    """A private tmux server (its own socket) running one command in a 160x50 pane."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.socket = f"bdp-test-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env
        self.conf = tmp_path / "tmux.conf"
        self.conf.write_text("set -g remain-on-exit on\n")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return done.stdout

    def start(self, command: str, width: int = 160, height: int = 50) -> None:
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def pane(self, field: str) -> str:
        """A tmux format field of the pane, e.g. ``pane_dead``."""
        return self.tmux("display-message", "-p", "-t", "t", f"#{{{field}}}").strip()

    def stop(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=20,
            check=False,
        )


@pytest.fixture
def terminal(tmp_path: Path, env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(tmp_path, {**env, "TERM": "xterm-256color", "COLUMNS": "160"})
    yield term
    term.stop()


def test_the_live_view_follows_the_queue_and_leaves_cleanly_on_ctrl_c(
    terminal: Terminal, env: dict[str, str]
) -> None:
    # Given `bdp status --watch` running in a terminal over an idle queue
    app = App.create(Settings.from_env(env))
    terminal.start(f"{BDP} status --watch --interval 0.3s; echo bdp-exit=$?")
    wait_for(lambda: "running 0" in terminal.screen(), timeout=30)

    # When an agent starts and publishes what it is doing
    now = time.time()
    app.state.register(
        Run(
            "run1", "t-7", "/repo", "Add a greeting", "box", 1, "1-Worker-1", 1, now, now + 600, now
        )
    )
    app.state.report_activity("run1", Activity("Edit greet.py", 3, 4000, 500, 0.0421, now))

    # Then the screen shows it on a following refresh, without a restart
    wait_for(lambda: "Edit greet.py" in terminal.screen(), timeout=20)
    screen = terminal.screen()
    assert "running 1" in screen
    assert "$0.0421" in screen
    assert "4,500" in screen

    # And Ctrl-C ends it at once, with status 0 and no traceback
    terminal.tmux("send-keys", "-t", "t", "C-c")
    wait_for(lambda: terminal.pane("pane_dead") == "1", timeout=20)
    screen = terminal.screen()
    assert "bdp-exit=0" in screen
    assert "Traceback" not in screen
    assert "Edit greet.py" in screen  # the last view stays on the screen


@pytest.fixture
def small_terminal(tmp_path: Path, env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(tmp_path, {**env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"})
    yield term
    term.stop()


def test_the_live_view_fits_an_80_by_24_terminal_with_ids_whole(
    small_terminal: Terminal, env: dict[str, str]
) -> None:
    terminal = small_terminal
    # Given a queue far taller than the terminal: 30 agents running, 40 issues queued
    app = App.create(Settings.from_env(env))
    now = time.time()
    for n in range(30):
        run = Run(
            f"run{n}",
            f"proj-frontend-{n:03d}",
            "/repo",
            f"Task {n} " * 8,
            "box",
            1,
            f"1-Worker-{n}",
            1,
            now,
            now + 600,
            now,
        )
        app.state.register(run)
    for n in range(40):
        app.huey.enqueue(app.tasks.queue(TaskArgs("/repo", f"proj-backend-{n:03d}")))

    # When the live view runs at 80x24
    terminal.start(f"{BDP} status --watch --interval 0.3s", width=80, height=24)
    wait_for(lambda: "running 30" in terminal.screen(), timeout=30)

    # Then the headline stays on the screen, lists are cut and counted, ids are whole
    lines = terminal.screen().rstrip("\n").split("\n")
    assert len(lines) <= 24
    assert lines[0].startswith("broker")
    assert any("queued 40" in line for line in lines[1:4])
    assert "… and" in "\n".join(lines)
    shown = [line.split()[0] for line in lines if line.startswith("proj-")]
    assert shown
    assert all(re.fullmatch(r"proj-(frontend|backend)-\d{3}", word) for word in shown)


def test_watch_piped_to_a_file_writes_a_plain_snapshot_every_interval(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given `bdp status --watch` writing to a file instead of a terminal
    out = tmp_path / "watch.txt"
    with out.open("w") as sink:
        watcher = subprocess.Popen(
            [BDP, "status", "--watch", "--interval", "0.2s"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # Then snapshots keep coming, each with its time and the headline
        wait_for(lambda: out.read_text().count("--- bdp status at ") >= 3, timeout=30)
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=20) == 0
    text = out.read_text()
    assert text.count("queued 0") >= 3
    assert "\x1b[" not in text  # plain text, no terminal codes
    assert "Traceback" not in text
