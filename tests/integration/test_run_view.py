"""`bdp run` in a real terminal (tmux) at 80x24 and 160x48: a live panel that shows each
running agent with its full issue id and fits the screen, then the summary and next steps;
piped, one line per event.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import BDP, bdp, marker
from tests.support.beads import create_issue
from tests.support.fake_api import Delay, FakeApi, Report, ToolUse
from tests.support.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Terminal:
    """A detached tmux session of a given size running one command, on a private server."""

    def __init__(self, tmp_path: Path, width: int, height: int) -> None:
        self.socket = f"bdp-test-{uuid.uuid4().hex[:8]}"
        self.size = (width, height)
        self.done = tmp_path / "exit-status"

    def run(self, env: dict[str, str], argv: list[str]) -> None:
        exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
        command = f"env -i {exports} {shlex.join(argv)}; echo $? > {self.done}; sleep 600"
        width, height = self.size
        self._tmux("new-session", "-d", "-x", str(width), "-y", str(height), command)

    def screen(self) -> list[str]:
        return self._tmux("capture-pane", "-p").rstrip("\n").split("\n")

    def exit_status(self) -> int | None:
        text = self.done.read_text().strip() if self.done.exists() else ""
        return int(text) if text else None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout


@pytest.fixture
def terminal(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal tests: apt-get install tmux (.ci/run does)")
    width, height = request.param
    term = Terminal(tmp_path, width, height)
    try:
        yield term
    finally:
        term.close()


def slow_issue(api: FakeApi, issue_id: str, seconds: float) -> None:
    """The session writes a file, then takes ``seconds`` before reporting DONE."""
    write = ToolUse("Write", {"file_path": f"{issue_id}.md", "content": "done\n"})
    api.script(
        [write, Delay(seconds, Report("DONE", f"wrote {issue_id}.md"))], match=marker(issue_id)
    )


@pytest.mark.parametrize(
    "terminal",
    [  # the narrow terminal is the hard case; the wide one runs with the soak
        pytest.param((80, 24), id="80x24"),
        pytest.param((160, 48), id="160x48", marks=pytest.mark.soak),
    ],
    indirect=True,
)
def test_the_live_panel_shows_each_running_agent_and_fits_the_terminal(
    env: dict[str, str], repo: Path, fake_api: FakeApi, terminal: Terminal
) -> None:
    # Given three issues with long ids (a long prefix) whose sessions take a few seconds
    ids = [create_issue(repo, f"Item {n} with a title long enough to be cut") for n in range(3)]
    for issue_id in ids:
        slow_issue(fake_api, issue_id, 6)

    # When `bdp run` works them with three agents in a terminal
    terminal.run(env, [BDP, "run", str(repo), "-n", "3"])

    # Then while they run, the panel names every running agent by its whole id and fits
    width, height = terminal.size

    def panel_shows_all() -> bool:
        screen = "\n".join(terminal.screen())
        return "3 running" in screen and all(issue_id in screen for issue_id in ids)

    wait_for(panel_shows_all, timeout=60)
    screen = terminal.screen()
    assert len(screen) <= height
    assert all(len(line) <= width for line in screen)
    headline = next(line for line in screen if line.startswith("bdp run"))
    assert "0/3 done" in headline
    # And at the end the summary counts them all, says what they used, and exits 0
    wait_for(lambda: terminal.exit_status() is not None, timeout=90)
    final = "\n".join(terminal.screen())
    assert "3 issues: 3 closed (3 DONE), 0 failed, 0 need attention" in final
    assert "3 runs in" in final
    assert terminal.exit_status() == 0


def test_piped_output_is_one_line_per_event_then_the_summary(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    first, second = create_issue(repo, "First"), create_issue(repo, "Second")
    slow_issue(fake_api, first, 0)
    slow_issue(fake_api, second, 0)

    done = bdp(env, "run", str(repo), "-n", "1", timeout=150)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for issue_id in (first, second):
        assert [ln for ln in lines if " started " in ln and issue_id in ln]
        assert [ln for ln in lines if " DONE " in ln and issue_id in ln]
    assert "\x1b[" not in done.stdout  # no cursor movement or colour codes when piped
    assert "2 issues: 2 closed (2 DONE)" in done.stdout
