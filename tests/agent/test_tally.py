"""The tally's live numbers: turns and tokens as they arrive, settled by each result."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from claude_agent_sdk import AssistantMessage, ResultMessage, TextBlock, ToolUseBlock

from bdp.agent.tally import Tally, tool_label
from bdp.models import Outcome


def assistant(message_id: str, *blocks: object, tokens: tuple[int, int] = (100, 10)) -> object:
    usage = {"input_tokens": tokens[0], "output_tokens": tokens[1]}
    return AssistantMessage(list(blocks), "m", usage=usage, message_id=message_id)  # type: ignore[arg-type]


def result(turns: int, cost: float, session: str = "s1") -> object:
    usage = {"input_tokens": 250, "output_tokens": 25}
    return ResultMessage(
        "success", 1, 1, False, turns, session, total_cost_usd=cost, usage=usage, result="DONE: x"
    )


def test_turns_and_tokens_count_as_they_arrive_and_settle_with_the_result() -> None:
    tally = Tally()
    edit = ToolUseBlock("u1", "Edit", {"file_path": "src/app.py", "old_string": "a"})

    tally.add_assistant(assistant("m1", TextBlock("looking")))
    tally.add_assistant(assistant("m1", edit))  # same API response, another block
    live = tally.activity()

    assert (live.turns, live.input_tokens, live.output_tokens) == (1, 100, 10)
    assert live.tool == "Edit src/app.py"

    tally.add_assistant(assistant("m2", TextBlock("DONE: x")))
    assert tally.activity().turns == 2
    tally.add_result(result(2, 0.12))

    settled = tally.activity()
    assert (settled.turns, settled.input_tokens, settled.output_tokens) == (2, 250, 25)
    assert (settled.cost_usd, settled.tool) == (0.12, "")


def test_tool_labels_name_the_target_and_stay_short() -> None:
    assert tool_label("Bash", {"command": "pytest -q\nexit"}) == "Bash pytest -q exit"
    assert tool_label("mcp__bdp__lock_files", {"paths": ["a.py"]}) == "lock_files ['a.py']"
    assert tool_label("TodoWrite", {"todos": []}) == "TodoWrite"
    long = tool_label("Read", {"file_path": "x" * 200})
    assert len(long) == 60
    assert long.endswith("…")


def test_a_message_without_an_id_still_counts_once() -> None:
    tally = Tally()
    message = SimpleNamespace(message_id=None, usage=None, content=[])

    tally.add_assistant(message)

    assert tally.activity().turns == 1


def test_a_resumed_session_counts_only_what_it_spent_on_top_of_its_earlier_cost() -> None:
    # Given a run resuming a session that had cost $0.30, which the CLI counts in its total
    tally = Tally(resumed_cost=0.30)

    # When two exchanges end, the CLI's total for the whole session at $0.40, then $0.45
    tally.add_result(result(1, 0.40))
    assert tally.cost_usd == pytest.approx(0.10)
    tally.add_result(result(1, 0.45))

    # Then the run cost $0.15, and the session $0.45 (what a next continuation subtracts)
    settled = tally.result(Outcome.DONE, "x")
    assert (settled.cost_usd, settled.session_cost_usd) == (0.15, 0.45)
    assert tally.activity().cost_usd == 0.15


def test_a_retry_after_a_resumed_session_counts_its_fresh_session_whole() -> None:
    # Given an attempt that resumed a $0.30 session and spent $0.10 before it failed
    tally = Tally(resumed_cost=0.30)
    tally.add_result(result(1, 0.40))

    # When the retry starts a fresh session that costs $0.05
    tally.cost_before_session, tally.resumed_cost = tally.cost_usd, 0.0
    tally.add_result(result(1, 0.05, session="s2"))

    # Then the run cost both parts, and the session a continuation would resume cost $0.05
    settled = tally.result(Outcome.UNFINISHED, "x")
    assert settled.cost_usd == 0.15
    assert (settled.session_id, settled.session_cost_usd) == ("s2", 0.05)


def test_a_resumed_session_whose_cli_total_starts_afresh_counts_that_total() -> None:
    tally = Tally(resumed_cost=0.30)

    tally.add_result(result(1, 0.02))  # a CLI that did not carry the earlier cost over

    assert tally.cost_usd == pytest.approx(0.02)
