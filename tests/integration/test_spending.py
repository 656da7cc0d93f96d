"""Spending and pausing on real parts: per-issue and queue budgets, usage-limit pauses and
BDP_NOTIFY, with huey_consumer workers, the stand-in bd and the real Claude CLI pricing the
fake Messages API's usage numbers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bdp.agent.prompt import CONTINUE
from bdp.config import Settings
from bdp.queue.app import App
from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, first_turns, marker, script_write_then_done
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, Report, Status, Text, ToolUse
from tests.support.processes import HueyConsumer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

#: Usage that the CLI prices at about $0.44 a model request (its default model's prices).
COSTLY = {"input_tokens": 100_000, "output_tokens": 2_000}


def start_consumer(
    env: dict[str, str], tmp_path: Path, name: str, workers: int = 1
) -> HueyConsumer:
    return HueyConsumer(env, tmp_path / f"{name}.log", workers=workers).start()


def recent(env: dict[str, str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = bdp_json(env, "status")["recent"]
    return records


def outcomes_of(env: dict[str, str], issue_id: str) -> list[str]:
    return [r["outcome"] for r in recent(env) if r["issue_id"] == issue_id]


def comments(repo: Path, issue_id: str) -> str:
    return run_bd_ok(repo, "comments", issue_id, "--json")


def commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s").splitlines()


def write_many(api: FakeApi, issue_id: str, turns: int) -> None:
    """A session that would write a file on each of ``turns`` turns before saying DONE."""
    steps: list[Any] = [
        ToolUse("Write", {"file_path": f"part{n}.txt", "content": f"part {n}\n"})
        for n in range(turns)
    ]
    api.script([*steps, Text("DONE: wrote every part")], match=marker(issue_id))


def wait_until_warm(consumer: HueyConsumer) -> None:
    """Until the worker has built its dependencies and takes tasks: its first sweep ran."""

    def swept() -> bool:
        lines = consumer.output().splitlines()
        return any("bdp.tasks.janitor" in line and "executed in" in line for line in lines)

    wait_for(swept, timeout=30)


@contextmanager
def broker(env: dict[str, str]) -> Iterator[App]:
    """bdp's own view of the test's broker, to read what status does not show."""
    app = App.create(Settings.from_env(env))
    _ = app.tasks  # registered, so Huey can read the queued and scheduled tasks
    try:
        yield app
    finally:
        if app.settings.redis_url:
            app.huey.storage.pool.disconnect()


# -- per-issue budget ---------------------------------------------------------------------


def test_a_session_over_its_issue_budget_is_stopped_by_the_cli_and_reset(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a $1 BDP_MAX_COST_PER_ISSUE and a session scripted for 20 writes, each turn
    # priced at about $0.44
    fake_api.input_tokens, fake_api.output_tokens = COSTLY["input_tokens"], COSTLY["output_tokens"]
    capped = {**env, "BDP_MAX_COST_PER_ISSUE": "1.0"}
    issue_id = create_issue(repo, "Expensive change")
    write_many(fake_api, issue_id, 20)

    # When a consumer works on it
    assert bdp(capped, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(capped, tmp_path, "consumer")
    wait_for(lambda: outcomes_of(capped, issue_id), timeout=60)

    # Then the CLI stopped it soon after $1, and bdp reset the issue with what it cost
    [record] = recent(capped)
    assert record["outcome"] == "OVER_BUDGET"
    assert 1.0 < record["cost_usd"] < 2.0
    assert record["attempt"] == 1
    requests = len(fake_api.messages_requests(match=marker(issue_id)))
    assert requests <= 4  # of 21 scripted
    issue = show_issue(repo, issue_id)
    assert issue["status"] == "open"
    assert not issue.get("assignee")
    notes = comments(repo, issue_id)
    assert "OVER_BUDGET on attempt 1" in notes
    assert f"${record['cost_usd']:.4f}" in notes
    assert commits(repo) == ["initial"]
    assert bdp_json(capped, "status")["spent_usd"] == pytest.approx(record["cost_usd"])

    # And queued again with a budget of its own, below what its attempt cost
    assert bdp(capped, "enqueue", str(repo), "--max-cost-per-issue", "1.2").returncode == 0
    wait_for(lambda: len(outcomes_of(capped, issue_id)) == 2, timeout=30)
    consumer.stop()

    # It ends OVER_BUDGET at once, without a session: the issue's attempts count together
    second = recent(capped)[-1]
    assert second["outcome"] == "OVER_BUDGET"
    assert second["cost_usd"] == 0
    assert "its budget is $1.20" in second["summary"]  # the task's own budget won
    assert len(fake_api.messages_requests(match=marker(issue_id))) == requests
    assert show_issue(repo, issue_id)["status"] == "open"
    assert commits(repo) == ["initial"]


def test_a_continued_issue_counts_each_request_once_per_run_per_issue_and_in_the_queue(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given sessions allowed two turns, for work that takes three model requests
    issue_id = create_issue(repo, "Big change")
    writes = [ToolUse("Write", {"file_path": f"part{n}.txt", "content": f"{n}\n"}) for n in (1, 2)]
    fake_api.script([*writes, Report("DONE", "both parts")], match=marker(issue_id))
    short = {**env, "BDP_MAX_TURNS": "2"}

    # When `bdp run` works on it: a session that runs out of turns, then its continuation
    done = bdp(short, "run", str(repo), "--json")
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)

    # Then each run's cost is its own requests' (the fake API's usage is the same for each)
    requests = fake_api.messages_requests(match=marker(issue_id))
    resumed = sum(1 for r in requests if CONTINUE in json.dumps(r.body))
    price = first["cost_usd"] / (len(requests) - resumed)
    assert (first["outcome"], second["outcome"], resumed) == ("UNFINISHED", "DONE", 1)
    assert second["cost_usd"] == pytest.approx(resumed * price)
    # And the issue's cost and the queue's spending count every request once
    total = len(requests) * price
    with broker(short) as app:
        assert app.state.issue_cost(first["repo"], issue_id) == pytest.approx(total, abs=1e-6)
    assert bdp_json(short, "status")["spent_usd"] == pytest.approx(total)


# -- queue budget -------------------------------------------------------------------------


def test_a_spent_queue_budget_holds_the_other_issues_until_it_is_raised(
    env: dict[str, str], redis_url: str, repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given three issues, sessions costing more than the queue's $0.05 budget each
    fake_api.input_tokens, fake_api.output_tokens = 10_000, 1_000
    shared = {**env, "BDP_REDIS_URL": redis_url, "BDP_HOLD_RECHECK": "2"}
    tight = {**shared, "BDP_BUDGET_USD": "0.05"}
    ids = [create_issue(repo, f"Feature {n}", priority=n) for n in range(3)]
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"{issue_id}.txt")
    assert bdp(tight, "enqueue", str(repo)).returncode == 0

    # When one worker runs the first issue and thereby spends the budget
    first = start_consumer(tight, tmp_path, "first")
    wait_for(lambda: len(bdp_json(tight, "status")["recent"]) == 1, timeout=60)
    time.sleep(1.5)  # a worker that could take another task has had time to take it
    report = bdp_json(tight, "status")

    # Then the other two are held: open in bd, still marked queued, their tasks in the queue
    [done] = report["recent"]
    assert done["outcome"] == "DONE"
    held = [i for i in ids if i != done["issue_id"]]
    assert report["hold"]["kind"] == "budget"
    assert report["spent_usd"] >= report["budget_usd"] == 0.05
    assert (report["scheduled"], report["running"]) == (0, [])  # not cycled through workers
    assert "HOLD" in bdp(tight, "status").stdout
    assert "HOLD: queue budget spent" in bdp(shared, "status").stdout  # the workers said so
    for issue_id in held:
        issue = show_issue(repo, issue_id)
        assert issue["status"] == "open"
        assert not issue.get("assignee")
        assert first_turns(fake_api, issue_id) == 0
    with broker(tight) as app:
        markers = {m.issue_id: m for m in app.state.markers()}
        assert {markers[i].state for i in held} == {"queued"}
        waiting = {t.id for t in app.huey.pending() if t.name.endswith("run_issue")}
        assert {markers[i].task_id for i in held} == waiting

    # When the budget is raised for a new consumer
    first.stop()
    second = start_consumer({**shared, "BDP_BUDGET_USD": "10"}, tmp_path, "second")
    wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in ids), timeout=90)
    second.stop()

    # Then the held issues ran to the end, once each: nothing was dropped
    assert sorted(r["outcome"] for r in recent(shared)) == ["DONE"] * 3
    subjects = commits(repo)
    for n, issue_id in enumerate(ids):
        assert subjects.count(f"{issue_id}: Feature {n}") == 1
        assert first_turns(fake_api, issue_id) == 1


# -- usage-limit pause --------------------------------------------------------------------


def usage_limit(epoch: int) -> Status:
    """A 429 as the API answers when the account's usage limit is reached."""
    message = f"Claude AI usage limit reached|{epoch}"
    return Status(
        429, body={"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    )


def test_a_usage_limit_pauses_the_queue_until_its_reset_time_then_work_resumes(
    env: dict[str, str], redis_url: str, repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given issues A and B queued for one worker, and A's first request hits the usage limit
    shared = {**env, "BDP_REDIS_URL": redis_url}
    a = create_issue(repo, "First", priority=0)
    b = create_issue(repo, "Second", priority=2)
    script_write_then_done(fake_api, a, "a.txt")
    script_write_then_done(fake_api, b, "b.txt")
    consumer = start_consumer(shared, tmp_path, "consumer")
    wait_until_warm(consumer)  # the SDK import takes seconds: keep them out of the pause
    epoch = int(time.time()) + 20  # room for a loaded machine to show the pause in force
    fake_api.fail_next(usage_limit(epoch), match=marker(a))

    # When they are queued
    assert bdp(shared, "enqueue", str(repo)).returncode == 0
    wait_for(lambda: outcomes_of(shared, a), timeout=30)

    # Then A's run ended PAUSED and the whole queue is paused until the reset time
    report = bdp_json(shared, "status")
    assert time.time() < epoch, "the pause was seen while in force"
    [paused] = report["recent"]
    assert (paused["issue_id"], paused["outcome"], paused["attempt"]) == (a, "PAUSED", 1)
    assert report["hold"]["kind"] == "paused"
    assert report["hold"]["until"] == epoch
    assert "usage-limited" in paused["summary"]
    assert "HOLD" in bdp(shared, "status").stdout
    assert show_issue(repo, a)["status"] == "open"
    assert first_turns(fake_api, b) == 0

    # And after the reset both finish by themselves, B not started before it, A on attempt 1
    wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in (a, b)), timeout=60)
    consumer.stop()
    records = {(r["issue_id"], r["outcome"]): r for r in recent(shared)}
    assert set(records) == {(a, "PAUSED"), (a, "DONE"), (b, "DONE")}
    assert records[(b, "DONE")]["started"] >= epoch
    assert records[(a, "DONE")]["started"] >= epoch
    assert records[(a, "DONE")]["attempt"] == 1
    subjects = commits(repo)
    assert f"{a}: First" in subjects
    assert f"{b}: Second" in subjects
    assert "FAILED" not in comments(repo, a)


def test_a_usage_limit_without_a_reset_time_pauses_for_the_backoff(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a 2 s backoff and an issue whose first request answers a plain 429
    backoff = {**env, "BDP_PAUSE_BACKOFF": "2"}
    issue_id = create_issue(repo, "Rate limited")
    script_write_then_done(fake_api, issue_id, "limited.txt")
    fake_api.fail_next(Status(429), match=marker(issue_id))

    # When a consumer works on it
    assert bdp(backoff, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(backoff, tmp_path, "consumer")
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=60)
    consumer.stop()

    # Then the queue paused for the backoff, and the issue resumed after it and closed
    with broker(backoff) as app:
        pause = app.state.pause()
    assert pause is not None
    assert pause["backoff"] == 2.0
    assert pause["until"] - pause["since"] == pytest.approx(2.0, abs=0.01)
    paused, done = recent(backoff)
    assert (paused["outcome"], done["outcome"]) == ("PAUSED", "DONE")
    assert pause["until"] <= done["started"] < pause["until"] + 5
    assert done["attempt"] == 1
    assert (repo / "limited.txt").exists()


# -- notifications ------------------------------------------------------------------------


def test_every_outcome_is_notified_and_a_blocked_issue_calls_for_attention(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given BDP_NOTIFY running a command that saves each event, one issue to finish and one
    # whose agent is blocked
    inbox = tmp_path / "events"
    inbox.mkdir()
    notify = {**env, "BDP_NOTIFY": f'cat > "$(mktemp {inbox}/event.XXXXXX)"'}
    done_id = create_issue(repo, "Doable", priority=0)
    blocked_id = create_issue(repo, "Unclear", priority=1)
    script_write_then_done(fake_api, done_id, "doable.txt")
    fake_api.script([Text("BLOCKED: need a decision")], match=marker(blocked_id))

    # When both run
    assert bdp(notify, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(notify, tmp_path, "consumer", workers=2)
    wait_for(lambda: len(recent(notify)) == 2, timeout=60)
    wait_for(lambda: len(list(inbox.iterdir())) >= 3, timeout=15)
    consumer.stop()

    # Then there is one outcome event per run and one attention event for the blocked issue
    events = [json.loads(p.read_text()) for p in inbox.iterdir()]
    records = {r["issue_id"]: r for r in recent(notify)}
    outcomes = {e["issue_id"]: e for e in events if e["kind"] == "outcome"}
    [attention] = [e for e in events if e["kind"] == "attention"]
    assert len(events) == 3
    assert set(outcomes) == {done_id, blocked_id}
    assert attention["issue_id"] == blocked_id
    for event in (*outcomes.values(), attention):
        record = records[event["issue_id"]]
        for name in ("outcome", "summary", "cost_usd", "log_path", "run_id", "attempt"):
            assert event[name] == record[name], name
        assert event["cost_usd"] > 0
        assert Path(event["log_path"]).is_file()
    assert outcomes[done_id]["outcome"] == "DONE"
    assert outcomes[blocked_id]["outcome"] == "BLOCKED"
    assert attention["outcome"] == "BLOCKED"
    assert attention["summary"] == "need a decision"
    assert "decision" in attention["reason"]
