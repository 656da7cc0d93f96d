"""The whole pipeline on real parts: bdp enqueue, huey_consumer workers, the stand-in bd,
real git repos and the real Claude CLI against the fake Messages API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.helpers import bdp, bdp_json, first_turns, marker, script_write_then_done
from tests.support.beads import create_issue, show_issue
from tests.support.fake_api import Delay, FakeApi, Status, Text, ToolUse
from tests.support.processes import HueyConsumer, agent_processes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def start_consumer(
    env: dict[str, str],
    tmp_path: Path,
    workers: int = 2,
    kind: str = "thread",
    name: str = "consumer",
) -> HueyConsumer:
    return HueyConsumer(env, tmp_path / f"{name}.log", workers=workers, kind=kind).start()


def status_of(repo: Path, issue_id: str) -> str:
    return str(show_issue(repo, issue_id)["status"])


def files_of_commit(repo: Path, ref: str) -> set[str]:
    out = git(repo, "show", "--name-only", "--format=", ref)
    return {line for line in out.splitlines() if line}


def commits_by_subject(repo: Path) -> dict[str, str]:
    out = git(repo, "log", "--format=%H %s")
    return {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in out.splitlines()}


def comments_of(repo: Path, issue_id: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bd", "comments", issue_id, "--json"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def no_claude_left(api: FakeApi) -> bool:
    return not agent_processes(api.url)


@pytest.mark.parametrize(
    ("broker_env", "kind"),
    [
        ("sqlite", "thread"),
        ("redis", "process"),
        # each broker and each worker kind runs by default; the other pairs in the soak run
        pytest.param("sqlite", "process", marks=pytest.mark.soak),
        pytest.param("redis", "thread", marks=pytest.mark.soak),
    ],
    indirect=["broker_env"],
)
def test_ready_issues_are_closed_with_commits_of_exactly_their_files(
    broker_env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, kind: str
) -> None:
    # Given three ready issues and an unrelated uncommitted change in the work tree
    titles = {
        create_issue(repo, f"Feature {n}", description=f"Add feature {n}"): f"Feature {n}"
        for n in range(3)
    }
    for issue_id in titles:
        script_write_then_done(fake_api, issue_id, f"src/{issue_id}.txt")
    (repo / "README.md").write_text("someone else's edit\n")

    # When they are enqueued and a consumer works on them
    assert bdp(broker_env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(broker_env, tmp_path, workers=2, kind=kind)
    wait_for(lambda: all(status_of(repo, i) == "closed" for i in titles), timeout=90)
    consumer.stop()

    # Then each issue has one commit holding exactly its file, and nothing else was committed
    subjects = commits_by_subject(repo)
    for issue_id, title in titles.items():
        assert files_of_commit(repo, subjects[f"{issue_id}: {title}"]) == {f"src/{issue_id}.txt"}
        assert show_issue(repo, issue_id)["close_reason"] == f"added src/{issue_id}.txt"
    assert len(subjects) == 1 + len(titles)
    assert " M README.md" in git(repo, "status", "--porcelain")
    report = bdp_json(broker_env, "status")
    assert {r["outcome"] for r in report["recent"]} == {"DONE"}
    assert all(r["cost_usd"] > 0 and r["turns"] >= 2 for r in report["recent"])
    assert report["queued"] == 0
    assert report["running"] == []
    assert no_claude_left(fake_api)


def test_two_consumers_never_run_the_same_issue_twice(
    broker_env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given four issues, each queued twice: once by bdp enqueue, once as a raw duplicate task
    ids = [create_issue(repo, f"Task {n}") for n in range(4)]
    for issue_id in ids:
        script_write_then_done(fake_api, issue_id, f"{issue_id}.txt")
    assert bdp(broker_env, "enqueue", str(repo)).returncode == 0
    duplicate = (
        "from bdp.consumer import tasks\nfrom bdp.models import TaskArgs\n"
        f"for i in {ids!r}: tasks.run_issue(TaskArgs({str(repo)!r}, i, 1).to_task())\n"
    )
    subprocess.run(["python", "-c", duplicate], env=broker_env, check=True, cwd=Path.cwd())

    # When two consumers with two workers each race through the eight tasks
    first = start_consumer(broker_env, tmp_path, name="first")
    second = start_consumer(broker_env, tmp_path, name="second")
    wait_for(lambda: bdp_json(broker_env, "status")["queued"] == 0, timeout=90)
    wait_for(lambda: len(bdp_json(broker_env, "status")["recent"]) == 8, timeout=90)
    first.stop()
    second.stop()

    # Then every issue ran exactly one session and got exactly one commit; duplicates skipped
    outcomes = [r["outcome"] for r in bdp_json(broker_env, "status")["recent"]]
    assert sorted(outcomes) == ["DONE"] * 4 + ["SKIPPED"] * 4
    subjects = commits_by_subject(repo)
    for issue_id in ids:
        assert first_turns(fake_api, issue_id) == 1
        assert sum(s.startswith(f"{issue_id}:") for s in subjects) == 1


def test_overloaded_api_is_retried_and_the_issue_still_closes(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    issue_id = create_issue(repo, "Flaky upstream")
    script_write_then_done(fake_api, issue_id, "flaky.txt")
    fake_api.fail_next(Status(529), times=1, match=marker(issue_id))

    assert bdp(env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(env, tmp_path)
    wait_for(lambda: status_of(repo, issue_id) == "closed", timeout=60)
    consumer.stop()

    assert first_turns(fake_api, issue_id) == 2  # the 529 attempt, then the retry
    assert (repo / "flaky.txt").exists()
    log = bdp(env, "logs", "--agent", issue_id).stdout
    assert "retrying" in log
    assert "server_error" in log


def test_bad_credentials_fail_at_once_and_reset_the_issue_with_a_comment(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    issue_id = create_issue(repo, "Needs a key")
    fake_api.script([Status(401)], match=marker(issue_id))

    assert bdp(env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(env, tmp_path)
    wait_for(lambda: bdp_json(env, "status")["recent"], timeout=60)
    consumer.stop()

    assert first_turns(fake_api, issue_id) == 1  # not retried
    issue = show_issue(repo, issue_id)
    assert issue["status"] == "open"
    assert not issue.get("assignee")
    comments = comments_of(repo, issue_id, env)
    assert "FAILED on attempt 1" in comments
    assert "authentication_failed" in comments
    assert "ANTHROPIC_API_KEY" in comments  # says what to fix
    assert bdp_json(env, "status")["recent"][0]["outcome"] == "FAILED"


def test_a_hanging_api_hits_the_timeout_and_leaves_no_claude_process(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    issue_id = create_issue(repo, "Slow upstream")
    fake_api.script([Delay(120, Text("DONE: too late"))], match=marker(issue_id))
    slow_env = {**env, "BDP_TIMEOUT": "4s"}

    assert bdp(slow_env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(slow_env, tmp_path)
    wait_for(lambda: fake_api.messages_requests(match=marker(issue_id)), timeout=30)
    assert agent_processes(fake_api.url), "a claude CLI is waiting on the API"
    wait_for(lambda: bdp_json(slow_env, "status")["recent"], timeout=30)

    assert no_claude_left(fake_api)  # checked while the consumer still runs
    consumer.stop()
    record = bdp_json(slow_env, "status")["recent"][0]
    assert record["outcome"] == "TIMED_OUT"
    assert status_of(repo, issue_id) == "open"
    assert "TIMED_OUT on attempt 1" in comments_of(repo, issue_id, env)


def test_guard_rails_deny_writes_outside_the_repo_and_destructive_git(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    issue_id = create_issue(repo, "Try to escape")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": str(outside), "content": "escaped\n"}),
            ToolUse("Bash", {"command": "git stash"}),
            ToolUse("Write", {"file_path": "inside.txt", "content": "fine\n"}),
            Text("DONE: wrote inside.txt"),
        ],
        match=marker(issue_id),
    )
    (repo / "README.md").write_text("uncommitted work of another agent\n")

    assert bdp(env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(env, tmp_path)
    wait_for(lambda: status_of(repo, issue_id) == "closed", timeout=60)
    consumer.stop()

    assert not outside.exists()
    assert (repo / "README.md").read_text() == "uncommitted work of another agent\n"
    denied = [
        r
        for r in fake_api.messages_requests(match=marker(issue_id))
        if "not allowed" in str(r.body)
    ]
    assert denied, "the agent was told that git stash is not allowed"
    assert files_of_commit(repo, "HEAD") == {"inside.txt"}


def test_secrets_never_reach_logs_or_status(
    env: dict[str, str], redis_url: str, repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a password-protected Redis and an agent that prints its whole environment
    secret_env = {**env, "BDP_REDIS_URL": redis_url}
    password = redis_url.split(":")[2].split("@")[0]
    api_key = secret_env["ANTHROPIC_API_KEY"]
    issue_id = create_issue(repo, "Print the environment")
    fake_api.script(
        [
            ToolUse("Bash", {"command": "env; echo url=$BDP_REDIS_URL"}),
            ToolUse("Write", {"file_path": "env-checked.txt", "content": "ok\n"}),
            Text("DONE: printed env"),
        ],
        match=marker(issue_id),
    )

    # When the issue runs to the end
    assert bdp(secret_env, "enqueue", str(repo)).returncode == 0
    consumer = start_consumer(secret_env, tmp_path)
    wait_for(lambda: status_of(repo, issue_id) == "closed", timeout=60)
    consumer.stop()

    # Then the agent's env dump reached the model with the CLI's own key (which the sandbox's
    # closed network keeps in), but without the Redis URL (bdp blanks BDP_* and secrets)
    bodies = [str(r.body) for r in fake_api.messages_requests(match=marker(issue_id))]
    assert any(api_key in body and "url=" in body for body in bodies)
    assert not any(password in body for body in bodies)
    # And no log, status or consumer output holds a secret
    logs = "".join(p.read_text() for p in (Path(env["BDP_HOME"]) / "logs").iterdir())
    surfaces = {
        "logs": logs,
        "status": bdp(secret_env, "status").stdout,
        "status --json": bdp(secret_env, "status", "--json").stdout,
        "consumer": consumer.output(),
    }
    for name, text in surfaces.items():
        assert password not in text, name
        assert api_key not in text, name
    assert "ANTHROPIC_API_KEY=***" in logs
