"""The bdp commands as users run them: enqueue idempotency, `bdp run`, logs, status."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import BDP, bdp, bdp_json, script_write_then_done
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import FakeApi, Report, Status, ToolUse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_repeated_and_concurrent_enqueue_never_queues_an_issue_twice(
    broker_env: dict[str, str], repo: Path
) -> None:
    # Given five ready issues
    ids = {create_issue(repo, f"Issue {n}") for n in range(5)}

    # When six enqueues race, then one more runs after them
    racers = [
        subprocess.Popen(
            [BDP, "enqueue", str(repo), "--json"],
            env=broker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60) for p in racers]
    assert all(p.returncode == 0 for p in racers), [err for _, err in outputs]
    again = bdp_json(broker_env, "enqueue", str(repo))

    # Then each issue was queued by exactly one of them, and the queue holds five tasks
    import json

    queued = [
        row["id"] for out, _ in outputs for row in json.loads(out) if row["state"] == "queued"
    ]
    assert sorted(queued) == sorted(ids)
    assert {row["state"] for row in again} == {"already queued"}
    assert bdp_json(broker_env, "status")["queued"] == len(ids)


def test_enqueue_passes_filters_to_bd_and_dry_run_queues_nothing(
    env: dict[str, str], repo: Path
) -> None:
    urgent = create_issue(repo, "Urgent bug", priority=0, type="bug", labels=["backend"])
    create_issue(repo, "Later chore", priority=3, type="chore")

    dry = bdp_json(env, "enqueue", str(repo), "--dry-run")
    filtered = bdp_json(env, "enqueue", str(repo), "-p", "0", "--label", "backend", "-t", "bug")

    assert {row["state"] for row in dry} == {"would queue"}
    assert len(dry) == 2
    assert [(row["id"], row["state"]) for row in filtered] == [(urgent, "queued")]
    assert bdp_json(env, "status")["queued"] == 1


def test_bdp_run_works_through_the_backlog_and_summarises(
    broker_env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    ids = [create_issue(repo, f"Item {n}") for n in range(3)]
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"{issue_id}.md")

    done = bdp(broker_env, "run", str(repo), "-n", "2", "--timeout", "60s", timeout=150)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 issues: 3 closed (3 DONE), 0 failed, 0 need attention" in done.stdout
    assert all(show_issue(repo, i)["status"] == "closed" for i in ids)
    assert "bdp run" in done.stdout
    assert "DONE" in done.stdout


def test_bdp_run_exits_non_zero_when_an_issue_fails(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    from tests.integration.helpers import marker

    good = create_issue(repo, "Fine")
    bad = create_issue(repo, "Broken credentials")
    script_write_then_done(fake_api, good, "fine.txt")
    fake_api.script([Status(401)], match=marker(bad))

    done = bdp(env, "run", str(repo), "-n", "2", timeout=150)

    assert done.returncode == 1
    assert "2 issues: 1 closed (1 DONE), 1 failed (1 FAILED), 0 need attention" in done.stdout
    assert show_issue(repo, bad)["status"] == "open"


def test_logs_show_the_latest_run_and_filter_by_issue(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    first = create_issue(repo, "First")
    second = create_issue(repo, "Second")
    script_write_then_done(fake_api, first, "one.txt")
    script_write_then_done(fake_api, second, "two.txt")
    assert bdp(env, "run", str(repo), "-n", "1", timeout=150).returncode == 0

    latest = bdp(env, "logs").stdout
    only_first = bdp(env, "logs", "--agent", first).stdout
    tail = bdp(env, "logs", "--agent", first, "--tail", "2").stdout

    assert "tool Write" in only_first
    assert "one.txt" in only_first
    assert "two.txt" not in only_first
    assert latest.strip()
    assert ("one.txt" in latest) != ("two.txt" in latest)
    assert len(tail.splitlines()) == 2
    jsonl = sorted((Path(env["BDP_HOME"]) / "logs").glob(f"*-{first}-*.jsonl"))
    assert jsonl
    assert '"type": "ResultMessage"' in jsonl[0].read_text()


def test_bdp_run_does_an_issue_its_blocker_unblocked_in_the_same_run(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given two independent issues and a third that waits for the first
    first, other = create_issue(repo, "Build the base"), create_issue(repo, "Independent")
    waiting = create_issue(repo, "Build on the base")
    run_bd_ok(repo, "dep", "add", waiting, first)
    for issue_id in (first, other, waiting):
        script_write_then_done(fake_api, issue_id, f"{issue_id}.md")

    # When one `bdp run` works on the repo
    done = bdp(env, "run", str(repo), "-n", "2", timeout=150)

    # Then the waiting issue was queued once its blocker closed, and done in the same run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 issues: 3 closed (3 DONE), 0 failed, 0 need attention" in done.stdout
    assert all(show_issue(repo, i)["status"] == "closed" for i in (first, other, waiting))
    log = git(repo, "log", "--reverse", "--format=%(trailers:key=Bdp-Issue,valueonly)").split()
    assert log.index(first) < log.index(waiting)


def test_bdp_run_epic_does_its_children_then_closes_the_epic_no_agent_ever_saw(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given an epic with two children, and an issue outside it
    epic = create_issue(repo, "Rework the uploader end to end", type="epic")
    children = [create_issue(repo, f"Uploader part {n}", parent=epic) for n in (1, 2)]
    outside = create_issue(repo, "Unrelated chore")
    for issue_id in children:
        script_write_then_done(fake_api, issue_id, f"{issue_id}.md")

    # When `bdp run --epic` works on it, reporting as JSON
    done = bdp(env, "run", str(repo), "--epic", epic, "-n", "2", "--json", timeout=150)

    # Then both children were done, and bdp closed the epic naming them
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(done.stdout)
    assert sorted((r["issue_id"], r["outcome"]) for r in records) == [
        (issue_id, "DONE") for issue_id in children
    ]
    shown = show_issue(repo, epic)
    assert shown["status"] == "closed"
    assert shown["close_reason"] == f"all 2 children closed: {children[0]}, {children[1]}"
    assert show_issue(repo, outside)["status"] == "open"
    # And no request to the model named the epic (its children's ids start with its id)
    bodies = [json.dumps(request.body) for request in fake_api.requests]
    assert any(children[0] in body for body in bodies)
    epic_itself = re.compile(re.escape(epic) + r"(?!\.\d|[\w-])")
    assert not [body for body in bodies if epic_itself.search(body) or "uploader end" in body]


EPIC_REVIEW = "Review the finished epic"


def test_bdp_run_with_epic_review_works_the_reviews_findings_then_closes_the_epic(
    env: dict[str, str], repo: Path, fake_api: FakeApi
) -> None:
    # Given a repo that reviews its epics, and an epic with one child
    (repo / ".bdp.toml").write_text("epic_review = true\n")
    git(repo, "add", ".bdp.toml")
    git(repo, "commit", "-qm", "review epics")
    epic = create_issue(
        repo, "Resumable uploads", type="epic", acceptance="a killed upload resumes"
    )
    child = create_issue(repo, "Chunked upload", parent=epic)
    script_write_then_done(fake_api, child, "chunks.md")
    # And a reviewer that first finds the resume test missing, then approves
    missing = {"title": "Test a killed upload resuming", "description": "kill it at 50%"}
    changes = {"verdict": "CHANGES", "findings": "no resume test", "follow_ups": [missing]}
    fake_api.fail_next(ToolUse("StructuredOutput", changes), match=EPIC_REVIEW)
    fake_api.script([ToolUse("StructuredOutput", {"verdict": "APPROVE"})], match=EPIC_REVIEW)
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "resume_test.md", "content": "resumes\n"}),
            Report("DONE", "added the resume test"),
        ],
        match=missing["title"],
    )

    # When one `bdp run --epic` works on it
    done = bdp(env, "run", str(repo), "--epic", epic, "-n", "2", "--json", timeout=150)

    # Then the child was done, the review filed the follow-up as a child, that was done too,
    # and the second review closed the epic, naming both children
    assert done.returncode == 0, done.stdout + done.stderr
    records = [(r["issue_id"], r["outcome"]) for r in json.loads(done.stdout)]
    shown = json.loads(run_bd_ok(repo, "show", epic, "--include-dependents", "--json"))[0]
    [follow_up] = [d["id"] for d in shown["dependents"] if d["title"] == missing["title"]]
    assert records == [(child, "DONE"), (epic, "FOLLOW_UPS"), (follow_up, "DONE"), (epic, "DONE")]
    assert shown["status"] == "closed"
    assert shown["close_reason"] == (
        f"all 2 children closed: {child}, {follow_up}; the epic review approved it"
    )
    # And the second review was shown what the first asked for, and the follow-up's commit
    second = fake_api.messages_requests(match=EPIC_REVIEW)[-1]
    assert "no resume test" in json.dumps(second.body)
    assert f"{follow_up}: Test a killed upload" in json.dumps(second.body)
