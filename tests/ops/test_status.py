"""`bdp status` reads the broker without Huey: it must see exactly what Huey and State wrote."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.agent.session import StubAgentRunner
from bdp.broker.claims import RedisClaims
from bdp.broker.consumers import ConsumerBeat, Consumers
from bdp.broker.keys import LAST_SWEEP_KEY
from bdp.config import Settings
from bdp.models import Activity, Outcome, Run, RunRecord, TaskArgs
from bdp.ops.queued import LISTED
from bdp.ops.status import collect_status
from bdp.queue.app import App
from bdp.repo import known_repos
from bdp.repo.lock_records import Holder
from bdp.repo.lock_table import Locks
from bdp.repo.locks import LockTable
from bdp.repo.shared_locks import SharedLockTable
from tests.support.beads import bd_calls, create_issue, run_bd_ok
from tests.support.secrets import SECRET


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = Settings(home=tmp_path / "home", redis_url=url, secret=SECRET, queue="st.atus-q")
    app = App.create(settings, agent=lambda s: StubAgentRunner())
    yield app
    if url:
        app.huey.storage.pool.disconnect()


def record(n: int) -> RunRecord:
    return RunRecord(
        f"r{n}",
        f"t-{n}",
        "/repo",
        f"Issue {n}",
        Outcome.DONE,
        "ok",
        started=1000.0 + n,
        finished=2000.0 + n,
        cost_usd=0.01 * n,
    )


def test_status_matches_what_huey_and_the_state_hold(app: App) -> None:
    # Given queued and scheduled tasks, two runs with heartbeats, outcomes and a sweep
    for n in range(7):
        app.tasks.run_issue(TaskArgs("/repo", f"t-{n}").to_task())
    retry = app.tasks.run_issue.s("/repo", "t-later", 1)
    retry.eta = datetime.datetime.now() + datetime.timedelta(hours=1)
    app.huey.add_schedule(retry)
    now = time.time()
    for n in (2, 1):
        app.state.register(
            Run(f"run{n}", f"t-{n}", "/repo", "x", "h", 1, "w", 1, now - n, now + 60, now - 30)
        )
    app.state.beat("run1", now)
    for n in range(15):
        app.state.record(record(n))
    app.state.put_meta(LAST_SWEEP_KEY, {"at": now, "reset": ["t-9"]})

    # When status reads the broker directly
    report = collect_status(app.settings, recent=10)

    # Then it agrees with Huey's own counts and bdp's state
    assert (report.queued, report.scheduled) == (app.huey.pending_count(), 1)
    assert report.queued == 7
    assert app.huey.scheduled_count() == 1
    assert [(r.run_id, r.heartbeat) for r in report.runs] == [
        (r.run_id, r.heartbeat) for r in app.state.runs()
    ]
    assert report.runs[1].heartbeat == now  # the beat, not the registered value
    assert report.recent == app.state.outcomes(limit=10)
    assert [r.run_id for r in report.recent] == [f"r{n}" for n in range(5, 15)]
    assert report.last_sweep == {"at": now, "reset": ["t-9"]}


def test_status_of_a_queue_never_used_is_empty(tmp_path: Path) -> None:
    report = collect_status(Settings(home=tmp_path / "fresh"))

    assert (report.queued, report.scheduled, report.runs, report.recent) == (0, 0, [], [])
    assert not (tmp_path / "fresh" / "queue.db").exists()  # looking creates nothing


def test_status_shows_live_progress_holds_spending_and_what_needs_attention(app: App) -> None:
    # Given a running run with published progress, a pause, spending and a day of outcomes
    now = time.time()
    app.state.register(Run("run1", "t-1", "/repo", "x", "h", 1, "w", 1, now, now + 60, now))
    app.state.report_activity("run1", Activity("Edit src/a.py", 4, 1200, 300, 0.25, now))
    app.state.set_pause({"until": now + 600, "reason": "usage limit", "since": now})
    day = [
        ("t-2", Outcome.FAILED),
        ("t-3", Outcome.DONE),
        ("t-2", Outcome.DONE),
        ("t-4", Outcome.BLOCKED),
        ("t-5", Outcome.OVER_BUDGET),
    ]
    for n, (issue, outcome) in enumerate(day):
        app.state.record(
            RunRecord(
                f"d{n}",
                issue,
                "/repo",
                "x",
                outcome,
                "s",
                started=now - 100 + n,
                finished=now - 50 + n,
                cost_usd=0.5,
            )
        )
    app.state.record(record(1))  # long ago: in no daily total

    report = collect_status(app.settings, recent=3)

    # Then the activity, the pause and the spending read back as written
    assert report.activity(report.runs[0]) == Activity("Edit src/a.py", 4, 1200, 300, 0.25, now)
    assert report.hold is not None
    assert report.hold.kind == "paused"
    assert report.hold.until == now + 600
    assert report.spent_usd == pytest.approx(2.51)  # 5 x 0.5 + the old 0.01
    assert len(report.recent) == 3
    # And the day's totals and the issues whose latest outcome needs a person
    midnight_ok = time.localtime(now - 100).tm_yday == time.localtime(now).tm_yday
    if midnight_ok:
        assert report.today() == {"closed": 2, "blocked": 1, "failed": 2, "spent_usd": 2.5}
    assert [r.issue_id for r in report.attention()] == ["t-5", "t-4"]  # t-2 was done later
    data = report.to_json()
    assert data["hold"]["kind"] == "paused"
    assert data["running"][0]["progress"]["tool"] == "Edit src/a.py"
    assert [r["issue_id"] for r in data["attention"]] == ["t-5", "t-4"]


def test_a_spent_budget_shows_as_a_hold_in_status(app: App, tmp_path: Path) -> None:
    app.state.record(record(100))  # $1.00
    settings = Settings(
        home=app.settings.home,
        redis_url=app.settings.redis_url,
        queue=app.settings.queue,
        budget_usd=0.5,
    )

    report = collect_status(settings)

    assert report.hold is not None
    assert report.hold.kind == "budget"
    assert (report.spent_usd, report.budget_usd) == (1.0, 0.5)


# --- epics in progress --------------------------------------------------------------------------


@pytest.mark.usefixtures("stand_in_bd")
def test_status_shows_each_known_repos_epics_in_progress_in_one_bd_call_per_repo(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a repo bdp knows with an epic half done, an epic done and closed, a childless one
    settings = Settings(home=tmp_path / "home")
    known_repos.remember(settings.home, str(repo))
    known_repos.remember(settings.home, str(tmp_path / "another-machines-clone"))
    epic = create_issue(repo, "Uploader", type="epic")
    run_bd_ok(repo, "close", create_issue(repo, "Retry", parent=epic))
    create_issue(repo, "Backoff", parent=epic)
    old = create_issue(repo, "Old", type="epic")
    run_bd_ok(repo, "close", create_issue(repo, "Old part", parent=old))
    run_bd_ok(repo, "close", old)
    create_issue(repo, "Someday", type="epic")
    log = tmp_path / "bd.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(log))

    # When status is collected
    report = collect_status(settings).to_json()

    # Then it shows the open epic with children, done of total, from one bd call
    assert report["epics"] == [
        {"repo": str(repo), "id": epic, "title": "Uploader", "done": 1, "total": 2}
    ]
    assert len(bd_calls(log)) == 1


def test_a_repo_whose_bd_fails_is_left_out_of_status(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", bd=str(tmp_path / "no-such-bd"))
    known_repos.remember(settings.home, str(tmp_path))

    assert collect_status(settings).epics == {}


def test_status_counts_queued_issues_in_the_order_workers_take_them_never_the_janitor(
    app: App,
) -> None:
    # Given three issues queued around a janitor task left on the queue
    for issue_id in ("t-1", "t-2"):
        app.huey.enqueue(app.tasks.queue(TaskArgs("/repo", issue_id)))
    app.huey.enqueue(app.tasks.janitor.s())
    app.huey.enqueue(app.tasks.queue(TaskArgs("/other", "o-3", attempt=2)))

    # When status reads the broker
    report = collect_status(app.settings)

    # Then the janitor is not a queued issue, and the issues are listed as they will run
    assert app.huey.pending_count() == 4
    assert report.queued == 3
    assert [(t.repo, t.issue_id, t.attempt) for t in report.queued_issues] == [
        ("/repo", "t-1", 1),
        ("/repo", "t-2", 1),
        ("/other", "o-3", 2),
    ]
    assert report.to_json()["queued_issues"][2] == {
        "issue_id": "o-3",
        "repo": "/other",
        "attempt": 2,
    }
    assert report.repos() == ["/other", "/repo"]


def test_status_lists_the_consumers_still_beating_and_not_the_silent_ones(app: App) -> None:
    # Given one consumer beating and one silent for longer than BDP_STALE_AFTER
    now = time.time()
    consumers = Consumers(app.huey)
    consumers.beat(ConsumerBeat("box", 11, 4, "thread", now - 300, now - 2))
    stale = now - app.settings.stale_after - 5
    consumers.beat(ConsumerBeat("gone", 12, 2, "process", stale, stale))

    # When status reads the broker
    report = collect_status(app.settings)

    # Then only the live one is listed, with the age of its beat
    assert [(c.host, c.pid, c.workers, c.kind) for c in report.consumers] == [
        ("box", 11, 4, "thread")
    ]
    [shown] = report.to_json()["consumers"]
    assert shown["host"] == "box"
    assert 1.5 <= shown["beat_age"] <= 10


def test_status_counts_every_queued_issue_but_reads_only_the_next_ones(app: App) -> None:
    # Given more issues queued than status lists
    for n in range(LISTED + 5):
        app.huey.enqueue(app.tasks.queue(TaskArgs("/repo", f"t-{n}")))

    # When status reads the broker
    report = collect_status(app.settings)

    # Then the count is whole and the list holds the next LISTED, in order
    assert report.queued == LISTED + 5
    assert [t.issue_id for t in report.queued_issues] == [f"t-{n}" for n in range(LISTED)]


def test_status_lists_the_locks_held_where_the_queue_keeps_them(app: App, tmp_path: Path) -> None:
    # Given a run holding a lock: on Redis in the table every machine shares, else in files
    tree = tmp_path / "tree"
    tree.mkdir()
    claims = app.claims
    if isinstance(claims, RedisClaims):
        table: Locks = SharedLockTable(claims.client, claims.prefix, "app", tree)
    else:
        table = LockTable(app.settings.home, tree)
    table.acquire(["src/a.py"], Holder("run-1", "t-1", "beta", 7, 1.0))

    locks = collect_status(app.settings).locks

    assert [(lock.path, lock.holder.run_id, lock.holder.host) for lock in locks] == [
        ("src/a.py", "run-1", "beta")
    ]
