"""Crashes, signals and restarts of real consumers: nothing is lost, nothing is done twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from bdp.repo.procs import pid_alive
from tests.conftest import git
from tests.integration.helpers import BDP, bdp, bdp_json, first_turns, marker
from tests.support.beads import create_issue, run_bd_ok, show_issue
from tests.support.fake_api import Delay, FakeApi, Step, Text, ToolUse, tool_results
from tests.support.processes import HueyConsumer, agent_processes, wait_for
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
FAST_RECOVERY = {"BDP_JANITOR_INTERVAL": "1", "BDP_STALE_AFTER": "3", "BDP_HEARTBEAT": "0.5"}


def script_attempt(api: FakeApi, issue_id: str, attempt: int, steps: list[Step]) -> None:
    """Script one attempt's session (its prompt names the run's own tree: any path matches)."""
    issue = re.escape(issue_id)
    prompt = rf"Implement beads issue {issue} in the repository at \S+ \(attempt {attempt}\)"
    api.script(steps, match=re.compile(prompt))


def hang_after_a_write(api: FakeApi, issue_id: str, filename: str) -> None:
    """Attempt 1 writes ``filename`` (taking its lock) and then waits on the API for good."""
    script_attempt(
        api,
        issue_id,
        1,
        [
            ToolUse("Write", {"file_path": filename, "content": "half done\n"}),
            Delay(120, Text("DONE: too late")),
        ],
    )


def hang_then_finish(api: FakeApi, issue_id: str, filename: str, summary: str) -> None:
    """Attempt 1 writes ``filename`` and hangs; attempt 2 writes it right and says DONE."""
    hang_after_a_write(api, issue_id, filename)
    done_right = ToolUse("Write", {"file_path": filename, "content": "done right\n"})
    script_attempt(api, issue_id, 2, [done_right, Text(f"DONE: {summary}")])


def lock_count(env: dict[str, str]) -> int:
    return len(bdp_json(env, "status")["locks"])


def consumer(env: dict[str, str], tmp_path: Path, name: str, kind: str = "thread") -> HueyConsumer:
    return HueyConsumer(env, tmp_path / f"{name}.log", workers=2, kind=kind).start()


def comments(repo: Path, issue_id: str) -> str:
    return run_bd_ok(repo, "comments", issue_id, "--json")


def wait_until_hanging(api: FakeApi, issue_id: str, env: dict[str, str]) -> None:
    """Until the session has written its file (lock held) and waits on its second reply."""
    wait_for(lambda: len(api.messages_requests(match=marker(issue_id))) >= 2, timeout=60)
    wait_for(lambda: lock_count(env) == 1, timeout=10)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_sigterm_stops_sessions_at_once_and_leaves_nothing_behind(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path, kind: str
) -> None:
    # Given a session that has locked and written a file, then waits on the API
    issue_id = create_issue(repo, "Hangs forever")
    hang_after_a_write(fake_api, issue_id, "half.txt")
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    worker = consumer(env, tmp_path, "worker", kind)
    wait_until_hanging(fake_api, issue_id, env)

    # When the consumer gets SIGTERM
    code = worker.stop(signal.SIGTERM, timeout=40)

    # Then it exits, the issue is open again with a comment, and no lock, run or CLI is left
    assert code is not None
    issue = show_issue(repo, issue_id)
    assert issue["status"] == "open"
    assert not issue.get("assignee")
    assert "INTERRUPTED on attempt 1: the worker was stopped" in comments(repo, issue_id)
    report = bdp_json(env, "status")
    assert (report["locks"], report["running"]) == ([], [])
    assert report["recent"][-1]["outcome"] == "INTERRUPTED"
    assert agent_processes(fake_api.url) == []
    assert "Traceback" not in worker.output()


def test_sigint_gives_sessions_the_wrap_up_window_then_stops_them(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    issue_id = create_issue(repo, "Slow to finish")
    hang_after_a_write(fake_api, issue_id, "slow.txt")
    wrapup_env = {**env, "BDP_WRAPUP": "2"}
    assert bdp(wrapup_env, "enqueue", str(repo)).returncode == 0
    worker = consumer(wrapup_env, tmp_path, "worker")
    wait_until_hanging(fake_api, issue_id, wrapup_env)

    code = worker.stop(signal.SIGINT, timeout=40)

    assert code is not None
    assert show_issue(repo, issue_id)["status"] == "open"
    assert "the 2s wrap-up window ended" in comments(repo, issue_id)
    assert lock_count(wrapup_env) == 0
    assert agent_processes(fake_api.url) == []


def test_a_killed_consumer_is_recovered_by_another_and_the_issue_done_once(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given attempt 1 hangs after writing its file, and attempt 2 will finish it
    issue_id = create_issue(repo, "Survive a crash")
    hang_then_finish(fake_api, issue_id, "crash.txt", "finished after the crash")
    fast = {**env, **FAST_RECOVERY}
    assert bdp(fast, "enqueue", str(repo)).returncode == 0
    first = consumer(fast, tmp_path, "first")
    wait_until_hanging(fake_api, issue_id, fast)
    assert agent_processes(fake_api.url), "attempt 1's CLI is waiting on the API"

    # When the first consumer is SIGKILLed and a second one starts
    first.stop(signal.SIGKILL)
    second = consumer(fast, tmp_path, "second")
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=90)
    second.stop()

    # Then the janitor ended the orphaned CLI, freed the lock, requeued the issue, and the
    # second consumer finished it: exactly one commit and one close
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert subjects.count(f"{issue_id}: Survive a crash") == 1
    assert (repo / "crash.txt").read_text() == "done right\n"
    outcomes = [r["outcome"] for r in bdp_json(fast, "status")["recent"]]
    assert outcomes == ["ABANDONED", "DONE"]
    # (two overlapping sweeps may word the note differently; only one of them acts)
    assert "bdp janitor:" in comments(repo, issue_id)
    assert "queued again as attempt 2" in comments(repo, issue_id)
    assert agent_processes(fake_api.url) == []
    assert lock_count(fast) == 0


def test_two_sessions_editing_one_file_in_the_shared_tree_take_turns(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given two issues whose sessions both write shared.txt, then take a while to finish
    ids = [create_issue(repo, f"Edit {n}") for n in range(2)]
    for issue_id in ids:
        fake_api.script(
            [
                ToolUse("Write", {"file_path": "shared.txt", "content": f"{issue_id}\n"}),
                Delay(2, Text(f"DONE: {issue_id} edited shared.txt")),
            ],
            match=marker(issue_id),
        )

    # When two workers run them at once, both in the repo's own tree
    shared = {**env, "BDP_ISOLATION": "shared"}
    assert bdp(shared, "enqueue", str(repo)).returncode == 0
    worker = consumer(shared, tmp_path, "worker")
    wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in ids), 90)
    worker.stop()

    # Then the second writer waited for the first one's lock: each commit holds exactly the
    # content its own session wrote (without the lock, the first commit would hold the
    # second session's text, written during the first one's pause)
    history = git(repo, "log", "--format=%H %s", "--", "shared.txt").splitlines()
    assert len(history) == 2
    for line in history:
        sha, subject = line.split(" ", 1)
        issue_id = subject.split(":")[0]
        assert git(repo, "show", f"{sha}:shared.txt") == f"{issue_id}\n"


def test_two_sessions_writing_one_file_in_worktrees_take_turns_and_land_without_conflict(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given two issues whose sessions both write shared.txt, read it, and write it again
    ids = [create_issue(repo, f"Write {n}") for n in range(2)]
    for issue_id in ids:
        fake_api.script(
            [
                ToolUse("Write", {"file_path": "shared.txt", "content": f"{issue_id}\n"}),
                ToolUse("Read", {"file_path": "shared.txt"}),
                ToolUse("Write", {"file_path": "shared.txt", "content": f"{issue_id}\n"}),
                Delay(1, Text(f"DONE: {issue_id} wrote shared.txt")),
            ],
            match=marker(issue_id),
        )

    # When two workers run them at once, each in its own worktree
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    worker = consumer(env, tmp_path, "worker")
    wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in ids), 120)
    worker.stop()

    # Then the second waited for the lock, was moved onto the first one's landed commit and
    # told to read the file again, and landed at once: no landing round, no conflict
    told = [
        str(result.get("content"))
        for request in fake_api.messages_requests()
        for result in tool_results(request.body)
    ]
    assert any("changed on the target branch" in text for text in told)
    outcomes = [r["outcome"] for r in bdp_json(env, "status")["recent"]]
    assert outcomes == ["DONE", "DONE"]
    history = git(repo, "log", "--format=%s", "--", "shared.txt").splitlines()
    assert len(history) == 2
    assert (repo / "shared.txt").read_text() == f"{history[0].split(':')[0]}\n"


def test_a_landing_conflict_goes_back_to_the_resumed_session_which_resolves_it(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a session that writes shared.txt while a person commits their own shared.txt on
    # main; sent back after a conflict, it reads the file and writes a resolution
    issue_id = create_issue(repo, "Write shared")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "shared.txt", "content": "agent\n"}),
            Delay(3, Text("DONE: wrote shared.txt")),
            ToolUse("Read", {"file_path": "shared.txt"}),
            ToolUse("Write", {"file_path": "shared.txt", "content": "both\n"}),
            Text("DONE: resolved shared.txt"),
        ],
        match=marker(issue_id),
    )
    assert bdp(env, "enqueue", str(repo)).returncode == 0
    worker = consumer(env, tmp_path, "worker")
    wait_for(lambda: len(fake_api.messages_requests(match=marker(issue_id))) >= 2, 60)
    (repo / "shared.txt").write_text("person\n")
    git(repo, "add", "shared.txt")
    git(repo, "commit", "-qm", "a person's shared.txt")

    # When the worker finishes it
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", 120)
    worker.stop()

    # Then the conflict went back to the same session (resumed, not started over), whose
    # resolution landed on top of the person's commit
    assert "conflicts with the target branch (shared.txt)" in comments(repo, issue_id)
    assert first_turns(fake_api, issue_id) == 1
    assert (repo / "shared.txt").read_text() == "both\n"
    assert git(repo, "log", "-2", "--format=%s").splitlines() == [
        f"{issue_id}: Write shared",
        "a person's shared.txt",
    ]
    assert git(repo, "branch", "--list", "bdp/*").strip() == ""


def test_a_redis_restart_loses_no_queued_task_and_workers_carry_on(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    redis_env = {**env, "BDP_REDIS_URL": server.url}
    try:
        ids = [create_issue(repo, f"Queued {n}") for n in range(2)]
        for issue_id in ids:
            fake_api.script(
                [
                    ToolUse("Write", {"file_path": f"{issue_id}.txt", "content": "x"}),
                    Text("DONE: ok"),
                ],
                match=marker(issue_id),
            )
        assert bdp(redis_env, "enqueue", str(repo)).returncode == 0

        # While Redis is down, status and enqueue fail with one clear line
        server.stop()
        for args in (("status",), ("enqueue", str(repo))):
            down = bdp(redis_env, *args)
            assert down.returncode == 1
            assert "cannot reach Redis" in down.stderr
            assert "Traceback" not in down.stderr + down.stdout

        # A worker started during the outage keeps trying; after the restart the tasks are
        # still there (append-only file) and the worker reconnects and finishes them
        worker = HueyConsumer(redis_env, tmp_path / "worker.log").start()
        wait_for(lambda: "Error" in worker.output() or "error" in worker.output(), timeout=30)
        server.start()
        wait_for(lambda: all(show_issue(repo, i)["status"] == "closed" for i in ids), 90)
        worker.stop()
    finally:
        server.stop()


def test_a_redis_restart_that_kept_nothing_still_ends_the_running_issue_done_once(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a Redis without persistence, and a session that has written its file and hangs
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    fast = {**env, **FAST_RECOVERY, "BDP_REDIS_URL": server.url}
    try:
        issue_id = create_issue(repo, "Outlive an empty Redis")
        hang_then_finish(fake_api, issue_id, "kept.txt", "finished after Redis forgot")
        assert bdp(fast, "enqueue", str(repo)).returncode == 0
        worker = consumer(fast, tmp_path, "worker")
        wait_until_hanging(fake_api, issue_id, fast)

        # When Redis restarts with nothing: no run, no marker, no lock record of bdp's
        server.stop(signal.SIGKILL)
        server.start()

        # Then the run, no longer registered, stops; the janitor finds the claim through the
        # repos bdp keeps in BDP_HOME, resets it and queues attempt 2, which closes the issue
        wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=120)
        wait_for(lambda: bdp_json(fast, "status")["running"] == [], timeout=30)
        worker.stop()
        assert (
            git(repo, "log", "--format=%s")
            .splitlines()
            .count(f"{issue_id}: Outlive an empty Redis")
            == 1
        )
        assert (repo / "kept.txt").read_text() == "done right\n"
        assert "queued again as attempt 2" in comments(repo, issue_id)
        assert lock_count(fast) == 0
        assert agent_processes(fake_api.url) == []
        assert "Traceback" not in worker.output()
    finally:
        server.stop()


def test_an_issue_that_outgrows_its_session_is_continued_to_the_end(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a session allowed two turns, for work that takes three
    issue_id = create_issue(repo, "Big change")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "part1.txt", "content": "one\n"}),
            ToolUse("Write", {"file_path": "part2.txt", "content": "two\n"}),
            Text("DONE: both parts"),
        ],
        match=marker(issue_id),
    )
    short = {**env, "BDP_MAX_TURNS": "2"}

    # When a consumer works on it
    assert bdp(short, "enqueue", str(repo)).returncode == 0
    worker = consumer(short, tmp_path, "worker")
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=90)
    worker.stop()

    # Then the first session ended UNFINISHED, a continuation resumed it and finished, and the
    # one commit holds the work of both sessions
    outcomes = [(r["outcome"], r["summary"]) for r in bdp_json(short, "status")["recent"]]
    assert outcomes[0][0] == "UNFINISHED"
    assert "continuing (1 of 2)" in outcomes[0][1]
    assert outcomes[1] == ("DONE", "both parts")
    [commit] = git(repo, "log", "--format=%H", f"--grep={issue_id}").split()
    files = set(git(repo, "show", "--name-only", "--format=", commit).split())
    assert files == {"part1.txt", "part2.txt"}


def test_a_hung_session_is_stopped_and_continued_to_the_end(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a session whose API goes quiet once, after its first edit
    issue_id = create_issue(repo, "Flaky upstream mid-way")
    fake_api.script(
        [
            ToolUse("Write", {"file_path": "first.txt", "content": "1\n"}),
            Text("DONE: finished after the hang"),
        ],
        match=marker(issue_id),
    )
    fake_api.fail_next(Delay(120, Text("DONE: never")), match=marker(issue_id), at_turn=1)
    quiet = {**env, "BDP_IDLE_TIMEOUT": "5"}  # well above a loaded CLI start-up

    # When a consumer works on it
    assert bdp(quiet, "enqueue", str(repo)).returncode == 0
    worker = consumer(quiet, tmp_path, "worker")
    wait_for(lambda: show_issue(repo, issue_id)["status"] == "closed", timeout=90)
    worker.stop()

    # Then the hang was stopped as UNFINISHED, and the continuation finished and committed
    outcomes = [(r["outcome"], r["summary"]) for r in bdp_json(quiet, "status")["recent"]]
    assert outcomes[0][0] == "UNFINISHED"
    assert outcomes[0][1].startswith("hung: no message for")
    assert outcomes[1] == ("DONE", "finished after the hang"), outcomes
    assert agent_processes(fake_api.url) == []
    assert "first.txt" in git(repo, "show", "--name-only", "--format=", "HEAD")


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and pid_alive(int(stat.parent.name)):
            found.append(int(stat.parent.name))
    return found


def test_a_process_consumer_killed_outright_takes_its_workers_and_scheduler_with_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given an idle consumer with two forked workers and its forked scheduler
    worker = HueyConsumer(env, tmp_path / "worker.log", workers=2, kind="process").start()
    wait_for(lambda: len(children_of(worker.pid)) == 3, 20)
    children = children_of(worker.pid)

    # When the consumer itself is killed outright, with no chance to stop them
    worker.stop(signal.SIGKILL, timeout=10)

    # Then they notice and exit by themselves, instead of taking tasks for good
    wait_for(lambda: not any(pid_alive(pid) for pid in children), 30)


def test_a_second_bdp_run_finishes_the_work_of_one_that_was_killed(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given a `bdp run` killed outright (with its CLIs) while its session hung mid-issue
    issue_id = create_issue(repo, "Outlive a killed bdp run")
    hang_then_finish(fake_api, issue_id, "crash.txt", "finished by the second bdp run")
    fast = {**env, **FAST_RECOVERY}
    with (tmp_path / "first.out").open("w") as sink:
        first = subprocess.Popen(
            [BDP, "run", str(repo)],
            env=fast,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wait_until_hanging(fake_api, issue_id, fast)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert show_issue(repo, issue_id)["status"] == "in_progress"

    # When `bdp run` is started again
    done = bdp(fast, "run", str(repo), timeout=150)

    # Then it recovered the dead run and finished the issue: closed once, one commit
    assert done.returncode == 0, done.stdout + done.stderr
    assert show_issue(repo, issue_id)["status"] == "closed"
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert subjects.count(f"{issue_id}: Outlive a killed bdp run") == 1
    assert (repo / "crash.txt").read_text() == "done right\n"
    assert "Traceback" not in done.stdout + done.stderr


def test_ctrl_c_in_a_terminal_wraps_up_the_sessions_of_bdp_run(
    env: dict[str, str], repo: Path, fake_api: FakeApi, tmp_path: Path
) -> None:
    # Given `bdp run` in a terminal (its own process group, as a shell runs it), with a
    # session that has written a file and waits on the API
    issue_id = create_issue(repo, "Interrupted at the terminal")
    hang_after_a_write(fake_api, issue_id, "half.txt")
    wrapup = {**env, "BDP_WRAPUP": "2"}
    out = tmp_path / "run.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [BDP, "run", str(repo)],
            env=wrapup,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wait_until_hanging(fake_api, issue_id, wrapup)

    # When Ctrl-C reaches the whole foreground group, CLIs included were they in it
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)

    # Then the session got the wrap-up window and ended INTERRUPTED, not FAILED; the issue
    # is open again with a comment, and no CLI is left
    text = out.read_text()
    assert "wrapping up 1 sessions" in text
    assert "INTERRUPTED" in text
    assert "FAILED" not in text
    assert show_issue(repo, issue_id)["status"] == "open"
    assert "the 2s wrap-up window ended" in comments(repo, issue_id)
    assert agent_processes(fake_api.url) == []
    assert "Traceback" not in text
