"""The status view, rendered by rich's own recorder: what a person at the terminal reads."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

from bdp.broker.consumers import ConsumerBeat
from bdp.broker.hold import Hold
from bdp.broker.peek import ISSUE_TASK, QueuedTask
from bdp.cli.output import console
from bdp.cli.status_view import print_status, status_view
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
    assert "/logs/t-9.log" not in text  # a path cut at the edge cannot be copied: a hint instead
    assert "see what happened: bdp logs --agent t-9" in attention
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


def test_a_long_attention_list_is_cut_and_counted() -> None:
    failures = [
        RunRecord(f"r{n}", f"t-{n}", "/repo", "x", Outcome.FAILED, "no", finished=NOW - n)
        for n in range(25)
    ]

    text = rendered(report(day=failures, recent=[]))

    assert "t-0 " in text
    assert "t-9 " in text
    assert "t-10 " not in text
    assert "… and 15 more needing attention (bdp status --json lists them all)" in text


def test_the_view_shows_the_epics_in_progress_with_their_children_closed() -> None:
    epic = Issue("t-ep", "Uploader [v2]", issue_type="epic")
    children = (Issue("t-ep.1", "a", status="closed"), Issue("t-ep.2", "b"))
    text = rendered(report(epics={"/src/acme": [EpicProgress(epic, children)]}))

    assert "epics in progress" in text
    row = next(line for line in text.splitlines() if "t-ep" in line)
    for shown in ("Uploader [v2]", "1 / 2", "/src/acme"):
        assert shown in row
    assert "epics in progress" not in rendered(report())


#: Long ids, one per table (each starts differently, so a cut one is told from another).
RUNNING_ID, FAILED_ID = "alpha-frontend-k3x9.12", "bravo-frontend-k3x9.7"
QUEUED_ID, LOCKING_ID = "charlie-frontend-k3x9.3", "delta-frontend-k3x9.44"
RUN_ID = "run-0123456789ab"
LONG_TITLE = "Rewrite the uploader so that it resumes interrupted transfers " * 2


def rendered_at(status: StatusReport, width: int) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(status_view(status))
    return console.export_text()


def crowded(**more: object) -> StatusReport:
    """A report whose every table has a long id beside long, wrapping text."""
    run = Run(
        RUN_ID,
        RUNNING_ID,
        "/src/acme",
        LONG_TITLE,
        "a-long-host-name",
        7,
        "7-Worker-1",
        1,
        NOW - 125,
        NOW + 600,
        NOW - 3,
    )
    failed = RunRecord(
        "r9",
        FAILED_ID,
        "/src/acme",
        LONG_TITLE,
        Outcome.FAILED,
        LONG_TITLE,
        started=NOW - 90,
        finished=NOW - 60,
        log_path="/a/very/long/path/" * 8 + "t.log",
    )
    lock = Lock(
        "src/" + "deep/" * 12 + "file.py",
        Holder(RUN_ID, LOCKING_ID, "host", 7, NOW - 125),
        NOW - 30,
    )
    queued = [QueuedTask(ISSUE_TASK, "/src/acme", QUEUED_ID)]
    values: dict[str, object] = dict(
        runs=[run], day=[failed], recent=[failed], locks=[lock], queued_issues=queued
    )
    values.update(more)
    return report(**values)


@pytest.mark.parametrize("width", [80, 120])
def test_issue_ids_are_never_wrapped_or_cut_however_narrow_the_terminal(width: int) -> None:
    text = rendered_at(crowded(), width)

    lines = text.splitlines()
    for issue_id in (RUNNING_ID, FAILED_ID, QUEUED_ID, LOCKING_ID, RUN_ID):
        rows = [line for line in lines if issue_id[:8] in line]
        assert rows, f"{issue_id} is missing at {width} columns"
        cut = [line for line in rows if issue_id not in line]
        assert cut == [], f"{issue_id} is cut at {width} columns"
    assert all(len(line) <= width for line in lines)


def test_no_worker_running_says_how_to_start_one() -> None:
    text = rendered(report())

    assert (
        "no worker is running: start one with `bdp worker` (or `huey_consumer "
        "bdp.consumer.huey`)" in " ".join(text.split())
    )
    assert "consumers" not in text


def test_the_consumers_are_listed_with_their_workers_and_last_beat() -> None:
    consumers = [
        ConsumerBeat("box", 4242, 4, "thread", NOW - 3700, NOW - 2),
        ConsumerBeat("other", 17, 2, "process", NOW - 50, NOW - 9),
    ]

    text = rendered(report(consumers=consumers))

    assert "no worker is running" not in text
    rows = [line for line in text.splitlines() if "4242" in line or " 17 " in line]
    assert len(rows) == 2
    for shown in ("box", "4242", "4", "thread", "1h01m", "2s ago"):
        assert shown in rows[0]
    for shown in ("other", "process", "50s", "9s ago"):
        assert shown in rows[1]


def test_queued_issues_show_the_first_ten_then_a_count() -> None:
    queued = [QueuedTask(ISSUE_TASK, "/repo", f"q-{n}", attempt=1 + n % 2) for n in range(14)]

    text = rendered(report(queued_issues=queued, queued=14))

    listed = text.split("\nqueued", 1)[1]
    assert "q-0 " in listed
    assert "q-9 " in listed
    assert "q-10 " not in listed
    assert "… and 4 more queued (bdp status --json lists them all)" in text


def test_a_repo_column_appears_only_when_several_repos_share_the_queue() -> None:
    one = [QueuedTask(ISSUE_TASK, "/repo", "q-1")]
    two = [*one, QueuedTask(ISSUE_TASK, "/src/widgets", "w-1")]

    alone = rendered(report(queued_issues=one))
    shared = rendered(report(queued_issues=two))

    def headers(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("issue ")]

    assert not any(line.rstrip().endswith("repo") for line in headers(alone))
    assert all(line.rstrip().endswith("repo") for line in headers(shared))
    row = next(line for line in shared.splitlines() if "w-1" in line)
    assert row.rstrip().endswith("widgets")
    running = next(line for line in shared.splitlines() if "t-1" in line and "greeting" in line)
    assert running.rstrip().endswith("repo")  # the running table names /repo's directory too


def test_the_queued_count_covers_more_than_the_issues_status_read() -> None:
    # Given 10,000 issues queued, of which status read the next 100
    queued = [QueuedTask(ISSUE_TASK, "/repo", f"q-{n}") for n in range(100)]

    text = rendered(report(queued_issues=queued, queued=10_000))

    # Then the view lists ten and counts the rest of the whole queue
    assert "queued 10000" in text
    assert "… and 9990 more queued" in text


def test_emoji_codes_in_a_title_are_printed_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a running issue whose title holds what rich would read as an emoji code
    run = Run("run2", "t-2", "/repo", "Fix :bug: in login", "box", 8, "8-Worker-1", 1, NOW, 0, 0)

    # When status prints it on bdp's own console
    print_status(console(), report(runs=[run], activities={}))

    out = capsys.readouterr().out
    assert ":bug:" in out
    assert "\N{BUG}" not in out


def test_a_queue_two_hosts_share_shows_each_hosts_workers_runs_and_last_beat() -> None:
    # Given a consumer on each of two hosts, and a run on a third host that stopped beating
    consumers = [
        ConsumerBeat("alpha", 11, 2, "thread", NOW - 600, NOW - 2),
        ConsumerBeat("beta", 22, 4, "thread", NOW - 600, NOW - 5),
    ]
    runs = [
        Run("r2", "t-2", "app", "Two", "beta", 22, "22-Worker-1", 1, NOW - 9, NOW + 600, NOW),
        Run("r3", "t-3", "app", "Three", "gone", 33, "33-Worker-1", 1, NOW - 99, NOW, NOW - 90),
    ]
    status = report(consumers=consumers, runs=runs, activities={})

    lines = [line.split() for line in rendered(status).splitlines()]
    start = lines.index(["hosts"]) + 3  # past the title, the header and the rule
    rows = {line[0]: line[1:] for line in lines[start : start + 3]}

    assert rows["alpha"][:4] == ["1", "2", "-", "2s"]
    assert rows["beta"][:4] == ["1", "4", "t-2", "5s"]
    assert rows["gone"][:4] == ["0", "0", "t-3", "none"]
    assert [h["host"] for h in status.to_json()["hosts"]] == ["alpha", "beta", "gone"]
    assert status.to_json()["hosts"][2] == {
        "host": "gone",
        "consumers": 0,
        "workers": 0,
        "running": ["t-3"],
        "beat_age": None,
    }


def test_a_queue_one_host_serves_shows_no_hosts_table() -> None:
    status = report(consumers=[ConsumerBeat("box", 7, 2, "thread", NOW - 60, NOW - 1)])

    assert ["hosts"] not in [line.split() for line in rendered(status).splitlines()]
    assert [h["host"] for h in status.to_json()["hosts"]] == ["box"]
