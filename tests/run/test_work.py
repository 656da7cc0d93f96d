"""Unit tests for bdp/run/work.py in shared isolation (every agent in the repo's own work
tree): `work_on` with the stub agent, the bd stand-in and real git. A worktree per run is
tests/run/test_worktree.py.

State lives in a MemoryHuey; bd is the stand-in subprocess found on PATH, in the `repo` fixture.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from huey import MemoryHuey

from bdp.agent.session import SessionRequest, SessionResult, StubAgentRunner
from bdp.broker.claims import Lease, RedisClaims
from bdp.broker.state import Marker, State
from bdp.config import Settings
from bdp.host import host_name
from bdp.models import Outcome, Run, RunRecord, TaskArgs
from bdp.ops.notify import Event, Notifier
from bdp.queue.janitor import Janitor
from bdp.repo.locks import LockTable
from bdp.run.deps import RunDeps, worker_name
from bdp.run.work import work_on
from tests.support.beads import create_issue, run_bd_ok, show_issue

TASK_ID = "task-1"
POLL_DEADLINE = 5.0

pytestmark = pytest.mark.usefixtures("stand_in_bd")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="shared")


@pytest.fixture
def state() -> State:
    return State(MemoryHuey("test-worker"))


@pytest.fixture
def issue_id(repo: Path) -> str:
    return create_issue(repo, "Add a greeting", description="Say hello")


@dataclass
class Worker:
    """Runs `work_on` for one repo with a given agent, the marker taken first like enqueue does."""

    repo: Path
    settings: Settings
    state: State

    def run(self, issue_id: str, agent: Any, attempt: int = 1, mark: bool = True) -> RunRecord:
        if mark:
            assert self.state.mark_queued(str(self.repo), issue_id, TASK_ID)
        deps = RunDeps(self.settings, self.state, agent)
        return work_on(TaskArgs(str(self.repo), issue_id, attempt), TASK_ID, deps)

    def marker(self, issue_id: str) -> Marker | None:
        return self.state.marker(str(self.repo), issue_id)


@pytest.fixture
def worker(repo: Path, settings: Settings, state: State) -> Worker:
    return Worker(repo, settings, state)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def commit_file(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-qm", f"add {name}")


def porcelain(repo: Path) -> dict[str, str]:
    """Path -> two-letter status of everything that differs from HEAD (bd's files excluded)."""
    out = git(repo, "status", "--porcelain", "-z", "--untracked-files=all")
    entries = (entry for entry in out.split("\0") if entry)
    return {e[3:]: e[:2] for e in entries if not e[3:].startswith(".beads/")}


def comments_of(repo: Path, issue_id: str) -> list[str]:
    found = json.loads(run_bd_ok(repo, "comments", issue_id, "--json"))
    return [comment["text"] for comment in found]


def poll(condition: Callable[[], bool], timeout: float = POLL_DEADLINE) -> bool:
    """Whether ``condition`` became true before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- DONE ---------------------------------------------------------------------------------------


def test_a_done_run_commits_the_agents_files_in_one_commit_named_after_the_issue(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    # Given an agent that writes two files and says DONE
    before = head(repo)
    agent = StubAgentRunner(files={"hello.py": "print('hi')\n", "pkg/util.py": "X = 1\n"})

    # When
    record = worker.run(issue_id, agent)

    # Then exactly one commit holds exactly those files, under "<id>: <title>"
    assert record.outcome is Outcome.DONE
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert git(repo, "log", "-1", "--format=%s").strip() == f"{issue_id}: Add a greeting"
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "hello.py",
        "pkg/util.py",
    ]
    assert porcelain(repo) == {}
    assert record.commit == head(repo)


def test_a_done_run_closes_the_issue_with_the_summary_as_reason(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    agent = StubAgentRunner(summary="Greeting added", files={"hello.py": "print('hi')\n"})

    worker.run(issue_id, agent)

    shown = show_issue(repo, issue_id)
    assert (shown["status"], shown["close_reason"]) == ("closed", "Greeting added")
    assert comments_of(repo, issue_id) == []


def test_a_done_run_is_recorded_and_leaves_no_run_and_no_marker_behind(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    agent = StubAgentRunner(summary="Greeting added", files={"hello.py": "print('hi')\n"})

    record = worker.run(issue_id, agent, attempt=2)

    assert state.outcomes() == [record]
    assert (record.issue_id, record.repo, record.title) == (issue_id, str(repo), "Add a greeting")
    assert (record.summary, record.attempt, record.files) == ("Greeting added", 2, ["hello.py"])
    assert Path(record.log_path).is_file()
    assert state.runs() == []
    assert worker.marker(issue_id) is None


def test_a_done_run_leaves_unrelated_dirty_files_uncommitted(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    # Given a modified tracked file and an untracked file the agent has nothing to do with
    (repo / "README.md").write_text("# local edit\n")
    (repo / "scratch.txt").write_text("mine\n")

    # When the agent changes one other file
    worker.run(issue_id, StubAgentRunner(files={"hello.py": "print('hi')\n"}))

    # Then only that file is in the commit; the others are still dirty
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["hello.py"]
    assert porcelain(repo) == {"README.md": " M", "scratch.txt": "??"}


def test_a_done_run_that_cannot_commit_fails_and_resets_the_issue(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    # Given a git index lock left behind by a crashed git process, so no commit can succeed
    before = head(repo)
    (repo / ".git" / "index.lock").write_text("")
    agent = StubAgentRunner(files={"feature.py": "x = 1\n"})

    # When
    record = worker.run(issue_id, agent)

    # Then the run fails, nothing is committed and the issue is offered again
    assert record.outcome is Outcome.FAILED
    assert record.summary.startswith("could not finish: ")
    assert "index.lock" in record.summary
    assert head(repo) == before
    shown = show_issue(repo, issue_id)
    assert shown["status"] == "open"
    assert not shown.get("assignee")
    [note] = comments_of(repo, issue_id)
    assert note.startswith("bdp: FAILED on attempt 1: could not finish: ")


# --- BLOCKED, FAILED, TIMED_OUT ---------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.BLOCKED, Outcome.FAILED, Outcome.TIMED_OUT])
def test_a_run_that_does_not_finish_resets_the_issue_with_a_comment_and_commits_nothing(
    worker: Worker, state: State, repo: Path, issue_id: str, outcome: Outcome
) -> None:
    # Given an agent that wrote a file but did not finish
    before = head(repo)
    agent = StubAgentRunner(outcome, "needs a decision", files={"half.py": "x = (\n"})

    # When
    record = worker.run(issue_id, agent, attempt=3)

    # Then the issue is open and unassigned, with a comment pointing at the log
    assert record.outcome is outcome
    shown = show_issue(repo, issue_id)
    assert shown["status"] == "open"
    assert not shown.get("assignee")
    assert comments_of(repo, issue_id) == [
        f"bdp: {outcome.value} on attempt 3: needs a decision. "
        f"Cost $0.0000, 1 turns. Log: {record.log_path}"
    ]
    # And nothing was committed, the run is recorded and nothing is left registered
    assert head(repo) == before
    assert record.commit == ""
    assert porcelain(repo) == {"half.py": "??"}
    assert state.outcomes() == [record]
    assert state.runs() == []
    assert worker.marker(issue_id) is None


@dataclass
class CrashingAgent:
    calls: list[SessionRequest] = field(default_factory=list)

    def run(self, request: SessionRequest) -> SessionResult:
        self.calls.append(request)
        raise RuntimeError("agent exploded")


def test_an_agent_that_raises_fails_the_run_and_resets_the_issue(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    agent = CrashingAgent()

    record = worker.run(issue_id, agent)

    assert len(agent.calls) == 1
    assert record.outcome is Outcome.FAILED
    assert "agent exploded" in record.summary
    shown = show_issue(repo, issue_id)
    assert shown["status"] == "open"
    assert not shown.get("assignee")
    [note] = comments_of(repo, issue_id)
    assert note.startswith("bdp: FAILED on attempt 1: ")
    assert "agent exploded" in note
    assert state.runs() == []
    assert worker.marker(issue_id) is None


# --- not claimed ------------------------------------------------------------------------------


def test_an_issue_claimed_by_another_actor_is_skipped_without_running_the_agent(
    worker: Worker,
    state: State,
    repo: Path,
    issue_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given the issue is already claimed by someone else
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "other")
    before = show_issue(repo, issue_id)
    calls = tmp_path / "bd-calls.jsonl"
    monkeypatch.setenv("FAKE_BD_LOG", str(calls))
    agent = StubAgentRunner(files={"hello.py": "print('hi')\n"})

    # When
    record = worker.run(issue_id, agent)

    # Then the agent never ran and bd saw only the failed claim
    assert record.outcome is Outcome.SKIPPED
    assert record.summary == "issue already claimed by other"
    assert agent.requests == []
    assert [json.loads(line)["argv"][0] for line in calls.read_text().splitlines()] == ["update"]
    monkeypatch.delenv("FAKE_BD_LOG")
    assert show_issue(repo, issue_id) == before
    assert comments_of(repo, issue_id) == []
    assert not (repo / "hello.py").exists()
    # And the skip is recorded and our marker released
    assert state.outcomes() == [record]
    assert state.runs() == []
    assert worker.marker(issue_id) is None


def test_a_skipped_run_keeps_a_marker_that_belongs_to_another_task(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "other")
    assert state.mark_queued(str(repo), issue_id, "someone-elses-task")

    record = worker.run(issue_id, StubAgentRunner(), mark=False)

    assert record.outcome is Outcome.SKIPPED
    marker = worker.marker(issue_id)
    assert marker is not None
    assert (marker.task_id, marker.state) == ("someone-elses-task", "queued")


def test_a_finished_run_keeps_a_marker_that_belongs_to_another_task(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    # Given the marker was taken by another (later) task for the same issue
    assert state.mark_queued(str(repo), issue_id, "someone-elses-task")

    # When this task wins the claim and runs to the end
    record = worker.run(issue_id, StubAgentRunner(files={"hello.py": "hi\n"}), mark=False)

    # Then the other task's marker is still there
    assert record.outcome is Outcome.DONE
    marker = worker.marker(issue_id)
    assert marker is not None
    assert marker.task_id == "someone-elses-task"


def test_a_task_given_a_short_issue_id_leaves_no_marker_behind(
    worker: Worker, state: State, issue_id: str
) -> None:
    # Given a task that names the issue by its hash alone, which bd resolves
    short_id = issue_id.removeprefix("t-")

    # When it runs to the end
    record = worker.run(short_id, StubAgentRunner(files={"hello.py": "hi\n"}))

    # Then no marker is left under either name
    assert record.outcome is Outcome.DONE
    assert state.markers() == []


def test_an_unknown_issue_is_recorded_as_failed_without_raising(
    worker: Worker, state: State
) -> None:
    agent = StubAgentRunner()

    record = worker.run("t-zzzzzzzzz", agent)

    assert record.outcome is Outcome.FAILED
    assert "t-zzzzzzzzz" in record.summary
    assert agent.requests == []
    assert state.outcomes() == [record]
    assert worker.marker("t-zzzzzzzzz") is None


# --- while the agent runs ---------------------------------------------------------------------


@dataclass
class Snapshot:
    """What the state looked like from inside a running agent."""

    runs: list[Run] = field(default_factory=list)
    marker: Marker | None = None
    later_heartbeat: float | None = None
    request: SessionRequest | None = None


def watch_state(state: State, repo: Path, issue_id: str, seen: Snapshot) -> StubAgentRunner:
    """A stub agent that records the registry and marker, and waits for one heartbeat."""

    def on_run(request: SessionRequest) -> None:
        seen.request = request
        seen.runs = state.runs()
        seen.marker = state.marker(str(repo), issue_id)
        if len(seen.runs) != 1:
            return
        first = seen.runs[0].heartbeat

        def advanced() -> bool:
            seen.later_heartbeat = state.runs()[0].heartbeat
            return seen.later_heartbeat > first

        poll(advanced)

    return StubAgentRunner(on_run=on_run, files={"hello.py": "hi\n"})


def test_a_running_run_is_registered_with_its_owner_and_deadline(
    worker: Worker, settings: Settings, state: State, repo: Path, issue_id: str
) -> None:
    seen = Snapshot()

    record = worker.run(issue_id, watch_state(state, repo, issue_id, seen))

    assert record.outcome is Outcome.DONE
    [run] = seen.runs
    assert (run.issue_id, run.repo, run.title) == (issue_id, str(repo), "Add a greeting")
    assert (run.host, run.pid, run.worker) == (socket.gethostname(), os.getpid(), worker_name())
    assert run.deadline == pytest.approx(run.started + settings.timeout)
    assert run.run_id == record.run_id
    assert run.log_path == record.log_path
    assert seen.request is not None
    assert (seen.request.deadline, seen.request.repo) == (run.deadline, repo)
    assert seen.request.issue.description == "Say hello"


def test_a_running_runs_heartbeat_advances(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    seen = Snapshot()

    worker.run(issue_id, watch_state(state, repo, issue_id, seen))

    [run] = seen.runs
    assert seen.later_heartbeat is not None
    assert seen.later_heartbeat > run.heartbeat


def test_a_running_runs_marker_says_running_under_its_task_id(
    worker: Worker, state: State, repo: Path, issue_id: str
) -> None:
    seen = Snapshot()

    worker.run(issue_id, watch_state(state, repo, issue_id, seen))

    assert seen.marker is not None
    assert (seen.marker.state, seen.marker.task_id) == ("running", TASK_ID)
    assert worker.marker(issue_id) is None


# --- NO_CHANGE and the quality gate -----------------------------------------------------------


def test_done_without_any_change_is_not_closed_but_reset_as_no_change(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    before = head(repo)

    record = worker.run(issue_id, StubAgentRunner(summary="all done", files={}))

    assert record.outcome is Outcome.NO_CHANGE
    assert record.summary == "said DONE (all done) but changed no file"
    assert head(repo) == before
    assert show_issue(repo, issue_id)["status"] == "open"
    [note] = comments_of(repo, issue_id)
    assert note.startswith("bdp: NO_CHANGE on attempt 1")


def test_done_rewriting_a_file_with_its_own_content_is_no_change(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    record = worker.run(issue_id, StubAgentRunner(files={"README.md": "# test repo\n"}))

    assert record.outcome is Outcome.NO_CHANGE


def test_the_repos_gate_and_fix_rounds_reach_the_session(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    commit_file(repo, ".bdp.toml", 'gate = ["test -f gate-ok"]\nfix_rounds = 3\n')
    seen: list[SessionRequest] = []
    agent = StubAgentRunner(files={"gate-ok": "yes\n"}, on_run=seen.append)

    record = worker.run(issue_id, agent)

    [request] = seen
    assert request.fix_rounds == 3
    assert request.gate is not None
    assert request.gate().passed  # the stub wrote gate-ok: the repo's own check passes
    assert record.outcome is Outcome.DONE


def test_a_broken_repo_configuration_fails_the_run_with_a_clear_message(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    commit_file(repo, ".bdp.toml", "gate = [42]\n")
    agent = StubAgentRunner(files={"x.py": "x\n"})

    record = worker.run(issue_id, agent)

    assert record.outcome is Outcome.FAILED
    assert ".bdp.toml" in record.summary
    assert "each gate entry must be" in record.summary
    assert agent.requests == []
    assert show_issue(repo, issue_id)["status"] == "open"


# --- unfinished sessions ----------------------------------------------------------------------


@dataclass
class UnfinishedAgent:
    """Edits a file, then runs out of room."""

    def run(self, request: SessionRequest) -> SessionResult:
        request.locks.acquire(["half.py"], request.holder, wait=0)
        (request.repo / "half.py").write_text("half\n")
        return SessionResult(
            Outcome.UNFINISHED,
            "reached the limit of 5 turns",
            ["half.py"],
            session_id="sess-1",
            details="Files changed: half.py.",
        )


def test_an_unfinished_session_is_continued_by_a_new_task_that_resumes_it(
    worker: Worker, repo: Path, issue_id: str, state: State
) -> None:
    requeued: list[TaskArgs] = []

    def requeue(args: TaskArgs) -> str:
        requeued.append(args)
        return "task-2"

    deps = RunDeps(worker.settings, state, UnfinishedAgent(), requeue=requeue)

    record = work_on(TaskArgs(str(repo), issue_id, 1), TASK_ID, deps)

    assert record.outcome is Outcome.UNFINISHED
    expected = TaskArgs(
        str(repo),
        issue_id,
        1,
        continuation=1,
        resume="sess-1",
        prior="Files changed: half.py.",
        files=("half.py",),
        max_cost=None,
        host=host_name(),  # this machine has the session's transcript: the task prefers it
    )
    assert requeued == [expected]
    assert (repo / "half.py").read_text() == "half\n"  # the work stays in the tree
    assert porcelain(repo)["half.py"] == "??"  # uncommitted: nothing is closed unfinished
    assert show_issue(repo, issue_id)["status"] == "open"
    [note] = comments_of(repo, issue_id)
    assert "UNFINISHED on attempt 1" in note
    assert "continuing (1 of 2)" in note
    assert LockTable(worker.settings.home, repo).locks() == []


def test_an_issue_still_unfinished_after_the_last_continuation_waits_for_a_human(
    worker: Worker, repo: Path, issue_id: str, state: State
) -> None:
    requeued: list[TaskArgs] = []

    def requeue(args: TaskArgs) -> str:
        requeued.append(args)
        return "x"

    deps = RunDeps(worker.settings, state, UnfinishedAgent(), requeue=requeue)

    record = work_on(TaskArgs(str(repo), issue_id, 1, continuation=2), TASK_ID, deps)

    assert record.outcome is Outcome.UNFINISHED
    assert requeued == []
    assert "needs a human" in comments_of(repo, issue_id)[0]


@dataclass
class GateNeverPasses:
    def run(self, request: SessionRequest) -> SessionResult:
        return SessionResult(
            Outcome.FAILED,
            "quality gate still failing: pytest -q",
            details="FAILED test_x.py::test_y - assert 1 == 2",
        )


def test_a_gate_that_still_fails_resets_the_issue_with_its_output_in_the_comment(
    worker: Worker, repo: Path, issue_id: str
) -> None:
    record = worker.run(issue_id, GateNeverPasses())

    assert record.outcome is Outcome.FAILED
    [note] = comments_of(repo, issue_id)
    assert note.startswith("bdp: FAILED on attempt 1: quality gate still failing: pytest -q.")
    assert "```\nFAILED test_x.py::test_y - assert 1 == 2\n```" in note
    assert show_issue(repo, issue_id)["status"] == "open"


class RecordingNotifier(Notifier):
    """Keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__("true")
        self.sent: list[Event] = []

    def send(self, event: Event) -> bool:
        self.sent.append(event)
        return True


@dataclass
class LimitedAgent:
    """Writes a file, then the account hits its usage limit."""

    resets_at: float | None

    def run(self, request: SessionRequest) -> SessionResult:
        request.locks.acquire(["half.py"], request.holder, wait=0)
        (request.repo / "half.py").write_text("half\n")
        result = SessionResult(
            Outcome.PAUSED,
            "the API account is rate- or usage-limited",
            ["half.py"],
            session_id="sess-9",
        )
        result.resets_at = self.resets_at
        return result


def test_a_usage_limit_pauses_the_queue_and_puts_the_issue_back_for_later(
    repo: Path, settings: Settings, state: State, issue_id: str
) -> None:
    # Given a session stopped by a usage limit that resets in 10 minutes
    requeued: list[TaskArgs] = []

    def requeue(args: TaskArgs) -> str:
        requeued.append(args)
        return "task-2"

    notifier = RecordingNotifier()
    agent = LimitedAgent(time.time() + 600)
    deps = RunDeps(settings, state, agent, requeue=requeue, notifier=notifier)
    sent = notifier.sent

    record = work_on(TaskArgs(str(repo), issue_id, 2, continuation=1), TASK_ID, deps)

    # Then the whole queue is paused until the reset, and the issue is open again
    assert record.outcome is Outcome.PAUSED
    pause = state.pause()
    assert pause is not None
    assert pause["until"] == pytest.approx(time.time() + 600, abs=5)
    assert "paused until" in record.summary
    assert show_issue(repo, issue_id)["status"] == "open"
    assert comments_of(repo, issue_id) == []  # a pause is nobody's failure: no comment
    # And it is requeued with the same attempt and continuation, resuming the session
    [args] = requeued
    assert (args.repo, args.issue_id, args.attempt) == (str(repo), issue_id, 2)
    assert (args.continuation, args.resume, args.files) == (1, "sess-9", ("half.py",))
    # And BDP_NOTIFY heard of the outcome and of the pause
    assert [e.kind for e in sent] == ["attention", "outcome"]
    assert "paused until" in sent[0].reason
    assert sent[1].outcome == "PAUSED"


def test_every_outcome_but_a_lost_claim_is_notified(
    worker: Worker, state: State, repo: Path, issue_id: str, settings: Settings
) -> None:
    notifier = RecordingNotifier()
    deps = RunDeps(
        settings, state, StubAgentRunner(Outcome.BLOCKED, "need input"), notifier=notifier
    )
    sent = notifier.sent

    work_on(TaskArgs(str(repo), issue_id, 1), TASK_ID, deps)
    work_on(TaskArgs(str(repo), "t-missing", 1), "task-2", deps)  # unknown issue: FAILED
    run_bd_ok(repo, "update", issue_id, "--claim", "--actor", "someone-else")
    work_on(TaskArgs(str(repo), issue_id, 2), "task-3", deps)  # lost claim: SKIPPED

    kinds = [(e.kind, e.issue_id, e.outcome) for e in sent]
    assert kinds == [
        ("outcome", issue_id, "BLOCKED"),
        ("attention", issue_id, "BLOCKED"),
        ("outcome", "t-missing", "FAILED"),
        ("attention", "t-missing", "FAILED"),
    ]


class BrokerGoesDown(State):
    """A State whose broker becomes unreachable once ``down`` is set."""

    down = False

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if super(BrokerGoesDown, self).__getattribute__("down"):
                raise ConnectionError("Error 111 connecting to 127.0.0.1:6390. Refused.")
            return attribute(*args, **kwargs)

        return call


def test_a_broker_outage_at_the_end_of_a_run_still_resets_the_issue_and_frees_its_locks(
    repo: Path, settings: Settings, issue_id: str
) -> None:
    # Given a run whose broker goes away while the agent works
    state = BrokerGoesDown(MemoryHuey("test-broker-down"))

    def outage(_request: SessionRequest) -> None:
        state.down = True

    agent = StubAgentRunner(
        Outcome.BLOCKED, "needs a decision", files={"a.py": "a\n"}, on_run=outage
    )

    # When it finishes
    record = work_on(TaskArgs(str(repo), issue_id, 1), TASK_ID, RunDeps(settings, state, agent))

    # Then bd and the lock table, which other agents wait on, are put right anyway
    assert record.outcome is Outcome.BLOCKED
    shown = show_issue(repo, issue_id)
    assert (shown["status"], shown.get("assignee") or "") == ("open", "")
    assert any("BLOCKED" in c for c in comments_of(repo, issue_id))
    assert LockTable(settings.home, repo).locks() == []


def test_a_claim_bd_fails_on_keeps_the_marker_and_the_janitor_queues_the_issue_again(
    worker: Worker, state: State, issue_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given bd failing on the claim (not a lost race: nobody got the issue)
    monkeypatch.setenv("FAKE_BD_FAIL", "update")
    agent = StubAgentRunner()

    record = worker.run(issue_id, agent)

    # Then the run failed, but the marker stays so the issue is not forgotten
    assert record.outcome is Outcome.FAILED
    assert "bd could not claim" in record.summary
    marker = worker.marker(issue_id)
    assert marker is not None

    # When bd works again and the janitor sweeps after the marker went stale
    monkeypatch.delenv("FAKE_BD_FAIL")
    requeued: list[TaskArgs] = []

    def requeue(args: TaskArgs) -> str:
        requeued.append(args)
        return "task-2"

    settings = replace(worker.settings, stale_after=0)
    Janitor(settings, MemoryHuey("janitor"), state, requeue).sweep()  # the task is gone

    # Then the issue is queued again
    assert [args.issue_id for args in requeued] == [issue_id]


# --- the issue's lease, when machines share a Redis ---------------------------------------------


def taken_on_redis(worker: Worker, issue_id: str, claims: RedisClaims) -> RunRecord:
    """Queue the issue, then have this machine's worker take its task, leases on Redis."""
    assert worker.state.mark_queued(str(worker.repo), issue_id, TASK_ID)
    deps = RunDeps(worker.settings, worker.state, StubAgentRunner(), claims=claims)
    return work_on(TaskArgs(str(worker.repo), issue_id), TASK_ID, deps)


def test_an_issue_whose_lease_another_machine_holds_is_not_claimed_and_its_task_given_back(
    worker: Worker, repo: Path, issue_id: str, redis_url: str
) -> None:
    # Given another machine's run holding the issue's lease
    claims = RedisClaims(redis.Redis.from_url(redis_url), "bdp", ttl=30)
    assert isinstance(claims.take(str(repo), issue_id, "beta:7/other-task"), Lease)

    # When this machine's worker takes the task
    record = taken_on_redis(worker, issue_id, claims)

    # Then nothing was claimed in bd, and the marker waits for the janitor to queue it again
    assert record.outcome is Outcome.SKIPPED
    assert "beta:7/other-task" in record.summary
    assert show_issue(repo, issue_id)["status"] == "open"
    marker = worker.marker(issue_id)
    assert marker is not None
    assert (marker.task_id, marker.taken_by) == (TASK_ID, None)


def test_an_issue_that_landed_elsewhere_is_skipped_and_its_marker_dropped(
    worker: Worker, repo: Path, issue_id: str, redis_url: str
) -> None:
    # Given the issue landed on another machine (whose close this bd has not synced)
    claims = RedisClaims(redis.Redis.from_url(redis_url), "bdp", ttl=30)
    lease = claims.take(str(repo), issue_id, "beta:7/other-task")
    assert isinstance(lease, Lease)
    claims.bury(lease, "ab" * 20, "beta")
    claims.release(lease)

    # When this machine's worker takes a task for it
    record = taken_on_redis(worker, issue_id, claims)

    # Then it is not worked again
    assert record.outcome is Outcome.SKIPPED
    assert "landed already" in record.summary
    assert show_issue(repo, issue_id)["status"] == "open"
    assert worker.marker(issue_id) is None


def test_a_done_run_on_redis_leaves_a_tombstone_and_frees_its_lease(
    worker: Worker, repo: Path, issue_id: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    claims = RedisClaims(client, "bdp", ttl=30)
    agent = StubAgentRunner(files={"hello.py": "print('hi')\n"})
    assert worker.state.mark_queued(str(repo), issue_id, TASK_ID)

    deps = RunDeps(worker.settings, worker.state, agent, claims=claims)
    record = work_on(TaskArgs(str(repo), issue_id), TASK_ID, deps)

    assert record.outcome is Outcome.DONE
    assert show_issue(repo, issue_id)["status"] == "closed"
    [tomb] = claims.landed(str(repo), [issue_id]).values()
    assert tomb.commit == head(repo)
    assert client.keys("bdp.bdp.lease:*") == []


class SeesItsLocks(StubAgentRunner):
    """The stub agent, noting the lock records in Redis while its session holds them."""

    def __init__(self, client: redis.Redis, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.seen: dict[Any, Any] = {}

    def run(self, request: SessionRequest) -> SessionResult:
        result = super().run(request)
        [key] = self.client.keys("bdp.bdp.locks:*")
        self.seen = dict(self.client.hgetall(key))
        return result


def test_on_redis_a_runs_locks_are_shared_and_backed_by_its_lease(
    worker: Worker, repo: Path, issue_id: str, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    claims = RedisClaims(client, "bdp", ttl=30)
    agent = SeesItsLocks(client, files={"hello.py": "print('hi')\n"})
    assert worker.state.mark_queued(str(repo), issue_id, TASK_ID)

    deps = RunDeps(worker.settings, worker.state, agent, claims=claims)
    record = work_on(TaskArgs(str(repo), issue_id), TASK_ID, deps)

    # While the session ran, its lock was in Redis, naming the lease that backs it
    assert record.outcome is Outcome.DONE
    [(path, raw)] = agent.seen.items()
    held = json.loads(raw)
    assert (path, held["run_id"], held["issue_id"]) == (b"hello.py", record.run_id, issue_id)
    assert held["lease"] == f"bdp.bdp.lease:{repo}:{issue_id}"
    assert held["fence"].endswith("|1")
    # And nothing is left behind: neither the lock nor a file lock table on this machine
    assert client.hgetall(f"bdp.bdp.locks:{repo}") == {}
    assert LockTable.all_in(worker.settings.home) == []
