"""`bdp logs -f`, stepped by hand: which runs it follows, what it prints, when it ends."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdp.cli.log_follow import LogFollower, here
from bdp.models import Run


def a_run(tmp_path: Path, run_id: str, issue_id: str, host: str = "") -> Run:
    now = time.time()
    log = tmp_path / f"20261202-120000-{issue_id}-{run_id}.log"
    return Run(
        run_id,
        issue_id,
        "/repo",
        "x",
        host or socket.gethostname(),
        1,
        "1-Worker-1",
        1,
        now,
        now + 600,
        now,
        log_path=str(log),
    )


def write(run: Run, text: str, suffix: str = ".log") -> None:
    with Path(run.log_path).with_suffix(suffix).open("a") as out:
        out.write(text)


class Board:
    """The runs the follower sees, and what it printed."""

    def __init__(self) -> None:
        self.going: list[Run] = []
        self.lines: list[str] = []
        self.followers: list[LogFollower] = []

    def follower(
        self,
        issue_id: str | None = None,
        suffix: str = ".log",
        prefixed: bool = True,
        tail: int | None = None,
    ) -> LogFollower:
        made = LogFollower(
            lambda: list(self.going), self.lines.append, issue_id, suffix, prefixed, tail
        )
        self.followers.append(made)
        return made


@pytest.fixture
def board() -> Iterator[Board]:
    made = Board()
    yield made
    for follower in made.followers:
        follower.close()


def test_two_runs_are_followed_together_each_line_led_by_its_issue(
    tmp_path: Path, board: Board
) -> None:
    # Given two running runs with a line each
    first, second = a_run(tmp_path, "r1", "acc-kfe"), a_run(tmp_path, "r2", "acc-7")
    board.going = [first, second]
    write(first, "12:00:00 bdp: run started\n")
    write(second, "12:00:01 bdp: run started\n")
    follower = board.follower()

    # When the follower looks and reads, and both logs grow
    follower.look()
    follower.read()
    write(second, "12:00:02 tool Write\n")
    write(first, "12:00:03 tool Edit\n")
    follower.read()

    # Then every line came out once, led by its issue (ids padded to one width)
    assert board.lines == [
        "acc-kfe | 12:00:00 bdp: run started",
        "acc-7   | 12:00:01 bdp: run started",
        "acc-kfe | 12:00:03 tool Edit",
        "acc-7   | 12:00:02 tool Write",
    ]


def test_a_run_that_starts_while_following_is_picked_up_and_an_ended_one_read_to_its_end(
    tmp_path: Path, board: Board
) -> None:
    # Given one run followed
    first = a_run(tmp_path, "r1", "t-1")
    board.going = [first]
    write(first, "one\n")
    follower = board.follower()
    follower.look()
    follower.read()

    # When another starts, and the first writes its last lines (one unfinished) and ends
    second = a_run(tmp_path, "r2", "t-2")
    write(second, "hello\n")
    write(first, "two\nthree")
    board.going = [second]
    follower.look()
    follower.read()

    # Then the first was read to its very end and let go; the second is followed
    assert board.lines == ["t-1 | one", "t-1 | two", "t-1 | three", "t-2 | hello"]
    assert list(follower.followed) == ["r2"]

    # And once the second ends too, there is nothing left to follow
    board.going = []
    follower.look()
    assert follower.followed == {}
    follower.follow()  # returns at once


def test_an_unfinished_line_waits_for_its_end(tmp_path: Path, board: Board) -> None:
    run = a_run(tmp_path, "r1", "t-1")
    board.going = [run]
    follower = board.follower()
    follower.look()

    write(run, "half a ")
    follower.read()
    assert board.lines == []
    write(run, "line\n")
    follower.read()
    assert board.lines == ["t-1 | half a line"]


def test_a_run_whose_log_is_not_written_yet_is_read_once_it_is(
    tmp_path: Path, board: Board
) -> None:
    run = a_run(tmp_path, "r1", "t-1")
    board.going = [run]
    follower = board.follower()
    follower.look()

    assert not follower.read()
    write(run, "first words\n")
    assert follower.read()
    assert board.lines == ["t-1 | first words"]


def test_agent_follows_that_issue_only_and_tail_cuts_what_a_log_already_holds(
    tmp_path: Path, board: Board
) -> None:
    wanted, other = a_run(tmp_path, "r1", "t-1"), a_run(tmp_path, "r2", "t-2")
    board.going = [wanted, other]
    write(wanted, "a\nb\nc\n")
    write(other, "x\n")
    follower = board.follower(issue_id="t-1", tail=2)

    follower.look()
    follower.read()

    assert board.lines == ["t-1 | b", "t-1 | c"]
    assert list(follower.followed) == ["r1"]


def test_json_follows_the_raw_messages_without_a_prefix(tmp_path: Path, board: Board) -> None:
    run = a_run(tmp_path, "r1", "t-1")
    board.going = [run]
    write(run, '{"type": "AssistantMessage"}\n', suffix=".jsonl")
    write(run, "readable\n")
    follower = board.follower(suffix=".jsonl", prefixed=False)

    follower.look()
    follower.read()

    assert board.lines == ['{"type": "AssistantMessage"}']


def test_runs_of_other_machines_are_left_out(tmp_path: Path) -> None:
    mine, theirs = a_run(tmp_path, "r1", "t-1"), a_run(tmp_path, "r2", "t-2", host="elsewhere")

    assert here(lambda: [mine, theirs])() == [mine]
