"""`bdp status --watch`: fitted to the terminal, or a plain snapshot per interval when piped."""

from __future__ import annotations

import io
import time

from rich.console import Console

from bdp.broker.consumers import ConsumerBeat
from bdp.broker.peek import ISSUE_TASK, QueuedTask
from bdp.cli.status_watch import fitted, watch_status
from bdp.models import Outcome, Run, RunRecord
from bdp.ops.status import StatusReport
from tests.cli.test_status_view import report

NOW = time.time()


def busy() -> StatusReport:
    """A queue far taller than a terminal: 30 running, 40 queued, 20 needing attention."""
    runs = [
        Run(
            f"run{n}",
            f"t-{n}",
            "/repo",
            f"Task {n}",
            "box",
            7,
            f"7-Worker-{n}",
            1,
            NOW - 100,
            NOW + 600,
            NOW - 1,
        )
        for n in range(30)
    ]
    failed = [
        RunRecord(f"f{n}", f"f-{n}", "/repo", "x", Outcome.FAILED, "no", finished=NOW - n)
        for n in range(20)
    ]
    queued = [QueuedTask(ISSUE_TASK, "/repo", f"q-{n}") for n in range(40)]
    consumers = [ConsumerBeat("box", 100 + n, 10, "thread", NOW - 60, NOW - 1) for n in range(3)]
    return report(
        runs=runs,
        day=failed,
        recent=failed[:10],
        queued_issues=queued,
        queued=40,
        consumers=consumers,
        locks=[],
    )


def screen(width: int, height: int) -> Console:
    return Console(width=width, height=height, color_system=None, record=True)


def test_the_live_view_fits_a_small_terminal_and_counts_what_it_left_out() -> None:
    # Given a queue far taller than an 80x24 terminal
    console = screen(80, 24)

    # When the view is fitted to it
    console.print(fitted(console, busy()))
    lines = console.export_text().splitlines()

    # Then it is no taller than the terminal (a line left for the cursor), the headline and
    # the consumers are still there, and the cut lists say how much they left out
    assert len(lines) <= 23
    text = "\n".join(lines)
    assert "queued 40" in text
    assert "running 30" in text
    assert "consumers" in text
    assert "… and" in text
    assert "more running" in text


def test_a_taller_terminal_shows_more_rows_and_still_fits() -> None:
    small, tall = screen(160, 24), screen(160, 48)

    for console in (small, tall):
        console.print(fitted(console, busy()))
    small_lines = small.export_text().splitlines()
    tall_lines = tall.export_text().splitlines()

    assert len(tall_lines) <= 47
    assert len(small_lines) < len(tall_lines)

    def rows(lines: list[str]) -> int:
        return sum(line.startswith(("t-", "q-", "f-")) for line in lines)

    assert rows(tall_lines) > rows(small_lines)
    assert any(line.startswith("f-0") for line in tall_lines)  # a list let go comes back


def test_a_view_that_fits_is_left_whole() -> None:
    console = screen(200, 200)

    console.print(fitted(console, report(queued=0)))

    assert "… and" not in console.export_text()


def test_piped_watch_prints_a_plain_snapshot_every_interval() -> None:
    # Given a console that is not a terminal (stdout piped to a file)
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    calls: list[int] = []

    def collect() -> StatusReport:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return report(queued=100 - len(calls))

    # When --watch runs until Ctrl-C
    watch_status(console, collect, interval=0.01)

    # Then each interval printed its own snapshot, in plain text
    text = out.getvalue()
    assert text.count("--- bdp status at ") == 2
    assert "queued 99" in text
    assert "queued 98" in text
    assert "\x1b[" not in text


def test_the_live_view_redraws_with_fresh_numbers_until_ctrl_c() -> None:
    # Given a collector whose queue drains a little more on every refresh
    console = Console(record=True, width=200, color_system=None, force_terminal=True)
    calls: list[int] = []

    def collect() -> StatusReport:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return report(queued=100 - len(calls))

    # When the live view runs
    watch_status(console, collect, interval=0.01)

    # Then each refresh showed the newer depth, and Ctrl-C ended it without an error
    text = console.export_text()
    assert "queued 99" in text
    assert "queued 97" in text
    assert len(calls) == 4
