"""Messages from `bdp say` in a session: `Steering`, and how the real Claude CLI passes them on
(with a tool's result through the PostToolUse hook, or as a new turn), against the fake API."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bdp.agent.session import STEER_FOOTER, Steering
from tests.agent.test_claude import request_for, run
from tests.support.fake_api import FakeApi, Report, ToolUse

STEER = "use the helper in util.py"


def test_waiting_messages_are_taken_once_as_one_note_in_order() -> None:
    steering = Steering()
    steering.post("ann@box", "first")
    steering.post("bob@box", "second")

    note = steering.take()

    assert note.index("ann@box") < note.index("first") < note.index("bob@box")
    assert note.index("second") < note.index(STEER_FOOTER)
    assert steering.take() == ""


def test_messages_posted_from_many_threads_are_all_taken() -> None:
    steering = Steering()
    threads = [threading.Thread(target=steering.post, args=("ann@box", f"m{n}")) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    note = steering.take()

    assert all(f"m{n}\n" in note for n in range(20))


def requests_with(api: FakeApi, text: str) -> list[int]:
    """The positions of the model requests whose messages carry ``text``."""
    found = []
    for index, request in enumerate(api.messages_requests()):
        if text in json.dumps(request.body.get("messages", [])):
            found.append(index)
    return found


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_message_rides_on_the_next_tool_result(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session whose first step is a tool call, with a message already waiting
    api.script([ToolUse("Bash", {"command": "true"}), Report("DONE", "did it")])
    request = request_for(workdir, tmp_path)
    request.steering.post("ann@box", STEER)

    # When it runs
    result = run(workdir, tmp_path, request=request)

    # Then the model saw the message with that tool's result, before its turn ended
    assert requests_with(api, STEER) == [1]
    assert len(api.messages_requests()) == 2  # no turn of its own
    assert result.summary == "did it"
    assert "passed the waiting message on after the Bash call" in (tmp_path / "run.log").read_text()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_message_no_tool_result_carried_is_sent_as_a_new_turn_after_the_answer(
    api: FakeApi, workdir: Path, tmp_path: Path
) -> None:
    # Given a session that answers without a tool call, with a message waiting
    api.script([Report("DONE", "first answer"), Report("DONE", "second answer")])
    request = request_for(workdir, tmp_path)
    request.steering.post("ann@box", STEER)

    # When it runs
    result = run(workdir, tmp_path, request=request)

    # Then the message went as a user message after the first answer, and the session's
    # outcome is its answer to that
    assert requests_with(api, STEER) == [1]
    assert api.messages_requests()[1].body["messages"][-1]["role"] == "user"
    assert result.summary == "second answer"
    assert "passed the waiting message on as a new turn" in (tmp_path / "run.log").read_text()
