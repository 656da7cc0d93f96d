"""The status view, rendered by rich's own recorder: what a person at the terminal reads."""

from __future__ import annotations

import time

from rich.console import Console

from bdp.broker.hold import Hold
from bdp.cli.render import live_status, status_view
from bdp.models import Activity, Issue, Outcome, Run, RunRecord
from bdp.ops.status import StatusReport
from bdp.repo.epics import EpicProgress
from bdp.repo.locks import Holder, Lock

NOW = time.time()


def report(**more: object) -> StatusReport:
    run = Run(
        "run1",
        "t-1",
        "/repo",
        "Add a greeting",
        "box",
        7,
        "7-Worker-1",
        1,
        NOW - 125,
        NOW + 600,
        NOW - 3,
    )
    failed = RunRecord(
        "r9",
        "t-9",
        "/repo",
        "Fix [bold] parser",
        Outcome.FAILED,
        "gate failed: [red]pytest[/red]",
        attempt=2,
        started=NOW - 90,
        finished=NOW - 60,
        cost_usd=0.4,
        log_path="/logs/t-9.log",
    )
    done = RunRecord(
        "r8",
        "t-8",
        "/repo",
        "Docs",
        Outcome.DONE,
        "wrote docs",
        started=NOW - 80,
        finished=NOW - 70,
        cost_usd=0.1,
    )
    lock = Lock("src/app.py", Holder("run1", "t-1", "box", 7, NOW - 125), NOW - 30)
    values: dict[str, object] = dict(
        broker="redis://:***@127.0.0.1:6390/0",
        queued=12,
        scheduled=3,
        runs=[run],
        recent=[failed, done],
        locks=[lock],
        now=NOW,
        day=[failed, done],
        spent_usd=1.5,
        budget_usd=20.0,
        activities={"run1": Activity("Edit src/app.py", 7, 9000, 1500, 0.3456, NOW - 1)},
        last_sweep={
            "at": NOW - 40,
            "host": "box",
            "freed_locks": ["a"],
            "reset": [],
            "requeued": [],
            "cleared_markers": [],
        },
    )
    values.update(more)
    return StatusReport(**values)  # type: ignore[arg-type]


def rendered(status: StatusReport) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(status_view(status))
    return console.export_text()


def test_the_view_shows_each_running_agents_live_numbers() -> None:
    text = rendered(report())

    row = next(line for line in text.splitlines() if "t-1" in line and "Add a greeting" in line)
    for shown in (
        "box/7-Worker-1",
        "2m05s",
        "Edit src/app.py",
        " 7 ",
        "10,500",
        "$0.3456",
        "3s ago",
    ):
        assert shown in row
    assert "queued 12   scheduled 3   running 1   spent $1.50 of $20.00" in text


def test_the_view_shows_locks_attention_totals_recent_outcomes_and_the_janitor() -> None:
    text = rendered(report())

    assert "src/app.py" in text
    assert "30s" in text
    assert "needs attention" in text
    attention = text.split("needs attention", 1)[1].split("recent outcomes", 1)[0]
    assert "t-9" in attention
    assert "/logs/t-9.log" in attention
    assert "t-8" not in attention
    assert "gate failed: [red]pytest[/red]" in text  # markup in summaries is shown, not applied
    assert "today 1 closed, 0 blocked, 1 failed, $0.50" in text
    assert "janitor last sweep 40s ago on box: freed 1 locks" in text


def test_the_view_says_why_no_session_starts() -> None:
    paused = rendered(report(hold=Hold("paused", "usage limit", NOW + 3600)))
    spent = rendered(report(hold=Hold("budget", "queue budget spent: $20.00 of $20.00")))

    assert "HOLD: paused until" in paused
    assert "usage limit" in paused
    assert "HOLD: queue budget spent: $20.00 of $20.00; no new session starts" in spent
    assert "HOLD" not in rendered(report())


def test_the_view_warns_when_agents_run_without_the_sandbox() -> None:
    assert "SANDBOX OFF (BDP_SANDBOX=off)" in rendered(report(sandbox=False))
    assert "SANDBOX" not in rendered(report())


def test_an_idle_queue_renders_without_tables() -> None:
    empty = StatusReport("sqlite:/x/queue.db", 0, 0, [], [], now=NOW)

    text = rendered(empty)

    assert "queued 0" in text
    assert "running 0" in text
    assert "needs attention" not in text
    assert "running\n" not in text


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
    live_status(console, collect, interval=0.01)

    # Then each refresh showed the newer depth, and Ctrl-C ended it without an error
    text = console.export_text()
    assert "queued 99" in text
    assert "queued 97" in text
    assert len(calls) == 4


def test_a_long_attention_list_is_cut_and_counted() -> None:
    failures = [
        RunRecord(f"r{n}", f"t-{n}", "/repo", "x", Outcome.FAILED, "no", finished=NOW - n)
        for n in range(25)
    ]

    text = rendered(report(day=failures, recent=[]))

    assert "t-0 " in text
    assert "t-9 " in text
    assert "t-10 " not in text
    assert "… and 15 more (bdp status --json lists them all)" in text


def test_the_view_shows_the_epics_in_progress_with_their_children_closed() -> None:
    epic = Issue("t-ep", "Uploader [v2]", issue_type="epic")
    children = (Issue("t-ep.1", "a", status="closed"), Issue("t-ep.2", "b"))
    text = rendered(report(epics={"/src/acme": [EpicProgress(epic, children)]}))

    assert "epics in progress" in text
    row = next(line for line in text.splitlines() if "t-ep" in line)
    for shown in ("Uploader [v2]", "1 / 2", "/src/acme"):
        assert shown in row
    assert "epics in progress" not in rendered(report())
