"""Unit tests for bdp/run/steering.py: `bdp say` and `bdp stop` through a run's inbox.

The sending side runs on a MemoryHuey state; the receiving side is a real `work_on` with a
stub agent that behaves as the real runner does (it ends when its StopSignal is set), bd
the stand-in subprocess on the `repo` fixture.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huey import MemoryHuey

from bdp.agent.session import SessionRequest, SessionResult, Steering, StopSignal
from bdp.agent.transcript import Transcript
from bdp.broker.inbox import Steer
from bdp.broker.state import State
from bdp.config import Settings
from bdp.errors import BdpError
from bdp.models import Outcome, Run, TaskArgs
from bdp.redact import Redactor
from bdp.repo.locks import LockTable
from bdp.run.deps import RunDeps
from bdp.run.steering import MAX_MESSAGE, InboxReader, request_stop, say, sender
from bdp.run.work import work_on
from tests.support.beads import create_issue, run_bd_ok, show_issue

TASK_ID = "task-1"


@pytest.fixture
def state() -> State:
    return State(MemoryHuey("steering"))


def a_run(state: State, issue_id: str = "t-1", run_id: str = "r1") -> Run:
    now = time.time()
    run = Run(run_id, issue_id, "/repo", "x", "h", 1, "w", 1, now, now + 60, now)
    state.register(run)
    return run


def sent(state: State, run_id: str = "r1") -> list[Steer]:
    found, slot = [], 1
    while (steer := state.inbox.read(run_id, slot)) is not None:
        found.append(steer)
        slot += 1
    return found


# --- sending --------------------------------------------------------------------------------


def test_a_message_goes_to_the_inbox_of_the_issues_run_signed_by_its_sender(
    state: State,
) -> None:
    run = a_run(state)
    a_run(state, "t-2", "r2")

    assert say(state, "t-1", "  use the retry helper \n") == [run]

    [steer] = sent(state)
    assert (steer.kind, steer.text, steer.sender) == ("say", "use the retry helper", sender())
    assert sent(state, "r2") == []


def test_a_message_is_redacted_before_it_is_stored(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-0123456789abcdef")
    a_run(state)

    say(state, "t-1", "the token is tok-0123456789abcdef, use it")

    [steer] = sent(state)
    assert steer.text == "the token is ***, use it"


@pytest.mark.parametrize(
    ("text", "error"),
    [(" \n", "the message is empty"), ("x" * (MAX_MESSAGE + 1), "characters, more than 4,000")],
)
def test_an_empty_or_too_long_message_is_refused_and_nothing_is_sent(
    state: State, text: str, error: str
) -> None:
    a_run(state)

    with pytest.raises(BdpError, match=error):
        say(state, "t-1", text)

    assert sent(state) == []


def test_a_message_or_a_stop_for_an_issue_with_no_run_is_an_error(state: State) -> None:
    a_run(state, "t-2", "r2")

    with pytest.raises(BdpError, match="no run of t-1 is running"):
        say(state, "t-1", "hello")
    with pytest.raises(BdpError, match="no run of t-1 is running"):
        request_stop(state, "t-1")


class EndsWhilePosting(State):
    """A state whose run ends between the post and the sender's check."""

    def has_run(self, run_id: str) -> bool:
        return False


def test_a_message_for_a_run_that_ended_while_it_was_posted_is_taken_back() -> None:
    state = EndsWhilePosting(MemoryHuey("ended"))
    a_run(state)

    with pytest.raises(BdpError, match="no run of t-1 is running"):
        say(state, "t-1", "too late")

    assert sent(state) == []


def test_a_stop_asks_for_a_requeue_only_when_told(state: State) -> None:
    a_run(state)

    request_stop(state, "t-1")
    request_stop(state, "t-1", requeue=True)

    assert [(s.kind, s.requeue) for s in sent(state)] == [("stop", False), ("stop", True)]


# --- reading --------------------------------------------------------------------------------


@pytest.fixture
def inbox(state: State, tmp_path: Path) -> Iterator[InboxReader]:
    """The reader of run r1's inbox (the run registered, as issue t-1)."""
    a_run(state)
    transcript = Transcript(tmp_path / "run.log", Redactor([]))
    yield InboxReader(state, "r1", StopSignal(), Steering(), transcript)
    transcript.close()


def test_the_reader_obeys_each_request_once_and_in_order(
    state: State, tmp_path: Path, inbox: InboxReader
) -> None:
    say(state, "t-1", "first")
    say(state, "t-1", "second")

    inbox.check()
    inbox.check()

    note = inbox.steering.take()
    assert note.count("first") == note.count("second") == 1
    assert note.index("first") < note.index("second")
    log = (tmp_path / "run.log").read_text()
    assert f"message from {sender()} (bdp say): first" in log
    assert not inbox.stop.is_set()


def test_a_stop_request_sets_the_runs_stop_signal_with_who_asked(
    state: State, tmp_path: Path, inbox: InboxReader
) -> None:
    request_stop(state, "t-1", requeue=True)

    inbox.check()

    stop = inbox.stop
    assert (stop.outcome, stop.reason) == (
        Outcome.INTERRUPTED,
        f"stopped by {sender()} with bdp stop",
    )
    assert stop.requeue
    assert (
        "asked to stop this run, and to queue the issue again" in (tmp_path / "run.log").read_text()
    )


def test_a_request_of_an_unknown_kind_is_ignored(state: State, inbox: InboxReader) -> None:
    state.inbox.post("r1", Steer("pause", "ann@box"))  # type: ignore[arg-type]
    say(state, "t-1", "after it")

    inbox.check()

    assert not inbox.stop.is_set()
    assert "after it" in inbox.steering.take()


def test_an_empty_inbox_costs_each_look_a_single_read(
    state: State, inbox: InboxReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    read = state.inbox.read

    def counted(run_id: str, slot: int) -> Steer | None:
        reads.append(slot)
        return read(run_id, slot)

    monkeypatch.setattr(state.inbox, "read", counted)
    say(state, "t-1", "one")

    inbox.check()  # the message, then the next slot: still free
    inbox.check()
    inbox.check()

    assert reads == [1, 2, 2, 2]


def test_a_message_the_session_never_took_is_noted_when_the_run_ends(
    state: State, tmp_path: Path, inbox: InboxReader
) -> None:
    say(state, "t-1", "too late")
    inbox.check()

    inbox.close()

    assert (
        "the session ended before the agent was given the message"
        in (tmp_path / "run.log").read_text()
    )


# --- a real run -----------------------------------------------------------------------------


class SteeredAgent:
    """Locks and writes a file, has someone steer its run, then waits as the real runner
    does: until its StopSignal is set, or a message reaches its session."""

    def __init__(self, state: State, steer: str) -> None:
        self.state = state
        self.steer = steer
        self.heard = ""

    def run(self, request: SessionRequest) -> SessionResult:
        request.locks.acquire(["half.txt"], request.holder, wait=0)
        (request.repo / "half.txt").write_text("half\n")
        if self.steer == "say":
            say(self.state, request.issue.id, "try the other approach")
        else:
            request_stop(self.state, request.issue.id, requeue=self.steer == "stop --requeue")
        deadline = time.monotonic() + 5
        while not request.stop.wait(0.01) and time.monotonic() < deadline:
            self.heard = self.heard or request.steering.take()
            if self.heard:
                return SessionResult(Outcome.BLOCKED, "heard it", ["half.txt"])
        return SessionResult(request.stop.outcome, request.stop.reason, ["half.txt"])


def work(repo: Path, tmp_path: Path, issue_id: str, agent: SteeredAgent) -> list[TaskArgs]:
    """Run ``issue_id`` with ``agent`` in shared isolation; the tasks it queued again."""
    requeued: list[TaskArgs] = []

    def requeue(args: TaskArgs) -> str:
        requeued.append(args)
        return "task-2"

    settings = Settings(home=tmp_path / "home", heartbeat=0.05, timeout=60, isolation="shared")
    deps = RunDeps(settings, agent.state, agent, requeue=requeue)
    work_on(TaskArgs(str(repo), issue_id, 1), TASK_ID, deps)
    return requeued


def comments(repo: Path, issue_id: str) -> str:
    return run_bd_ok(repo, "comments", issue_id, "--json")


@pytest.mark.usefixtures("stand_in_bd")
def test_a_message_reaches_the_session_of_the_running_issue(
    repo: Path, tmp_path: Path, state: State
) -> None:
    issue_id = create_issue(repo, "Steer me")
    agent = SteeredAgent(state, "say")

    work(repo, tmp_path, issue_id, agent)

    assert "try the other approach" in agent.heard
    assert "`bdp say`" in agent.heard
    assert show_issue(repo, issue_id)["status"] == "open"


@pytest.mark.usefixtures("stand_in_bd")
def test_a_stopped_run_ends_interrupted_with_its_issue_reset_and_its_locks_freed(
    repo: Path, tmp_path: Path, state: State
) -> None:
    issue_id = create_issue(repo, "Stop me")

    requeued = work(repo, tmp_path, issue_id, SteeredAgent(state, "stop"))

    [record] = state.outcomes()
    assert record.outcome is Outcome.INTERRUPTED
    issue = show_issue(repo, issue_id)
    assert (issue["status"], issue.get("assignee") or "") == ("open", "")
    assert f"INTERRUPTED on attempt 1: stopped by {sender()} with bdp stop" in comments(
        repo, issue_id
    )
    assert LockTable(tmp_path / "home", repo).locks() == []
    assert (state.runs(), requeued) == ([], [])
    assert state.marker(str(repo), issue_id) is None  # left for a person, not queued


@pytest.mark.usefixtures("stand_in_bd")
def test_a_stop_with_requeue_queues_the_next_attempt_afresh(
    repo: Path, tmp_path: Path, state: State
) -> None:
    issue_id = create_issue(repo, "Start me over")

    requeued = work(repo, tmp_path, issue_id, SteeredAgent(state, "stop --requeue"))

    assert requeued == [TaskArgs(str(repo), issue_id, 2)]
    assert show_issue(repo, issue_id)["status"] == "open"
    assert "queued again as attempt 2" in comments(repo, issue_id)
    assert state.outcomes()[0].outcome is Outcome.INTERRUPTED
    assert LockTable(tmp_path / "home", repo).locks() == []
