"""`bdp status --watch` in a real terminal: tmux runs it, the test reads the screen and
presses Ctrl-C."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.config import Settings
from bdp.models import Activity, Run
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

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", command)

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
